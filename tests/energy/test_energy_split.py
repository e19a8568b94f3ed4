"""The within-activity split step of latent_step: where it splits, when it says so, and that the
Numba kernel agrees with the plain-Python reference on every series and parameter set."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.energy import (
    EVENT_SPLIT,
    EVENT_SPLIT_END,
    MAX_SPLIT_WINDOW,
    HysteresisParams,
    finish,
    latent_step,
    new_state,
    run_series_latent,
)
from edge.energy.kernel import change_score, split_at, split_count, split_from

from .reference_kernel import reference_latent_energy, reference_run, reference_scores
from .strategies import hysteresis_params

#: Two activities back to back: the latent moves (energy high) around one mean, then around
#: another, with no rest between; rests before and after.
REST, A, B = np.array([0.0, 0.0]), np.array([4.0, 0.0]), np.array([0.0, 4.0])


def back_to_back(n_rest=20, n_a=30, n_b=30, seed=0):
    rng = np.random.default_rng(seed)
    jitter = np.where(np.arange(2 * n_rest + n_a + n_b)[:, None] < n_rest, 0.0, 1.0)
    means = np.vstack([np.tile(REST, (n_rest, 1)), np.tile(A, (n_a, 1)), np.tile(B, (n_b, 1)),
                       np.tile(REST, (n_rest, 1))])
    jitter[n_rest + n_a + n_b:] = 0.0
    return means + jitter * rng.normal(0.0, 1.0, means.shape)


SPLIT = dict(theta_on=0.5, split_window=5, split_theta=3.0, split_min_steps=5)


def test_back_to_back_activities_are_split_where_the_mean_latent_changes():
    r = run_series_latent(back_to_back(), HysteresisParams(**SPLIT))
    assert len(r.segments) == 2
    (s0, e0), (s1, e1) = r.segments.tolist()
    assert e0 == s1 and abs(s1 - 50) <= 1
    assert abs(s0 - 20) <= 2 and abs(e1 - 80) <= 3


def test_without_a_split_window_the_same_activity_is_one_segment():
    r = run_series_latent(back_to_back(), HysteresisParams(**{**SPLIT, "split_window": 0}))
    assert len(r.segments) == 1 and r.score is None


def test_splits_never_change_which_steps_are_on():
    z = back_to_back(seed=3)
    with_split = run_series_latent(z, HysteresisParams(**SPLIT))
    without = run_series_latent(z, HysteresisParams(**{**SPLIT, "split_window": 0}))
    np.testing.assert_array_equal(with_split.on, without.on)


def test_split_is_decided_within_the_documented_lag():
    params = HysteresisParams(**SPLIT)
    r = run_series_latent(back_to_back(), params)
    (t_split,) = np.flatnonzero(r.events == EVENT_SPLIT)
    boundary = int(r.segments[1, 0])
    lag = max(2 * params.split_window - 1, params.split_min_steps + params.down_steps - 1)
    assert t_split - boundary == lag


def test_split_readers_name_both_pieces():
    params = HysteresisParams(**SPLIT)
    p = params.to_array()
    z = back_to_back()
    state = new_state(2)
    for t in range(len(z)):
        if latent_step(state, p, z[t]) == EVENT_SPLIT:
            break
    assert (split_from(state), split_at(state)) == tuple(run_series_latent(z, params).segments[0])
    assert split_count(state) == 1 and math.isfinite(change_score(state))


def test_a_change_just_before_the_end_of_activity_closes_both_pieces_at_once():
    z = back_to_back(n_b=5)   # too short for the split to be confirmed before OFF
    r = run_series_latent(z, HysteresisParams(**SPLIT))
    assert EVENT_SPLIT_END in r.events.tolist()
    assert len(r.segments) == 2 and r.segments[0, 1] == r.segments[1, 0]


def test_end_of_stream_with_a_pending_split_keeps_both_pieces():
    z = back_to_back(n_b=9)[:-20]   # the stream stops inside the second activity
    params = HysteresisParams(**SPLIT)
    r = run_series_latent(z, params)
    assert r.final_event == EVENT_SPLIT_END
    assert r.segments.tolist() == [[r.segments[0, 0], r.segments[1, 0]], [r.segments[1, 0], len(z)]]


def test_no_piece_is_shorter_than_split_min_steps():
    z = back_to_back(n_a=7, n_b=30)
    r = run_series_latent(z, HysteresisParams(**{**SPLIT, "split_min_steps": 8}))
    assert ((r.segments[:, 1] - r.segments[:, 0]) >= 8).all()


def test_a_non_finite_latent_has_no_score_and_is_not_stored():
    z = back_to_back()
    z[55] = np.nan
    r = run_series_latent(z, HysteresisParams(**SPLIT))
    assert math.isnan(r.score[55]) and math.isfinite(r.score[56])


def test_split_parameters_are_validated():
    with pytest.raises(Exception, match="split_window"):
        HysteresisParams(theta_on=1.0, split_window=MAX_SPLIT_WINDOW + 1)
    with pytest.raises(Exception, match="split_min_steps"):
        HysteresisParams(theta_on=1.0, split_window=4, min_steps=5, split_min_steps=4)
    with pytest.raises(Exception, match="split_theta"):
        HysteresisParams(theta_on=1.0, split_theta=float("nan"))


def test_old_calibration_dicts_load_without_split_keys():
    p = HysteresisParams.from_dict({"theta_on": 0.3, "ratio_off": 0.9})
    assert p.split_window == 0 and not p.splits


@st.composite
def latent_case(draw):
    d = draw(st.integers(1, 3))
    # Noise > 0 everywhere: mathematically equal change scores (exact ties, which the two
    # implementations may round differently) then have probability zero.
    blocks = draw(st.lists(st.tuples(st.integers(1, 14), st.floats(-3, 3), st.floats(0.01, 2)),
                           min_size=1, max_size=8))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    z = np.vstack([mean + noise * rng.normal(size=(n, d)) for n, mean, noise in blocks])
    if draw(st.booleans()):
        z[rng.random(len(z)) < 0.05] = np.nan
    # Thresholds drawn from the kernel's own energies hit them exactly (the distance itself is
    # checked against the reference in test_energy_latent).
    energy = run_series_latent(z, HysteresisParams(theta_on=0.0)).energy
    base = draw(hysteresis_params(theta_values=[e for e in energy.tolist() if e == e] or None))
    w = draw(st.integers(1, 6))
    m = draw(st.integers(max(1, base.min_steps), max(1, base.min_steps) + 6))
    params = HysteresisParams(**{**base.to_dict(), "split_window": w, "split_min_steps": m,
                                 "split_theta": draw(st.floats(0.0, 3.0))})
    return z, params


@settings(max_examples=400, deadline=None)
@given(latent_case())
def test_kernel_split_matches_reference(case):
    z, params = case
    got = run_series_latent(z, params)
    ref = reference_run(got.energy.tolist(), **params.to_dict(), latents=z)
    np.testing.assert_allclose(got.energy, reference_latent_energy(z), rtol=1e-12, atol=1e-12)
    assert got.events.tolist() == ref["events"]
    assert got.final_event == ref["final_event"]
    assert [tuple(s) for s in got.segments.tolist()] == ref["kept"]
    assert [tuple(s) for s in got.discarded.tolist()] == ref["discarded"]
    np.testing.assert_allclose(got.score, np.asarray(ref["scores"]), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got.on, ref["mask"])


def test_device_steps_agree_with_the_series_runner():
    z = back_to_back(seed=7)
    params = HysteresisParams(**SPLIT)
    p = params.to_array()
    state = new_state(2)
    events = [latent_step(state, p, row) for row in z]
    r = run_series_latent(z, params)
    assert events == r.events.tolist() and finish(state, p) == r.final_event


@pytest.mark.parametrize("w", [1, 7, MAX_SPLIT_WINDOW])
def test_the_running_window_difference_matches_a_fresh_sum_over_many_ring_turns(w):
    rng = np.random.default_rng(w)
    z = np.cumsum(rng.normal(size=(900, 4)), axis=0)  # drifting latents, many ring turns
    z[rng.random(len(z)) < 0.03] = np.nan
    got = run_series_latent(z, HysteresisParams(theta_on=0.0, split_window=w, split_theta=1e9,
                                                split_min_steps=max(3, w)))
    np.testing.assert_allclose(got.score, reference_scores(z, w), rtol=1e-9, atol=1e-9)


def test_a_new_window_on_a_running_state_scores_with_the_new_window():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(200, 3))
    state = new_state(3)
    first = HysteresisParams(theta_on=0.0, split_window=4, split_theta=1e9).to_array()
    second = HysteresisParams(theta_on=0.0, split_window=9, split_theta=1e9, split_min_steps=9).to_array()
    for t in range(200):
        latent_step(state, first if t < 120 else second, z[t])
    assert change_score(state) == pytest.approx(reference_scores(z, 9)[-1], rel=1e-9)
