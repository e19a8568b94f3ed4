"""LeRobotDataset (layout v3.0) export of a clustering run, for VLA pre-training with latent actions.

One **episode per segment**: a segment is the unit that carries everything the dataset needs (one
FSQ code per model step, a cluster id, its keyframes and clip), while the time between segments
has no codes and, on central, no pictures; an episode per recording would be mostly holes that
LeRobot's reader cannot represent (it expects one row every 1/fps inside an episode). The
recording is not lost: every episode carries its device, boot, sequence number and UTC span.

Layout written into `out_dir` (paths as LeRobot v3.0 defines them):

    meta/info.json                                 codebase_version "v3.0", fps, features, totals
    meta/tasks.parquet                             task string (pandas index) -> task_index
    meta/episodes/chunk-CCC/file-FFF.parquet       one row per episode (same chunk/file as its data)
    data/chunk-CCC/file-FFF.parquet                one row per frame
    videos/observation.images.camera/chunk-CCC/file-FFF.mp4   (only when pictures were uploaded)

Frames are the segment's model steps: frame i of an episode is source frame `start_frame + i`
at the model fps, timestamp i / fps. Features per frame:

    timestamp, frame_index, episode_index, index, task_index   LeRobot's default features
    latent_action      int64  the FSQ code of this step (rebuild z_q with the model's bundle)
    source_frame       int64  the device's frame index (joins keyframes and the Parquet export)
    image_source       int64  how the video frame was made: 1 = a picture of this step (keyframe,
                              else clip frame), 2 = the nearest picture of the segment repeated,
                              0 = grey (the segment has no uploaded picture)
    observation.images.camera  video: keyframes and clip frames resized to one size (the first
                              uploaded keyframe's), BGR -> the codec's yuv420p

Tasks are the run's primitives: task_index = cluster id, task text "primitive <id>". Only the
segments the run assigned are episodes (the others have no task); the summary counts those left out.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from central.store import MediaFile, Selection, StoredSegment
from central.store_protocol import CentralStore
from edge.errors import ConfigError

CODEBASE_VERSION = "v3.0"
VIDEO_KEY = "observation.images.camera"
#: codec name as LeRobot records it (ffmpeg's canonical name) -> OpenCV fourcc. Both write and read
#: back with the OpenCV wheel we ship; h264/hevc/av1 writers are not in it. mpeg4 is ~30x faster to
#: encode here, vp9 also plays in browsers (LeRobot's dataset visualiser).
VIDEO_CODECS = {"mpeg4": "mp4v", "vp9": "vp09"}
CHUNKS_SIZE = 1000  # files per chunk folder, LeRobot's default
DATA_FILE_MB = 100.0  # roll to the next data/video file past these sizes (LeRobot's defaults)
VIDEO_FILE_MB = 200.0
GREY = 128

INFO_PATH = "meta/info.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"

#: image_source values (documented above)
IMAGE_BLANK, IMAGE_OWN, IMAGE_NEAREST = 0, 1, 2


def task_text(cluster_id: int) -> str:
    """The LeRobot task string of a primitive (cluster)."""
    return f"primitive {int(cluster_id)}"


def export_lerobot(store: CentralStore, media_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                   run_id: str = "latest", codec: str = "mpeg4", data_file_mb: float = DATA_FILE_MB,
                   video_file_mb: float = VIDEO_FILE_MB, chunk: int = 2000, progress: bool = False) -> dict:
    """Write the run's assigned segments as a LeRobotDataset v3.0 into `out_dir` (empty or new).

    `codec`: a key of VIDEO_CODECS. `data_file_mb`/`video_file_mb`: size at which the next
    data/video file starts. Returns a summary: episodes, frames, tasks, left-out counts, the
    video size (None when the selection has no uploaded picture) and the files written.
    """
    from central.dataset_export import resolve_run

    if codec not in VIDEO_CODECS:
        raise ConfigError(f"video codec {codec!r} is not available; use one of {', '.join(VIDEO_CODECS)}")
    run = resolve_run(store, run_id)
    sel = Selection(**run["params"]["selection"])
    out = Path(out_dir)
    for part in ("meta", "data", "videos"):
        if (out / part).exists() and (not (out / part).is_dir() or any((out / part).iterdir())):
            raise ConfigError(f"{out / part} already holds files; export a LeRobot dataset into a new or empty folder "
                              f"(LeRobot reads every file under data/ and meta/episodes/)")
    media_root = Path(media_dir).resolve()
    size = _first_picture_size(store, sel, media_root, chunk)
    fps = _integer_fps(store, sel)
    writer = _DatasetWriter(out, fps=fps, size=size, codec=codec, data_file_mb=data_file_mb,
                            video_file_mb=video_file_mb)
    left_out = {"not_assigned": 0, "no_codes": 0}
    unreadable = 0
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=store.count(sel), desc="lerobot", unit="seg", file=sys.stderr, leave=False)
    try:
        for segs in store.iter_segments(sel, chunk=chunk):
            ids = [s.segment_id for s in segs]
            assigned = store.assignments(run["run_id"], ids)
            media = store.media(ids) if size is not None else {}
            for s in segs:
                if s.segment_id not in assigned:
                    left_out["not_assigned"] += 1
                    continue
                if len(s.codes) == 0:
                    left_out["no_codes"] += 1
                    continue
                frames = None
                sources = np.full(len(s.codes), IMAGE_BLANK, np.int64)
                if size is not None:
                    frames, sources, bad = _episode_frames(s, media.get(s.segment_id, []), media_root, size)
                    unreadable += bad
                writer.add_episode(s, assigned[s.segment_id], frames, sources)
            if bar is not None:
                bar.update(len(segs))
        if writer.episodes == 0:
            raise ConfigError(f"clustering run {run['run_id']} assigned none of the {sum(left_out.values())} segments "
                              f"in its selection, so there is no episode to export; run `laps-central cluster` again")
        writer.finish(run)
    except BaseException:
        writer.abort()
        for part in ("meta", "data", "videos"):  # nothing half-written: these were empty or absent
            shutil.rmtree(out / part, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return {
        "format": f"lerobot {CODEBASE_VERSION}", "run_id": run["run_id"], "model_version": run["model_version"],
        "k": run["k"], "episodes": writer.episodes, "frames": writer.frames, "tasks": int(run["k"]), "fps": fps,
        "video": None if size is None else {"key": VIDEO_KEY, "width": size[0], "height": size[1], "codec": codec},
        "left_out": left_out, "unreadable_media": unreadable, "files": writer.files,
    }


# -- helpers ------------------------------------------------------------------------------------------
class _DatasetWriter:
    """Appends episodes to the current data/video/episodes files and rolls to the next file
    (chunk = file_number // CHUNKS_SIZE) once either passes its size limit."""

    def __init__(self, out: Path, *, fps: int, size: tuple[int, int] | None, codec: str, data_file_mb: float,
                 video_file_mb: float) -> None:
        self.out, self.fps, self.size, self.codec = out, fps, size, codec
        self.data_limit, self.video_limit = data_file_mb * 2**20, video_file_mb * 2**20
        self.episodes = self.frames = 0
        self.files: list[str] = []
        self._file_number = 0
        self._data_rows: list[dict] = []
        self._episode_rows: list[dict] = []
        self._file_frames = 0  # frames already in the current video file
        self._data_bytes = 0.0
        self._video = None
        self._data_writer = self._episodes_writer = None

    def _indices(self) -> dict:
        return {"chunk_index": self._file_number // CHUNKS_SIZE, "file_index": self._file_number % CHUNKS_SIZE}

    def add_episode(self, s: StoredSegment, assignment: tuple[int, float], frames: list[np.ndarray] | None,
                    sources: np.ndarray) -> None:
        n = len(s.codes)
        cluster, distance = assignment
        ix = self._indices()
        if self.size is not None:
            if self._video is None:
                self._open_video()
            for f in frames:
                self._video.write(f)
        start = self.frames
        steps = np.arange(n)
        self._data_rows.append({
            "timestamp": (steps / self.fps).astype(np.float32), "frame_index": steps,
            "episode_index": np.full(n, self.episodes), "index": start + steps, "task_index": np.full(n, cluster),
            "latent_action": s.codes.astype(np.int64), "source_frame": s.start_frame + steps, "image_source": sources,
        })
        row = {
            "episode_index": self.episodes, "tasks": [task_text(cluster)], "length": n,
            "data/chunk_index": ix["chunk_index"], "data/file_index": ix["file_index"],
            "dataset_from_index": start, "dataset_to_index": start + n,
        }
        if self.size is not None:
            row.update({
                f"videos/{VIDEO_KEY}/chunk_index": ix["chunk_index"],
                f"videos/{VIDEO_KEY}/file_index": ix["file_index"],
                f"videos/{VIDEO_KEY}/from_timestamp": self._file_frames / self.fps,
                f"videos/{VIDEO_KEY}/to_timestamp": (self._file_frames + n) / self.fps,
            })
            self._file_frames += n
        row.update({
            "meta/episodes/chunk_index": ix["chunk_index"], "meta/episodes/file_index": ix["file_index"],
            "laps/segment_id": s.segment_id, "laps/cluster_id": int(cluster), "laps/cluster_distance": float(distance),
            "laps/site": s.site, "laps/device_id": s.device_id, "laps/boot_id": s.boot_id, "laps/seq": int(s.seq),
            "laps/model_version": s.model_version, "laps/start_utc": s.start_utc, "laps/end_utc": s.end_utc,
            "laps/start_frame": int(s.start_frame), "laps/end_frame": int(s.end_frame),
            "laps/energy_mean": float(s.energy_mean), "laps/energy_max": float(s.energy_max),
        })
        self._episode_rows.append(row)
        self.episodes += 1
        self.frames += n
        self._data_bytes += n * 64  # eight 8-byte columns per row before compression: an upper bound
        if len(self._episode_rows) >= 1000:
            self._flush()
        if self._data_bytes >= self.data_limit or (
                self._video is not None and (self.out / self._video_path()).stat().st_size >= self.video_limit):
            self._roll()

    def finish(self, run: dict) -> None:
        """Close the open files; write tasks.parquet and info.json."""
        self._roll()
        import pyarrow as pa
        import pyarrow.parquet as pq

        k = int(run["k"])
        tasks = pa.table({"task_index": pa.array(range(k), pa.int64()),
                          "__index_level_0__": pa.array([task_text(c) for c in range(k)], pa.string())})
        # pandas' own index marker, so pd.read_parquet (LeRobot's load_tasks) gives the task string as index
        pandas_meta = {"index_columns": ["__index_level_0__"], "column_indexes": [], "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None}], "creator": {"library": "pyarrow", "version": pa.__version__},
            "pandas_version": "2.2.3"}
        tasks = tasks.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
        (self.out / "meta").mkdir(parents=True, exist_ok=True)
        pq.write_table(tasks, self.out / TASKS_PATH)
        info = {
            "codebase_version": CODEBASE_VERSION, "robot_type": None, "total_episodes": self.episodes,
            "total_frames": self.frames, "total_tasks": k, "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": _whole(self.data_limit / 2**20),
            "video_files_size_in_mb": _whole(self.video_limit / 2**20),
            "fps": self.fps, "splits": {"train": f"0:{self.episodes}"}, "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.size is not None else None,
            "features": features(self.fps, self.size, self.codec),
            "laps": {"schema": "laps.lerobot-export/1", "run_id": run["run_id"], "model_version": run["model_version"],
                     "method": run["method"], "k": k, "selection": run["params"]["selection"],
                     "latent_action": "FSQ code per model step; z_q = the model bundle's FSQ projection of it",
                     "image_source": {"0": "grey, no picture uploaded", "1": "picture of this step",
                                      "2": "nearest picture of the segment repeated"}},
        }
        (self.out / INFO_PATH).write_text(json.dumps(info, indent=4) + "\n", encoding="utf-8")
        self.files = [TASKS_PATH, INFO_PATH] + self.files

    def abort(self) -> None:
        """Close whatever is open (an export that failed leaves no writer holding a file)."""
        if self._video is not None:
            self._video.release()
            self._video = None
        for w in (self._data_writer, self._episodes_writer):
            if w is not None:
                w.close()
        self._data_writer = self._episodes_writer = None

    def _video_path(self) -> str:
        return VIDEO_PATH.format(video_key=VIDEO_KEY, **self._indices())

    def _open_video(self) -> None:
        import cv2

        path = self.out / self._video_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.codec]), float(self.fps),
                                      self.size)
        if not self._video.isOpened():
            self._video = None
            raise ConfigError(f"OpenCV cannot write {self.codec} MP4 here; use --video-codec "
                              f"{' or '.join(c for c in VIDEO_CODECS if c != self.codec)}")
        self.files.append(self._video_path())

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._episode_rows:
            return
        ix = self._indices()
        if self._data_writer is None:
            data_path = self.out / DATA_PATH.format(**ix)
            data_path.parent.mkdir(parents=True, exist_ok=True)
            self._data_writer = pq.ParquetWriter(data_path, data_schema())
            episodes_path = self.out / EPISODES_PATH.format(**ix)
            episodes_path.parent.mkdir(parents=True, exist_ok=True)
            self._episodes_writer = pq.ParquetWriter(episodes_path, episodes_schema(self.size is not None))
            self.files += [DATA_PATH.format(**ix), EPISODES_PATH.format(**ix)]
        schema = data_schema()
        columns = {f.name: pa.array(np.concatenate([r[f.name] for r in self._data_rows]), f.type) for f in schema}
        self._data_writer.write_table(pa.table(columns, schema=schema))
        self._episodes_writer.write_table(pa.Table.from_pylist(self._episode_rows,
                                                               schema=episodes_schema(self.size is not None)))
        self._data_rows.clear()
        self._episode_rows.clear()

    def _roll(self) -> None:
        self._flush()
        was_open = self._data_writer is not None
        self.abort()
        if was_open:
            self._file_number += 1
        self._file_frames = 0
        self._data_bytes = 0.0


