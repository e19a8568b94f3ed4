"""The per-frame pipeline gives the same segments as the kernel's series runner on its energies."""

from __future__ import annotations

import numpy as np
import pytest

from edge.energy import HysteresisParams, run_series
from edge.errors import ConfigError
from edge.pipeline import build_pipeline, velocity_energy
from edge.sources.factory import open_source


def _run(pipe, spec):
    pipe.record_trace()
    segments = []
    with open_source(spec, fps=pipe.fps, size=pipe.input_size) as src:
        for frame in src:
            segments += pipe.process(frame)
    segments += pipe.finish()
    return segments


def test_pipeline_segments_equal_the_series_runner_on_the_recorded_energy():
    pipe = build_pipeline(model_dir=None, params=HysteresisParams(theta_on=0.3), keep_keyframes=False)
    segments = _run(pipe, "synthetic://assembly?seed=903&minutes=0.4")
    energy = np.array([t[0] for t in pipe.trace])
    expected = run_series(energy, pipe.params).segments
    got = np.array([(s.start_frame, s.end_frame) for s in segments], dtype=np.int64).reshape(-1, 2)
    np.testing.assert_array_equal(got, expected)
    assert len(segments) > 0


def test_keyframes_of_a_finished_segment_are_jpeg_bytes_once():
    pipe = build_pipeline(model_dir=None, params=HysteresisParams(theta_on=0.3))
    segments = _run(pipe, "synthetic://assembly?seed=903&minutes=0.4")
    assert segments
    frames = pipe.keyframes(segments[0].segment_id)
    assert set(frames) == set(segments[0].keyframes)
    assert all(data[:2] == b"\xff\xd8" for data in frames.values())
    assert pipe.keyframes(segments[0].segment_id) == {}


def test_velocity_energy_is_the_mean_speed_of_visible_points():
    v = np.array([[3.0, 4.0], [0.0, 1.0], [100.0, 0.0]], np.float32)
    vis = np.array([True, True, False])
    assert velocity_energy(v, vis) == pytest.approx(3.0)
    assert velocity_energy(v, np.zeros(3, bool)) == 0.0


def test_a_calibration_file_that_does_not_exist_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="laps-calibrate"):
        build_pipeline(model_dir=None, calibration_path=str(tmp_path / "calibration.json"))
