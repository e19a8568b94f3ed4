"""Calibration and the device give identical segments for the same energy and parameters.

Calibration's view: the ON masks of the shared kernel's parallel sweep (`run_sweep`), the runner
its scores come from. The device's view: `Pipeline.process` frame by frame, and
`edge.assembler.segments_from_features` (energy_step + SegmentAssembler per step).
"""

import numpy as np
import pytest

from calibration.recordings import EnergyRecording, record_video, resolve_model
from calibration.sweep import SweepSpace
from calibration.unsupervised import calibrate_unsupervised
from edge.assembler import segments_from_features
from edge.energy import HysteresisParams, run_series, run_sweep, stack_params
from edge.pipeline import build_pipeline
from edge.loop import run_stream
from edge.energy_trace import EnergyTraceRecorder
from edge.sources.factory import open_source

from .makers import bursty_series


def _mask_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.concatenate([[0], mask.astype(np.int8), [0]])
    d = np.diff(m)
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist()))


def test_calibrated_parameters_give_the_device_segments_on_the_calibration_energy():
    recs = []
    for i in range(2):
        e, p, _ = bursty_series(540 + i, 800)
        e[100:103] = np.nan  # a corrupt frame: the kernel holds y; both paths must agree on it
        recs.append(EnergyRecording(f"r{i}", "t", e, p, 10.0, "velocity-energy", "trace"))
    cal = calibrate_unsupervised(recs, SweepSpace(max_theta=48))
    row = int(np.flatnonzero((cal.grid.array == cal.params.to_array()).all(axis=1))[0])
    for rec in recs:
        mask = run_sweep(rec.energy, cal.grid.array[row:row + 1])[0]
        device = segments_from_features(rec.energy, rec.fps, cal.params)
        assert len(device) > 3
        assert [(s.start_frame, s.end_frame) for s in device] == _mask_runs(mask)
        assert [tuple(s) for s in run_series(rec.energy, cal.params).segments.tolist()] == _mask_runs(mask)


@pytest.mark.parametrize("model", ["none", "tiny"])
def test_the_pipeline_frame_by_frame_and_the_sweep_over_its_recorded_energy_agree(model, tiny_model_dir):
    conv = resolve_model("none" if model == "none" else str(tiny_model_dir))
    w, h = conv.input_size
    spec = f"synthetic://assembly?seed=541&minutes=0.3&fps=10&size={max(w, 128)}x{max(h, 96)}&nuisances=none"
    rec = record_video(spec, conv, providers="cpu", progress=False)
    cal = calibrate_unsupervised([rec], SweepSpace(ratio_off=(0.9,), up_steps=(2,), down_steps=(2,),
                                                  alpha=(0.7,), max_theta=64))
    params = cal.params
    # The device: a fresh pipeline with the calibrated parameters, one frame at a time.
    pipe = build_pipeline(conv.model_dir, params=params, keep_keyframes=False, providers="cpu")
    trace = EnergyTraceRecorder(fps=pipe.fps, model_version=pipe.model_version)
    segments = run_stream(open_source(spec, fps=pipe.fps, size=pipe.input_size), pipe, [trace])
    mask = run_sweep(rec.energy, stack_params([params]))[0]
    assert len(trace) == rec.n_steps
    assert len(segments) >= 1
    assert [(s.start_frame, s.end_frame) for s in segments] == _mask_runs(mask)


def test_mask_runs_are_segments_for_every_swept_parameter_set_with_a_cooldown():
    e, _, _ = bursty_series(542, 400)
    space = SweepSpace(max_theta=16)
    from calibration.sweep import build_grid, theta_candidates

    grid = build_grid(theta_candidates([e], 16), space)
    masks = run_sweep(e, grid.array)
    for row in range(0, grid.size, 7):
        params = HysteresisParams.from_array(grid.array[row])
        device = segments_from_features(e, 10.0, params)
        assert [(s.start_frame, s.end_frame) for s in device] == _mask_runs(masks[row])