def features(fps: int, size: tuple[int, int] | None, codec: str) -> dict:
    """The info.json `features` dict (LeRobot's format: dtype, shape, names; video info)."""
    scalar = {"shape": [1], "names": None}
    out: dict = {
        "timestamp": {"dtype": "float32", **scalar}, "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar}, "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
        "latent_action": {"dtype": "int64", "shape": [1], "names": ["fsq_code"]},
        "source_frame": {"dtype": "int64", **scalar}, "image_source": {"dtype": "int64", **scalar},
    }
    if size is not None:
        w, h = size
        out[VIDEO_KEY] = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"], "info": {
            "video.height": h, "video.width": w, "video.codec": codec, "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False}}
    return out


def data_schema():
    """Arrow schema of data/*.parquet: one scalar column per non-video feature, in features() order,
    with the Hugging Face `datasets` feature metadata LeRobot's own files carry."""
    import pyarrow as pa

    dtypes = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
              "task_index": "int64", "latent_action": "int64", "source_frame": "int64", "image_source": "int64"}
    names = {n: pa.from_numpy_dtype(np.dtype(d)) for n, d in dtypes.items()}
    hf = {"info": {"features": {n: {"dtype": d, "_type": "Value"} for n, d in dtypes.items()}}}
    return pa.schema(list(names.items()), metadata={b"huggingface": json.dumps(hf).encode()})


