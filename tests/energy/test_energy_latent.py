"""latent_step: energy is the L2 distance between consecutive latents, then the same step."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edge.energy import HysteresisParams, latent_step, new_state, raw_energy, run_series
from edge.energy.series import run_series_latent

from .reference_kernel import reference_latent_energy

PARAMS = HysteresisParams(theta_on=0.5)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(0, 40), st.integers(1, 8)),
              elements=st.floats(-100, 100)))
def test_latent_energy_is_the_norm_of_the_step_difference(z):
    r = run_series_latent(z, PARAMS)
    np.testing.assert_allclose(r.energy, reference_latent_energy(z), rtol=1e-12, atol=1e-12)


def test_first_latent_has_zero_energy():
    s = new_state(3)
    latent_step(s, PARAMS.to_array(), np.array([5.0, 6.0, 7.0]))
    assert raw_energy(s) == 0.0


def test_float32_latents_give_the_float64_distance():
    z = np.array([[0, 0], [3, 4], [3, 4.5]], dtype=np.float32)
    r = run_series_latent(z, PARAMS)
    np.testing.assert_allclose(r.energy, [0.0, 5.0, 0.5])


def test_non_finite_latent_gives_nan_energy_and_is_skipped_as_previous():
    z = np.array([[0, 0], [np.nan, 1], [3, 4]], dtype=np.float64)
    r = run_series_latent(z, PARAMS)
    assert r.energy[0] == 0.0 and math.isnan(r.energy[1]) and r.energy[2] == 5.0


def test_latent_series_segments_equal_energy_series_segments():
    rng = np.random.default_rng(901)
    active = (np.arange(300) // 25) % 2 == 1
    z = np.cumsum(rng.normal(0, 1, (300, 4)) * np.where(active, 1.0, 0.02)[:, None], axis=0)
    params = HysteresisParams(theta_on=0.8)
    lat = run_series_latent(z, params)
    ene = run_series(lat.energy, params)
    assert len(lat.segments) >= 4
    np.testing.assert_array_equal(lat.segments, ene.segments)
    np.testing.assert_array_equal(lat.smoothed, ene.smoothed)


def test_latent_step_rejects_a_latent_of_the_wrong_length():
    s = new_state(3)
    with pytest.raises(ValueError, match="latent_dim"):
        latent_step(s, PARAMS.to_array(), np.zeros(4))
