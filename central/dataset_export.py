"""Dataset export for VLA pre-training: one record per segment, as Parquet and JSONL.

Schema `laps.primitive-dataset/1` (one row per segment; Parquet types, JSONL the same keys):

    segment_id        string            UUIDv7 of the segment (globally unique)
    cluster_id        int32             primitive (cluster) of the run; -1 = not clustered
                                        (no codes, or stored after the run)
    cluster_distance  float32, null     distance to its cluster centre (normalised space)
    run_id            string            the clustering run the cluster ids come from
    site, device_id   string            where it was recorded
    model_version     string            tokenizer that produced `codes` (see the registry)
    boot_id, seq      string, int64     device boot and position in that boot's stream
    start_utc         timestamp[ms, UTC] wall-clock start (JSONL: ISO-8601 'Z' text)
    end_utc           timestamp[ms, UTC] wall-clock end
    start_frame       int64             frame index at `fps` from the stream start
    end_frame         int64             exclusive
    fps               float32           model frame rate of the frame indices and codes
    duration_s        float64           (end_frame - start_frame) / fps
    codes             list<int32>       one FSQ code per step; z_q = the model's FSQ projection
    energy_mean       float64           smoothed latent action energy inside the segment
    energy_max        float64
    keyframe_frames   list<int32>       frame indices of the uploaded keyframes
    keyframe_paths    list<string>      their JPEG files
    clip_path         string, null      the segment's MJPEG clip, when one was uploaded

Paths are relative to the media folder (`<data_dir>/media`, recorded as `laps.media_root` in
the Parquet metadata and in `dataset.json`), or absolute with `absolute_paths=True`. Rows are
in (start_utc, segment_id) order. `dataset.json` beside the files records the schema name, the
run, the selection, the row count and the cluster sizes.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from central.store import Selection, StoredSegment
from central.store_protocol import CentralStore
from edge.errors import ConfigError

SCHEMA_NAME = "laps.primitive-dataset/1"
FORMATS = ("parquet", "jsonl")


def arrow_schema(media_root: str = ""):
    """The pyarrow schema of the Parquet file (with the schema name and media root as metadata)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("segment_id", pa.string()), ("cluster_id", pa.int32()), ("cluster_distance", pa.float32()),
            ("run_id", pa.string()), ("site", pa.string()), ("device_id", pa.string()),
            ("model_version", pa.string()), ("boot_id", pa.string()), ("seq", pa.int64()),
            ("start_utc", pa.timestamp("ms", tz="UTC")), ("end_utc", pa.timestamp("ms", tz="UTC")),
            ("start_frame", pa.int64()), ("end_frame", pa.int64()), ("fps", pa.float32()),
            ("duration_s", pa.float64()), ("codes", pa.list_(pa.int32())), ("energy_mean", pa.float64()),
            ("energy_max", pa.float64()), ("keyframe_frames", pa.list_(pa.int32())),
            ("keyframe_paths", pa.list_(pa.string())), ("clip_path", pa.string()),
        ],
        metadata={"laps.schema": SCHEMA_NAME, "laps.media_root": media_root},
    )


def resolve_run(store: CentralStore, run_id: str = "latest") -> dict:
    """The stored run `run_id` ('latest' = the newest); `ConfigError` if there is none."""
    runs = store.cluster_runs()
    if not runs:
        raise ConfigError(f"store {store.location} holds no clustering run; run `laps-central cluster` first")
    if run_id in ("", "latest"):
        return runs[0]
    for run in runs:
        if run["run_id"] == run_id:
            return run
    known = ", ".join(r["run_id"] for r in runs[:5])
    raise ConfigError(f"clustering run {run_id!r} is not in {store.location}; known runs (newest first): {known}")