def episodes_schema(with_video: bool):
    """Arrow schema of meta/episodes/*.parquet (LeRobot's columns, then the segment's own under laps/)."""
    import pyarrow as pa

    cols = [("episode_index", pa.int64()), ("tasks", pa.list_(pa.string())), ("length", pa.int64()),
            ("data/chunk_index", pa.int64()), ("data/file_index", pa.int64()), ("dataset_from_index", pa.int64()),
            ("dataset_to_index", pa.int64())]
    if with_video:
        cols += [(f"videos/{VIDEO_KEY}/chunk_index", pa.int64()), (f"videos/{VIDEO_KEY}/file_index", pa.int64()),
                 (f"videos/{VIDEO_KEY}/from_timestamp", pa.float64()),
                 (f"videos/{VIDEO_KEY}/to_timestamp", pa.float64())]
    cols += [("meta/episodes/chunk_index", pa.int64()), ("meta/episodes/file_index", pa.int64()),
             ("laps/segment_id", pa.string()), ("laps/cluster_id", pa.int64()), ("laps/cluster_distance", pa.float64()),
             ("laps/site", pa.string()), ("laps/device_id", pa.string()), ("laps/boot_id", pa.string()),
             ("laps/seq", pa.int64()), ("laps/model_version", pa.string()), ("laps/start_utc", pa.string()),
             ("laps/end_utc", pa.string()), ("laps/start_frame", pa.int64()), ("laps/end_frame", pa.int64()),
             ("laps/energy_mean", pa.float64()), ("laps/energy_max", pa.float64())]
    return pa.schema(cols)


