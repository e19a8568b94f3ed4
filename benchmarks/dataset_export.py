"""Dataset export speed: segments/s of `export-dataset` per format, all in one run on one store.

The store is built the way central fills it: segment messages validated and ingested, and for
every segment three 320x240 JPEG keyframes (the device's keyframe size) uploaded in real batch
archives and unpacked by the batch receiver. Segments are 30 steps (3 s at 10 fps). A saved
clustering run assigns them to 8 primitives (the assignment's quality does not matter here;
the cluster step is benchmarked in benchmarks/clustering.py).

Rows (median seconds over repeats, each into a fresh folder; ratio to the Parquet baseline):
- parquet: `segments.parquet` only (the existing export; the baseline)
- jsonl: `segments.jsonl` only
- lerobot mpeg4: the LeRobotDataset v3.0 (Parquet data + metadata, MP4 video of every step)
- lerobot vp9: the same with VP9 video, on the first `--vp9-segments` segments only (its
  encoder is ~30x slower here), through a second saved run whose selection ends there

Run: `python -m benchmarks.dataset_export` from the repo root. About a minute.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from benchmarks.common import median_time_s, print_table, write_results

STEPS = 30
KEYFRAMES = 3
SIZE = (320, 240)
K = 8


def build_store(root: Path, n: int, seed: int = 0):
    """A store with `n` ingested segments, their keyframes uploaded, and two saved runs: 'all'
    and 'head' (the first `head` segments by time). Returns (store, media_dir, segment start ms)."""
    from central.batches import receive_batch
    from central.ingest import validate_segment
    from central.store import Store
    from edge.messages import Topics, encode, segment_message
    from edge.segments import Segment, utc_iso, uuid7
    from edge.upload import BatchSpool

    rng = np.random.default_rng(seed)
    origin = datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
    store = Store(root / "central.sqlite")
    media = root / "media"
    spool = BatchSpool(root / "spool", device_id="dev-1", site="site-a", max_batch_bytes=8 << 20)
    topics = Topics("site-a", "dev-1")
    payloads, starts = [], []
    background = cv2.GaussianBlur(rng.integers(0, 255, (SIZE[1], SIZE[0], 3), dtype=np.uint8), (0, 0), 6)
    for i in range(n):
        start = i * 60
        ms = int((origin + timedelta(seconds=start / 10)).timestamp() * 1000)
        seg = Segment(segment_id=str(uuid7(ms)), start_frame=start, end_frame=start + STEPS, start_s=start / 10,
                      end_s=(start + STEPS) / 10, fps=10.0, start_utc=utc_iso(origin, start / 10),
                      end_utc=utc_iso(origin, (start + STEPS) / 10),
                      codes=rng.integers(0, 1920, STEPS).tolist(), energy_mean=1.0, energy_max=2.0,
                      keyframes=[start, start + STEPS // 2, start + STEPS - 1], model_version="bench")
        payloads.append((topics.segments, encode(segment_message(seg, device_id="dev-1", site="site-a",
                                                                 boot_id="boot-1", seq=i))))
        stills = {}
        for f in seg.keyframes:
            img = background.copy()
            cv2.circle(img, (40 + (f * 7) % 240, 120), 25, (0, 0, 255), -1)
            stills[f] = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        spool.add_segment(seg.segment_id, stills)
        starts.append(ms)
    store.ingest([(validate_segment(t, p), t) for t, p in payloads], [])
    while (batch := spool.seal()) is not None:
        receive_batch(store, media, "dev-1", batch.sha256, batch.path)
        spool.remove(batch)  # acknowledged, as the uploader does after a 2xx
    return store, media, starts


def save_run(store, run_id: str, until_ms: int | None) -> None:
    from central.store import Selection

    selection = {"since_ms": None, "until_ms": until_ms, "site": "", "device_id": "", "model_version": "bench"}
    ids = [s.segment_id for chunk in store.iter_segments(Selection(**selection)) for s in chunk]
    store.save_cluster_run(run_id, model_version="bench", method="transformer", k=K, params={"selection": selection},
                           metrics={}, assignments=[(sid, i % K, 0.1) for i, sid in enumerate(ids)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--segments", type=int, default=300)
    parser.add_argument("--vp9-segments", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from central.dataset_export import export_dataset
    from central.lerobot_export import export_lerobot

    with tempfile.TemporaryDirectory(prefix="laps-bench-export-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        store, media, starts = build_store(root, args.segments)
        save_run(store, "all", None)
        save_run(store, "head", starts[args.vp9_segments] if args.vp9_segments < len(starts) else None)
        print(f"store: {args.segments} segments x {STEPS} steps, {KEYFRAMES} keyframes each at {SIZE[0]}x{SIZE[1]}, "
              f"built in {time.perf_counter() - t0:.1f} s")
        counter = iter(range(10**6))

        def fresh() -> Path:
            out = root / f"out-{next(counter)}"
            shutil.rmtree(out, ignore_errors=True)
            return out

        cases = [
            ("parquet (baseline)", args.segments, args.repeats,
             lambda: export_dataset(store, media, fresh(), run_id="all", formats=("parquet",))),
            ("jsonl", args.segments, args.repeats,
             lambda: export_dataset(store, media, fresh(), run_id="all", formats=("jsonl",))),
            ("lerobot v3.0, mpeg4 video", args.segments, args.repeats,
             lambda: export_lerobot(store, media, fresh(), run_id="all", codec="mpeg4")),
            ("lerobot v3.0, vp9 video", args.vp9_segments, 1,
             lambda: export_lerobot(store, media, fresh(), run_id="head", codec="vp9")),
        ]
        rows = []
        base = None
        for name, n, repeats, fn in cases:
            seconds = median_time_s(fn, repeats=repeats, warmup=1 if repeats > 1 else 0)
            rate = n / seconds
            base = base or rate
            rows.append({"name": f"dataset export segments/s: {name}", "segments": n, "frames": n * STEPS,
                         "repeats": repeats, "seconds": seconds, "segments_per_s": rate,
                         "frames_per_s": n * STEPS / seconds, "ratio_to_parquet": rate / base})
        store.close()
    print_table(rows, "dataset export: segments/s per format (same store, same run)")
    write_results("dataset_export", rows)


if __name__ == "__main__":
    main()
