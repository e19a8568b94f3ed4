"""FpsResampler and ResizeSource: frames chosen by timestamp, never by count; exact resizing."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.sources.base import Frame, FrameSource
from edge.sources.file import FileSource
from edge.sources.resample import FpsResampler, ResizeSource, resample, resize


class TimestampedSource(FrameSource):
    """Frames at given timestamps (seconds); each image is filled with its source index."""

    def __init__(self, timestamps, fps: float = 30.0, size=(32, 24)) -> None:
        self.timestamps = list(timestamps)
        self.name = "timestamps"
        self._fps = fps
        self._size = size
        self._i = 0
        self.opened = self.closed = False

    def open(self) -> None:
        self.opened = True
        self._i = 0

    def read(self) -> Frame | None:
        if self._i >= len(self.timestamps):
            return None
        w, h = self._size
        frame = Frame(np.full((h, w, 3), self._i % 256, np.uint8), self.timestamps[self._i], self._i, self._i)
        self._i += 1
        return frame

    def close(self) -> None:
        self.closed = True

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size

    @property
    def frame_count(self) -> int | None:
        return len(self.timestamps)


def run(source: FrameSource) -> list[Frame]:
    with source:
        return list(source)


def test_30fps_to_10fps_takes_every_third_frame():
    frames = run(resample(TimestampedSource(np.arange(90) / 30.0), 10.0))
    assert [f.source_index for f in frames] == list(range(0, 90, 3))
    np.testing.assert_allclose([f.timestamp_s for f in frames], np.arange(30) / 10.0, atol=1e-9)


def test_25fps_to_10fps_picks_the_nearest_frame_to_each_tick():
    frames = run(resample(TimestampedSource(np.arange(50) / 25.0, fps=25.0), 10.0))
    # ticks 0.1, 0.3, ... fall exactly between two frames: the earlier one is taken
    assert [f.source_index for f in frames][:6] == [0, 2, 5, 7, 10, 12]
    ticks = np.arange(len(frames)) / 10.0
    assert np.abs(np.array([f.timestamp_s for f in frames]) - ticks).max() <= 0.02 + 1e-9
    assert len(frames) == 20


def test_variable_frame_rate_still_lands_on_the_ticks():
    rng = np.random.default_rng(500)
    gaps = rng.uniform(0.015, 0.05, size=400)  # 20..66 fps, changing every frame
    times = np.concatenate([[0.0], np.cumsum(gaps)])
    frames = run(resample(TimestampedSource(times), 10.0))
    ticks = np.arange(len(frames)) / 10.0
    # each delivered frame is within half the largest source gap of its tick
    assert np.abs(np.array([f.timestamp_s for f in frames]) - ticks).max() <= 0.025 + 1e-9
    assert len(frames) == int(np.floor(times[-1] * 10)) + 1


def test_chosen_frame_is_the_nearest_of_all_source_frames():
    rng = np.random.default_rng(501)
    times = np.sort(rng.uniform(0, 3, size=200))
    times -= times[0]
    frames = run(resample(TimestampedSource(times), 10.0))
    for out in frames:
        tick = out.index / 10.0
        nearest = np.min(np.abs(times - tick))
        assert abs(out.timestamp_s - tick) == pytest.approx(nearest, abs=1e-12)


def test_a_slower_source_is_not_padded_with_duplicates():
    src = FpsResampler(TimestampedSource(np.arange(20) / 5.0, fps=5.0), 10.0)
    frames = run(src)
    assert [f.source_index for f in frames] == list(range(20))
    assert src.skipped_ticks == 19


def test_output_index_counts_output_frames_and_source_index_keeps_the_original():
    frames = run(resample(TimestampedSource(np.arange(30) / 30.0), 10.0))
    assert [f.index for f in frames] == list(range(10))
    assert [f.source_index for f in frames] == list(range(0, 30, 3))
    assert all(int(f.image[0, 0, 0]) == f.source_index for f in frames)


def test_ticks_start_at_the_first_frame_timestamp():
    frames = run(resample(TimestampedSource(5.0 + np.arange(30) / 30.0), 10.0))
    assert frames[0].timestamp_s == 5.0 and frames[1].source_index == 3


def test_resampler_reports_target_fps_and_exact_count_for_constant_rate():
    for n, fps in [(90, 30.0), (50, 25.0), (7, 30.0), (31, 30.0)]:
        src = FpsResampler(TimestampedSource(np.arange(n) / fps, fps=fps), 10.0)
        assert src.fps == 10.0
        assert src.frame_count == len(run(src)), (n, fps)


def test_open_and_close_reach_the_wrapped_source():
    inner = TimestampedSource([0.0, 0.1])
    with resize(resample(inner, 10.0), (16, 12)):
        assert inner.opened
    assert inner.closed


def test_reopening_restarts_from_the_first_tick():
    src = resample(TimestampedSource(np.arange(9) / 30.0), 10.0)
    assert [f.source_index for f in run(src)] == [0, 3, 6]
    assert [f.source_index for f in run(src)] == [0, 3, 6]


def test_25fps_file_resampled_to_10fps_by_its_timestamps(make_video):
    path = make_video("clip25.mp4", n_frames=50, fps=25.0, size=(64, 48))
    frames = run(resample(FileSource(path), 10.0))
    assert len(frames) == 20
    ticks = np.arange(20) / 10.0
    assert np.abs(np.array([f.timestamp_s for f in frames]) - ticks).max() <= 0.02 + 1e-3


def test_resize_gives_the_model_input_size():
    frames = run(resize(TimestampedSource([0.0, 0.1], size=(64, 48)), (20, 10)))
    assert [f.image.shape for f in frames] == [(10, 20, 3)] * 2
    assert [f.index for f in frames] == [0, 1]


def test_resize_reports_its_size_before_reading():
    assert ResizeSource(TimestampedSource([0.0]), (320, 240)).frame_size == (320, 240)


@pytest.mark.parametrize("fps", [0, -10, float("nan"), float("inf"), "ten"])
def test_invalid_target_fps_is_a_config_error(fps):
    with pytest.raises(ConfigError, match="fps must be a positive number"):
        resample(TimestampedSource([0.0]), fps)


@pytest.mark.parametrize("size", [(0, 240), (320,), (320.5, 240), "320x240", None])
def test_invalid_size_is_a_config_error(size):
    with pytest.raises(ConfigError, match="frame size must be"):
        resize(TimestampedSource([0.0]), size)
