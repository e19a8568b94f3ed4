"""A reader of LeRobotDataset v3.0 folders that follows LeRobot's own loading code step by step,
written for the tests because the `lerobot` package (0.4.4 needs torch < 2.11; we pin 2.13) and
the standalone `lerobot-dataset` (opencv < 4.13; we run 5.1) do not install beside our pins.

What it does, and where LeRobot does the same (lerobot/datasets/, release 0.4.4):
- `meta/info.json` (utils.load_info): shapes become tuples; codebase_version must be v3.0
  (LeRobotDatasetMetadata.load_metadata -> check_version_compatibility).
- `meta/tasks.parquet` (utils.load_tasks = pd.read_parquet): the pandas index is the task text;
  item["task"] = tasks.iloc[task_index].name, i.e. the row at position task_index.
- `meta/episodes/*/*.parquet`, sorted, concatenated, `stats/` columns dropped (utils.load_episodes
  -> load_nested_dataset).
- `data/*/*.parquet`, sorted and concatenated (load_nested_dataset), typed by the features
  (get_hf_features_from_features: shape (1,) -> a scalar column of that dtype, videos have none).
- item idx: the data row; its episode's `dataset_from_index`/`dataset_to_index` bound it;
  `data/chunk_index`/`data/file_index` name the file it must come from (get_data_file_path);
  a video frame is decoded at `videos/<key>/from_timestamp` + the row's timestamp from
  `video_path` formatted with the episode's video chunk/file (LeRobotDataset._query_videos), the
  frame number being round(t * the container's fps) and its time within tolerance_s = 1e-4
  (decode_video_frames_torchcodec); OpenCV decodes here instead of torchcodec/PyAV.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

TOLERANCE_S = 1e-4
DEFAULT_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                    "task_index": "int64"}


class SpecError(AssertionError):
    """The folder breaks the LeRobot v3.0 layout."""


class LeRobotV3Reader:
    """Items of a LeRobotDataset v3.0 folder: dict of the row's features, `task` and, for each
    video key, the decoded frame (H, W, 3) uint8 BGR."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.info = json.loads((self.root / "meta/info.json").read_text())
        if self.info["codebase_version"] != "v3.0":
            raise SpecError(f"codebase_version {self.info['codebase_version']!r} is not v3.0")
        for ft in self.info["features"].values():
            ft["shape"] = tuple(ft["shape"])
        for name, dtype in DEFAULT_FEATURES.items():
            ft = self.info["features"].get(name)
            if ft is None or ft["dtype"] != dtype or ft["shape"] != (1,):
                raise SpecError(f"default feature {name} is {ft}, expected dtype {dtype} shape (1,)")
        self.fps = self.info["fps"]
        if not isinstance(self.fps, int):
            raise SpecError(f"fps {self.fps!r} is not an int")
        self.video_keys = [k for k, ft in self.info["features"].items() if ft["dtype"] == "video"]
        self.tasks = _read_tasks(self.root / "meta/tasks.parquet")
        self.episodes = _concat(sorted((self.root / "meta/episodes").glob("*/*.parquet")))
        self.episodes = self.episodes.select([c for c in self.episodes.column_names if not c.startswith("stats/")])
        self.data_files = sorted((self.root / "data").glob("*/*.parquet"))
        tables = [pq.read_table(p) for p in self.data_files]
        self._file_of_row = np.concatenate([np.full(t.num_rows, i) for i, t in enumerate(tables)]) if tables else []
        self.data = pa.concat_tables(tables) if tables else None
        self._check_columns()
        self._episodes = self.episodes.to_pylist()
        self._rows = self.data.to_pylist()

    def __len__(self) -> int:
        return self.info["total_frames"]

    def episode(self, ep_idx: int) -> dict:
        return self._episodes[ep_idx]

    def __getitem__(self, idx: int) -> dict:
        item = dict(self._rows[idx])
        ep = self._episodes[item["episode_index"]]
        if ep["episode_index"] != item["episode_index"]:
            raise SpecError(f"episode row {item['episode_index']} holds episode {ep['episode_index']}")
        if not ep["dataset_from_index"] <= item["index"] < ep["dataset_to_index"]:
            raise SpecError(f"row {idx} (index {item['index']}) outside its episode's "
                            f"[{ep['dataset_from_index']}, {ep['dataset_to_index']})")
        data_path = self.root / self.info["data_path"].format(chunk_index=ep["data/chunk_index"],
                                                             file_index=ep["data/file_index"])
        if self.data_files[self._file_of_row[idx]] != data_path:
            raise SpecError(f"row {idx} is in {self.data_files[self._file_of_row[idx]]}, its episode says {data_path}")
        for key in self.video_keys:
            path = self.root / self.info["video_path"].format(
                video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"], file_index=ep[f"videos/{key}/file_index"])
            item[key] = _frame_at(str(path), ep[f"videos/{key}/from_timestamp"] + item["timestamp"])
        item["task"] = self.tasks[item["task_index"]]
        return item

    def _check_columns(self) -> None:
        wanted = {k: ft for k, ft in self.info["features"].items() if ft["dtype"] not in ("video", "image")}
        got = {f.name: f.type for f in self.data.schema}
        if set(got) != set(wanted):
            raise SpecError(f"data columns {sorted(got)} are not the non-video features {sorted(wanted)}")
        for k, ft in wanted.items():
            if ft["shape"] != (1,) or got[k] != pa.from_numpy_dtype(np.dtype(ft["dtype"])):
                raise SpecError(f"column {k} is {got[k]}, feature says {ft['dtype']} {ft['shape']}")
        for col in ("episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                    "dataset_to_index", "meta/episodes/chunk_index", "meta/episodes/file_index"):
            if col not in self.episodes.column_names:
                raise SpecError(f"episodes metadata lacks {col}")
        for key in self.video_keys:
            for col in ("chunk_index", "file_index", "from_timestamp", "to_timestamp"):
                if f"videos/{key}/{col}" not in self.episodes.column_names:
                    raise SpecError(f"episodes metadata lacks videos/{key}/{col}")


def _concat(paths: list[Path]) -> pa.Table:
    if not paths:
        raise SpecError("no parquet file")
    return pa.concat_tables([pq.read_table(p) for p in paths])


def _read_tasks(path: Path) -> list[str]:
    """Task texts by position, as pd.read_parquet would index them (the pandas metadata names the
    index column)."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"pandas"])
    (index_column,) = meta["index_columns"]
    tasks = table.column(index_column).to_pylist()
    if table.column("task_index").to_pylist() != list(range(len(tasks))):
        raise SpecError("task_index is not the row position in meta/tasks.parquet")
    return tasks


@lru_cache(maxsize=8)
def _decoded(path: str) -> tuple[float, list[tuple[float, np.ndarray]]]:
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SpecError(f"cannot open video {path}")
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append((cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0, img))
    cap.release()
    return fps, frames


def _frame_at(path: str, t: float) -> np.ndarray:
    fps, frames = _decoded(path)
    i = round(t * fps)
    if not 0 <= i < len(frames):
        raise SpecError(f"timestamp {t:.4f} s is frame {i}, the video {path} has {len(frames)}")
    pts, img = frames[i]
    if abs(pts - t) >= TOLERANCE_S:
        raise SpecError(f"frame {i} of {path} is at {pts:.6f} s, query {t:.6f} s (tolerance {TOLERANCE_S})")
    return img