def _whole(x: float) -> int | float:
    """An int when x is whole (LeRobot's info.json holds its size limits as ints)."""
    return int(x) if float(x).is_integer() else x


def _integer_fps(store: CentralStore, sel: Selection) -> int:
    """The selection's one model fps as an integer (LeRobot's info.json fps is an int)."""
    rates = {round(float(s.fps), 6) for segs in store.iter_segments(sel, chunk=5000) for s in segs}
    if len(rates) != 1:
        raise ConfigError(f"the run's segments have frame rates {sorted(rates) or 'none'}; a LeRobot dataset has "
                          f"one fps: cluster one model version (`laps-central cluster --model-version ...`)")
    fps = rates.pop()
    if abs(fps - round(fps)) > 1e-6:
        raise ConfigError(f"model fps {fps:g} is not a whole number, which LeRobot's info.json needs; "
                          f"export with --format parquet instead")
    return int(round(fps))


def _first_picture_size(store: CentralStore, sel: Selection, media_root: Path, chunk: int) -> tuple[int, int] | None:
    """(width, height) of the first readable keyframe (else clip) in the selection; None if none."""
    for segs in store.iter_segments(sel, chunk=chunk):
        for files in store.media([s.segment_id for s in segs]).values():
            for f in files:
                pictures = _read_media(f, media_root)
                if pictures:
                    h, w = next(iter(pictures.values())).shape[:2]
                    return int(w), int(h)
    return None


