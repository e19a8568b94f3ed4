"""End-to-end speed and memory of the edge pipeline on a 640x480, 30 fps video file.

Each configuration runs in its own child process (so its peak RSS is its own): decode the
file, resample to the model fps (10) by timestamp, resize to 320x240, track, featurise,
kernel, assemble. Figures: processed model frames/s (target >= 60 with LK + tokenizer),
source frames/s, and the child's peak RSS (target <= 500 MB). The baseline, in the same run,
is decoding + resampling alone (no tracking or model): the ceiling the pipeline can reach.

Run: `python -m benchmarks.pipeline` (generates `.cache/bench/workstation-640x480.mp4` once).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import print_table, write_results
from edge.loop import SinkBase

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT / ".cache" / "bench" / "workstation-640x480.mp4"
SEED = 950  # held-out range; no training or tuning reads it
MINUTES = 1.0


def ensure_video() -> Path:
    if not VIDEO.is_file():
        from edge.synthetic import Nuisances, SyntheticWorkstation, write_video

        VIDEO.parent.mkdir(parents=True, exist_ok=True)
        ws = SyntheticWorkstation(seed=SEED, minutes=MINUTES, fps=30.0, size=(640, 480),
                                  nuisances=Nuisances.all_on())
        write_video(ws, VIDEO, VIDEO.with_suffix(".json"), progress=True)
    return VIDEO


class _Count(SinkBase):
    def __init__(self) -> None:
        self.frames, self.last_source_index = 0, 0

    def frame(self, step) -> None:
        self.frames += 1
        self.last_source_index = step.source_index


def child(mode: str, video: str) -> dict:
    """Run one configuration once over the file; print a JSON line with its figures."""
    from edge.loop import StreamLoop
    from edge.pipeline import build_pipeline
    from edge.sources.factory import open_source

    model = None
    if mode.startswith("laps"):
        model = str(ROOT / "edge" / "shipped_models" / "default")
    if mode == "decode":
        pipe = None
        fps, size = 10.0, (320, 240)
    else:
        pipe = build_pipeline(model_dir=model, keep_keyframes=(mode == "laps+keyframes"))
        pipe.warm_up()
        fps, size = pipe.fps, pipe.input_size
    frames = 0
    last_source_index = 0
    t0 = time.perf_counter()
    with open_source(video, fps=fps, size=size) as src:
        if pipe is None:
            for frame in src:
                frames += 1
                last_source_index = frame.source_index
        else:
            # The one frame loop every caller uses (edge.loop), into a sink that only counts.
            count = _Count()
            StreamLoop(pipe, [count]).run(src)
            frames, last_source_index = count.frames, count.last_source_index
    elapsed = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return {"frames": frames, "source_frames": last_source_index + 1, "seconds": elapsed,
            "peak_rss_mb": rss_mb, "torch_imported": "torch" in sys.modules}


def run_child(mode: str, video: Path) -> dict:
    out = subprocess.run([sys.executable, "-m", "benchmarks.pipeline", "--child", mode, str(video)],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "VIDEO"), help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0

    video = ensure_video()
    modes = ["decode", "velocity"]
    if (ROOT / "edge" / "shipped_models" / "default" / "manifest.json").is_file():
        modes += ["laps", "laps+keyframes"]
    names = {"decode": "decode + resample only (baseline)", "velocity": "LK + velocity energy",
             "laps": "LK + LAPS tokenizer", "laps+keyframes": "LK + LAPS tokenizer + keyframe JPEGs"}
    results = {}
    for mode in modes:
        runs = [run_child(mode, video) for _ in range(args.repeats)]
        secs = statistics.median(r["seconds"] for r in runs)
        results[mode] = {
            "name": names[mode],
            "model_frames_per_s": runs[0]["frames"] / secs,
            "source_frames_per_s": runs[0]["source_frames"] / secs,
            "ms_per_model_frame": 1e3 * secs / runs[0]["frames"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "torch_imported": any(r["torch_imported"] for r in runs),
        }
    base = results["decode"]["model_frames_per_s"]
    rows = []
    for mode in modes:
        row = results[mode]
        row["speed_vs_decode_only"] = row["model_frames_per_s"] / base
        rows.append(row)
    print_table(rows, title=f"End to end on {video.name} (640x480, 30 fps, {MINUTES:g} min) -> 10 fps, "
                            f"320x240; median of {args.repeats} runs; each in its own process")
    write_results("pipeline", rows, extra={"video": str(video.relative_to(ROOT)), "seed": SEED})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
