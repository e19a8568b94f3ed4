"""energy.npz: one owner (`edge.energy_trace`), written by laps-edge run, read by laps-calibrate."""

import json

import numpy as np
import pytest

from edge.energy import HysteresisParams
from edge.energy_trace import EnergyTrace, EnergyTraceError, EnergyTraceRecorder, is_energy_trace


def _recorded() -> EnergyTrace:
    rec = EnergyTraceRecorder(fps=10.0, model_version="m-1", params=HysteresisParams(theta_on=0.4), source="cam.mp4")
    for i, (raw, code) in enumerate([(0.0, -1), (0.5, 3), (float("nan"), 7), (1.25, 7)]):
        rec.add(raw, 0.1 * i, code, 2.0 + i, frame_index=10 + 3 * i, timestamp_s=1.0 + 0.3 * i)
    return rec.trace()


def test_the_recorder_keeps_every_step_with_the_sources_index_and_time():
    trace = _recorded()
    assert trace.n_steps == 4
    np.testing.assert_array_equal(trace.codes, [-1, 3, 7, 7])
    np.testing.assert_array_equal(trace.frame_index, [10, 13, 16, 19])
    np.testing.assert_allclose(trace.timestamp_s, [1.0, 1.3, 1.6, 1.9])
    np.testing.assert_allclose(trace.velocity_energy, [2.0, 3.0, 4.0, 5.0])
    assert trace.energy.dtype == np.float64 and trace.codes.dtype == np.int64


def test_a_written_trace_reads_back_unchanged(tmp_path):
    trace = _recorded()
    back = EnergyTrace.read(trace.write(tmp_path / "energy.npz"))
    for name in ("energy", "smoothed", "codes", "velocity_energy", "frame_index", "timestamp_s"):
        np.testing.assert_array_equal(getattr(back, name), getattr(trace, name))
    assert (back.fps, back.model_version, back.params, back.source) == (10.0, "m-1", HysteresisParams(theta_on=0.4),
                                                                        "cam.mp4")
    assert is_energy_trace(tmp_path / "energy.npz")


def test_a_trace_written_before_the_owner_loads_with_steps_as_frame_indices(tmp_path):
    # What edge/cli/run.py wrote: four columns, fps, model version, params JSON, source; no index, no times.
    path = tmp_path / "energy.npz"
    np.savez_compressed(path, energy=np.array([0.0, 0.5, 0.7]), smoothed=np.array([0.0, 0.35, 0.6]),
                        codes=np.array([-1, 4, 4], np.int64), velocity_energy=np.array([1.0, 2.0, 3.0]), fps=10.0,
                        model_version="velocity-energy", params=json.dumps({"theta_on": 0.5}), source="clip.mp4")
    back = EnergyTrace.read(path)
    np.testing.assert_array_equal(back.frame_index, [0, 1, 2])
    np.testing.assert_allclose(back.timestamp_s, [0.0, 0.1, 0.2])
    np.testing.assert_array_equal(back.codes, [-1, 4, 4])
    assert back.params == HysteresisParams(theta_on=0.5) and back.source == "clip.mp4"


def test_an_older_trace_without_codes_or_smoothed_energy_still_loads(tmp_path):
    path = tmp_path / "energy.npz"
    np.savez_compressed(path, energy=np.array([0.1, 0.2]), velocity_energy=np.array([1.0, 2.0]), fps=10.0,
                        model_version="velocity-energy")
    back = EnergyTrace.read(path)
    np.testing.assert_array_equal(back.codes, [-1, -1])
    assert np.isnan(back.smoothed).all() and back.source == str(path)


def test_an_npz_that_is_not_a_trace_is_a_one_line_error_with_the_fix(tmp_path):
    path = tmp_path / "tracks.npz"
    np.savez(path, positions=np.zeros((3, 2, 2)))
    assert not is_energy_trace(path)
    with pytest.raises(EnergyTraceError, match="not an energy trace .*--record-energy") as err:
        EnergyTrace.read(path)
    assert "\n" not in str(err.value)


def test_columns_of_different_lengths_are_refused(tmp_path):
    path = tmp_path / "energy.npz"
    np.savez(path, energy=np.zeros(5), velocity_energy=np.zeros(4), fps=10.0, model_version="v")
    with pytest.raises(EnergyTraceError, match="5 energies but 4 velocity_energy"):
        EnergyTrace.read(path)
