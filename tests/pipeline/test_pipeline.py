"""The per-frame pipeline gives the same segments as the kernel's series runner on its energies."""

from __future__ import annotations

import numpy as np
import pytest

from edge.energy import HysteresisParams, run_series
from edge.errors import ConfigError
from edge.loop import SegmentList, StreamLoop
from edge.pipeline import build_pipeline, velocity_energy
from edge.energy_trace import EnergyTraceRecorder
from edge.sources.factory import open_source


def _run(pipe, spec):
    """(finished segments, per-frame `EnergyTrace`) of `spec` through the frame loop."""
    found, trace = SegmentList(), EnergyTraceRecorder(fps=pipe.fps, model_version=pipe.model_version)
    with open_source(spec, fps=pipe.fps, size=pipe.input_size) as src:
        StreamLoop(pipe, [found, trace]).run(src)
    return found.items, trace.trace()


def test_pipeline_segments_equal_the_series_runner_on_the_recorded_energy():
    pipe = build_pipeline(model_dir=None, params=HysteresisParams(theta_on=0.3), keep_keyframes=False)
    finished, trace = _run(pipe, "synthetic://assembly?seed=903&minutes=0.4")
    segments = [f.segment for f in finished]
    expected = run_series(trace.energy, pipe.params).segments
    got = np.array([(s.start_frame, s.end_frame) for s in segments], dtype=np.int64).reshape(-1, 2)
    np.testing.assert_array_equal(got, expected)
    assert len(segments) > 0


def test_a_finished_segment_carries_its_keyframes_as_jpeg_bytes():
    pipe = build_pipeline(model_dir=None, params=HysteresisParams(theta_on=0.3))
    finished, _ = _run(pipe, "synthetic://assembly?seed=903&minutes=0.4")
    assert finished
    for fin in finished:
        assert set(fin.keyframes) == set(fin.segment.keyframes)
        assert all(data[:2] == b"\xff\xd8" for data in fin.keyframes.values())
        assert fin.clip is None  # no clip recorder configured


def test_velocity_energy_is_the_mean_speed_of_visible_points():
    v = np.array([[3.0, 4.0], [0.0, 1.0], [100.0, 0.0]], np.float32)
    vis = np.array([True, True, False])
    assert velocity_energy(v, vis) == pytest.approx(3.0)
    assert velocity_energy(v, np.zeros(3, bool)) == 0.0


def test_a_calibration_file_that_does_not_exist_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="laps-calibrate"):
        build_pipeline(model_dir=None, calibration_path=str(tmp_path / "calibration.json"))
