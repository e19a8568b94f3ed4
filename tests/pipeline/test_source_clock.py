"""Segment times are the source's own timestamps: a source slower than the model fps, and one
whose clock jumps (a reconnect gap), give segments at the times their frames carry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.energy import HysteresisParams
from edge.loop import SegmentList, SinkBase, StreamLoop
from edge.pipeline import build_pipeline
from edge.sources.base import Frame, FrameSource
from edge.sources.factory import open_source

W, H = 320, 240
MOVING = (12.0, 20.0)  # seconds of the source's clock in which the block moves


def textured_frame(x: int, rng_seed: int = 3) -> np.ndarray:
    """A static textured background with a textured 100x100 block whose left edge is at x."""
    rng = np.random.default_rng(rng_seed)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (H, W, 3), dtype=np.uint8), (5, 5), 0)
    block = cv2.GaussianBlur(np.random.default_rng(7).integers(0, 255, (100, 100, 3), dtype=np.uint8), (3, 3), 0)
    img = bg.copy()
    img[70:170, x:x + 100] = block
    return img


def block_x(t: float) -> int:
    """Block position at time t: still, then 20 px/s to the right, still again."""
    a, b = MOVING
    return 20 + int(round(20.0 * (min(max(t, a), b) - a)))


def write_slow_video(path: Path, fps: float, seconds: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened()
    for i in range(int(seconds * fps)):
        writer.write(textured_frame(block_x(i / fps)))
    writer.release()


class Timestamps(SinkBase):
    """index -> timestamp of every frame the loop processed."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.last_period = 0.0

    def frame(self, step) -> None:
        if self.at:
            self.last_period = step.timestamp_s - self.at[max(self.at)]
        self.at[step.index] = step.timestamp_s


def check_times(segments, stamps: Timestamps, origin: datetime) -> None:
    for seg in segments:
        assert seg.start_s == pytest.approx(stamps.at[seg.start_frame])
        if seg.end_frame in stamps.at:
            assert seg.end_s == pytest.approx(stamps.at[seg.end_frame])
        else:  # open at the end of the stream: one frame period after its last frame
            assert seg.end_s == pytest.approx(stamps.at[seg.end_frame - 1] + stamps.last_period)
        start_utc = datetime.fromisoformat(seg.start_utc.replace("Z", "+00:00"))
        assert abs((start_utc - origin).total_seconds() - seg.start_s) < 0.002
        assert all(k in stamps.at for k in seg.keyframes)


def test_a_source_slower_than_the_model_fps_keeps_its_own_times(tmp_path):
    video = tmp_path / "slow.avi"
    write_slow_video(video, fps=2.5, seconds=30.0)  # 75 frames for a 10 fps model
    pipe = build_pipeline(model_dir=None, params=HysteresisParams(theta_on=0.3, up_steps=2, down_steps=2))
    found, stamps = SegmentList(), Timestamps()
    origin = datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)
    with open_source(str(video), fps=pipe.fps, size=pipe.input_size) as src:
        StreamLoop(pipe, [found, stamps]).run(src, origin_utc=origin)
    assert len(stamps.at) == 75  # not duplicated up to 10 fps
    assert found.segments, "the moving block gave no segment"
    check_times(found.segments, stamps, origin)
    # The motion lies at 12-20 s of the file; counting steps at 10 fps would put it at 3-5 s.
    main = max(found.segments, key=lambda s: s.duration_s)
    assert MOVING[0] - 1.0 <= main.start_s <= MOVING[0] + 1.5
    assert MOVING[1] - 1.5 <= main.end_s <= MOVING[1] + 1.5
    assert all(fin.keyframes for fin in found.items)


class GapSource(FrameSource):
    """A live-like source at 10 fps whose clock jumps by `gap_s` after frame `at` (it reconnected
    and kept its clock): frames are drawn from `block_x` of their own timestamp."""

    name = "gap"

    def __init__(self, n: int, at: int, gap_s: float) -> None:
        self.n, self.at, self.gap_s = n, at, gap_s
        self.i = 0

    def open(self) -> None:
        self.i = 0

    def read(self) -> Frame | None:
        if self.i >= self.n:
            return None
        i = self.i
        self.i += 1
        t = i / 10.0 + (self.gap_s if i >= self.at else 0.0)
        return Frame(textured_frame(block_x(t)), t, i, i)

    def close(self) -> None:
        pass

    @property
    def fps(self) -> float:
        return 10.0

    @property
    def frame_size(self) -> tuple[int, int]:
        return (W, H)

    @property
    def frame_count(self) -> int | None:
        return self.n


def test_a_source_with_a_reconnect_gap_keeps_its_own_times():
    # 10 s of frames, then the clock jumps by 7 s: the block moves from 12 s on the source's
    # clock, i.e. from frame 50 (5 s + 7 s gap), and keeps moving to the end of the stream.
    pipe = build_pipeline(model_dir=None, params=HysteresisParams(theta_on=0.1, up_steps=2, down_steps=2))
    found, stamps = SegmentList(), Timestamps()
    origin = datetime.now(timezone.utc) - timedelta(minutes=5)
    source = GapSource(n=120, at=50, gap_s=7.0)
    with source:
        StreamLoop(pipe, [found, stamps]).run(source, origin_utc=origin)
    assert found.segments
    check_times(found.segments, stamps, origin)
    main = max(found.segments, key=lambda s: s.duration_s)
    assert main.start_s >= 12.0 - 0.5  # after the gap, in the source's time (not 5 s)
    assert main.start_frame >= 45