def export_dataset(store: CentralStore, media_dir: str | os.PathLike, out_dir: str | os.PathLike, *, run_id: str = "latest",
                   formats: tuple[str, ...] = FORMATS, clustered_only: bool = False, absolute_paths: bool = False,
                   chunk: int = 5000, progress: bool = False) -> dict:
    """Write `segments.parquet` and/or `segments.jsonl` and `dataset.json` into `out_dir`.

    The rows are the segments of the run's selection (its model version, time range, site,
    device); `clustered_only` keeps only those the run assigned. Returns the dataset.json dict.
    """
    for f in formats:
        if f not in FORMATS:
            raise ConfigError(f"export format {f!r} is not known; use parquet and/or jsonl")
    run = resolve_run(store, run_id)
    sel = Selection(**run["params"]["selection"])
    media_root = Path(media_dir).resolve()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = None
    jsonl = None
    schema = arrow_schema("" if absolute_paths else str(media_root))
    if "parquet" in formats:
        import pyarrow.parquet as pq

        writer = pq.ParquetWriter(out / "segments.parquet", schema)
    if "jsonl" in formats:
        jsonl = open(out / "segments.jsonl", "w", encoding="utf-8")
    rows = 0
    sizes: dict[int, int] = {}
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=store.count(sel), desc="export", unit="seg", file=sys.stderr, leave=False)
    try:
        for records in _records(store, run["run_id"], sel, media_root, absolute_paths, clustered_only, chunk):
            if writer is not None:
                import pyarrow as pa

                writer.write_table(pa.Table.from_pylist(records, schema=schema))
            if jsonl is not None:
                for r in records:
                    jsonl.write(json.dumps(_jsonable(r), separators=(",", ":")) + "\n")
            for r in records:
                sizes[r["cluster_id"]] = sizes.get(r["cluster_id"], 0) + 1
            rows += len(records)
            if bar is not None:
                bar.update(len(records))
    finally:
        if writer is not None:
            writer.close()
        if jsonl is not None:
            jsonl.close()
        if bar is not None:
            bar.close()
    info = {
        "schema": SCHEMA_NAME, "run_id": run["run_id"], "model_version": run["model_version"],
        "method": run["method"], "k": run["k"], "selection": run["params"]["selection"], "rows": rows,
        "cluster_sizes": {str(k): v for k, v in sorted(sizes.items())},
        "media_root": None if absolute_paths else str(media_root), "paths": "absolute" if absolute_paths else "relative",
        "files": [f"segments.{f}" for f in formats], "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (out / "dataset.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def _records(store: CentralStore, run_id: str, sel: Selection, media_root: Path, absolute: bool, clustered_only: bool,
             chunk: int) -> Iterator[list[dict]]:
    for segs in store.iter_segments(sel, chunk=chunk):
        ids = [s.segment_id for s in segs]
        assigned = store.assignments(run_id, ids)
        media = store.media(ids)
        out = []
        for s in segs:
            if clustered_only and s.segment_id not in assigned:
                continue
            out.append(_record(s, run_id, assigned.get(s.segment_id), media.get(s.segment_id, []), media_root, absolute))
        if out:
            yield out


def _record(s: StoredSegment, run_id: str, assignment, files, media_root: Path, absolute: bool) -> dict:
    def path(rel: str) -> str:
        return str(media_root / rel) if absolute else rel

    keyframes = [f for f in files if f.kind == "keyframe"]
    clips = [f for f in files if f.kind == "clip"]
    return {
        "segment_id": s.segment_id, "cluster_id": assignment[0] if assignment else -1,
        "cluster_distance": assignment[1] if assignment else None, "run_id": run_id, "site": s.site,
        "device_id": s.device_id, "model_version": s.model_version, "boot_id": s.boot_id, "seq": s.seq,
        "start_utc": datetime.fromtimestamp(s.start_ms / 1000, tz=timezone.utc),
        "end_utc": datetime.fromtimestamp(s.end_ms / 1000, tz=timezone.utc),
        "start_frame": s.start_frame, "end_frame": s.end_frame, "fps": s.fps, "duration_s": s.duration_s,
        "codes": s.codes.astype(int).tolist(), "energy_mean": s.energy_mean, "energy_max": s.energy_max,
        "keyframe_frames": [int(f.frame) for f in keyframes if f.frame is not None],
        "keyframe_paths": [path(f.path) for f in keyframes if f.frame is not None],
        "clip_path": path(clips[0].path) if clips else None,
    }


def _jsonable(r: dict) -> dict:
    out = dict(r)
    for key in ("start_utc", "end_utc"):
        out[key] = out[key].isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return out