def _read_media(f: MediaFile, media_root: Path) -> dict[int, np.ndarray]:
    """Decoded pictures of one media file: keyframe -> {frame: image}; clip -> {position: image}
    (position 0 = the clip's first frame). Empty when the file is missing or undecodable."""
    import cv2

    path = media_root / f.path
    if f.kind == "keyframe":
        img = cv2.imread(str(path), cv2.IMREAD_COLOR) if f.frame is not None else None
        return {} if img is None else {int(f.frame): img}
    cap = cv2.VideoCapture(str(path))
    out = {}
    try:
        while True:
            ok, img = cap.read()
            if not ok:
                break
            out[len(out)] = img
    finally:
        cap.release()
    return out


def _episode_frames(s: StoredSegment, files: list[MediaFile], media_root: Path,
                    size: tuple[int, int]) -> tuple[list[np.ndarray], np.ndarray, int]:
    """One picture per model step of the segment, its image_source, and the number of media
    files that could not be read.

    A keyframe belongs to step (frame - start_frame); a clip holds the segment's last frames (the
    device keeps only the newest clip_max_s seconds), so its last picture is the last step.
    Keyframes win over clip frames at the same step; steps without a picture take the nearest
    one (the earlier on a tie); a segment without any picture is grey.
    """
    import cv2

    n = len(s.codes)
    own: dict[int, np.ndarray] = {}
    bad = 0
    for f in sorted(files, key=lambda f: f.kind == "keyframe"):  # clips first, keyframes overwrite
        pictures = _read_media(f, media_root)
        if not pictures:
            bad += 1
            continue
        if f.kind == "keyframe":
            for frame, img in pictures.items():
                step = frame - s.start_frame
                if 0 <= step < n:
                    own[step] = img
        else:
            offset = n - len(pictures)
            for pos, img in pictures.items():
                if 0 <= offset + pos < n:
                    own[offset + pos] = img
    sources = np.full(n, IMAGE_BLANK, np.int64)
    if not own:
        grey = np.full((size[1], size[0], 3), GREY, np.uint8)
        return [grey] * n, sources, bad
    resized = {k: v if v.shape[1::-1] == size else cv2.resize(v, size, interpolation=cv2.INTER_AREA)
               for k, v in own.items()}
    have = np.array(sorted(resized))
    frames = []
    for step in range(n):
        if step in resized:
            frames.append(resized[step])
            sources[step] = IMAGE_OWN
        else:
            nearest = int(have[np.argmin(np.abs(have - step))])  # argmin takes the first: the earlier on a tie
            frames.append(resized[nearest])
            sources[step] = IMAGE_NEAREST
    return frames, sources, bad
