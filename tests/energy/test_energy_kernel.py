"""The state machine's written definition, pinned with hand-computed series.

Most cases use alpha = 1 (y = E) so the thresholds act on the listed numbers directly.
"""

import math

import numpy as np
import pytest

from edge.energy import (
    EVENT_DISCARD,
    EVENT_END,
    EVENT_NONE,
    EVENT_START,
    HysteresisParams,
    energy_step,
    finish,
    is_on,
    last_event,
    new_state,
    raw_energy,
    run_series,
    segment_end,
    segment_start,
    smoothed_energy,
    step_index,
)
from edge.energy.kernel import HEADER, N_RESERVED, S_RESERVED_FIRST

RAW = dict(theta_on=1.0, alpha=1.0, min_steps=1, cooldown_steps=0)


def events_at(result):
    return {int(t): int(e) for t, e in enumerate(result.events) if e != EVENT_NONE}


def test_ema_follows_the_papers_formula():
    e = np.array([2.0, 0.0, 1.0, 4.0])
    r = run_series(e, HysteresisParams(theta_on=10.0, alpha=0.7))
    y0 = 2.0
    y1 = 0.3 * y0
    y2 = 0.7 * 1.0 + 0.3 * y1
    y3 = 0.7 * 4.0 + 0.3 * y2
    np.testing.assert_allclose(r.smoothed, [y0, y1, y2, y3], rtol=0, atol=1e-15)


def test_segment_starts_at_first_step_of_the_confirming_run_and_start_is_emitted_when_confirmed():
    e = np.array([0, 0, 2, 2, 2, 2, 0, 0, 0], dtype=float)
    r = run_series(e, HysteresisParams(**RAW))
    assert events_at(r)[3] == EVENT_START       # u = 2: confirmed at step 3
    assert r.segments.tolist() == [[2, 6]]       # starts at step 2, the run's first step


def test_segment_ends_exclusive_at_first_step_of_the_confirming_down_run():
    e = np.array([0, 0, 2, 2, 2, 2, 0, 0, 0], dtype=float)
    r = run_series(e, HysteresisParams(**RAW))
    assert events_at(r) == {3: EVENT_START, 7: EVENT_END}   # d = 2: confirmed at step 7
    assert r.segments[0, 1] == 6
    assert r.on.tolist() == [False, False, True, True, True, True, False, False, False]


def test_values_between_the_thresholds_keep_the_current_state():
    # theta_on = 1, theta_off = 0.5: 0.7 neither starts nor ends a segment.
    e = np.array([0.7, 0.7, 2, 2, 0.7, 0.7, 0.7, 0.1, 0.1, 0.7, 0.7], dtype=float)
    r = run_series(e, HysteresisParams(**{**RAW, "ratio_off": 0.5}))
    assert r.segments.tolist() == [[2, 7]]


def test_a_single_dip_shorter_than_down_steps_does_not_end_the_segment():
    e = np.array([2, 2, 2, 0, 2, 2, 0, 0], dtype=float)
    r = run_series(e, HysteresisParams(**RAW))
    assert r.segments.tolist() == [[0, 6]]


def test_cooldown_blocks_runs_beginning_right_after_an_end():
    # END emitted at step 4 (down run 3, 4); cooldown 2 blocks steps 5 and 6, so the high run
    # 6..9 may only begin at 7.
    e = np.array([2, 2, 2, 0, 0, 0, 2, 2, 2, 2, 0, 0], dtype=float)
    r = run_series(e, HysteresisParams(**{**RAW, "cooldown_steps": 2}))
    assert r.segments.tolist() == [[0, 3], [7, 10]]
    r0 = run_series(e, HysteresisParams(**RAW))
    assert r0.segments.tolist() == [[0, 3], [6, 10]]


def test_max_steps_ends_a_segment_there_and_the_next_starts_after_cooldown():
    e = np.full(20, 2.0)
    r = run_series(e, HysteresisParams(**{**RAW, "max_steps": 5, "cooldown_steps": 1}))
    # [0,5) capped at step 4; step 5 is cooldown; next run 6,7 -> [6, 11); ...; the last one
    # is closed by finish.
    assert r.segments.tolist() == [[0, 5], [6, 11], [12, 17], [18, 20]]
    assert events_at(r)[4] == EVENT_END and events_at(r)[7] == EVENT_START


def test_confirmed_off_wins_over_the_cap_on_the_same_step():
    e = np.array([2, 2, 2, 0, 0, 0], dtype=float)
    r = run_series(e, HysteresisParams(**{**RAW, "max_steps": 5}))
    assert r.segments.tolist() == [[0, 3]]


def test_segments_shorter_than_min_steps_are_discarded():
    e = np.array([2, 2, 0, 0, 0, 2, 2, 2, 2, 0, 0], dtype=float)
    r = run_series(e, HysteresisParams(**{**RAW, "min_steps": 3}))
    assert r.segments.tolist() == [[5, 9]]
    assert r.discarded.tolist() == [[0, 2]]
    assert events_at(r)[3] == EVENT_DISCARD


def test_stream_ending_inside_a_segment_closes_it_at_the_end():
    e = np.array([0, 2, 2, 2, 0], dtype=float)
    r = run_series(e, HysteresisParams(**RAW))
    assert r.final_event == EVENT_END
    assert r.segments.tolist() == [[1, 5]]   # the pending one-step dip stays inside


def test_constant_zero_input_gives_no_segment():
    r = run_series(np.zeros(50), HysteresisParams(theta_on=0.1))
    assert r.segments.shape == (0, 2) and not r.on.any() and r.final_event == EVENT_NONE


def test_constant_input_above_threshold_is_one_segment_over_everything():
    r = run_series(np.full(50, 3.0), HysteresisParams(theta_on=1.0))
    assert r.segments.tolist() == [[0, 50]]
    assert r.on.all()


def test_theta_on_zero_without_cap_is_one_segment_even_for_zero_energy():
    r = run_series(np.zeros(10), HysteresisParams(theta_on=0.0, min_steps=1))
    assert r.segments.tolist() == [[0, 10]]


def test_empty_series_gives_nothing():
    r = run_series(np.zeros(0), HysteresisParams(theta_on=1.0))
    assert r.segments.shape == (0, 2) and r.smoothed.shape == (0,) and r.on.shape == (0,)
    assert r.final_event == EVENT_NONE


def test_non_finite_energy_leaves_the_smoothed_energy_unchanged():
    e = np.array([np.nan, 1.0, np.nan, np.inf, 3.0])
    r = run_series(e, HysteresisParams(theta_on=10.0, alpha=0.5))
    assert math.isnan(r.smoothed[0])
    np.testing.assert_array_equal(r.smoothed[1:], [1.0, 1.0, 1.0, 2.0])


def test_nan_before_the_first_finite_energy_never_starts_a_segment_even_at_theta_zero():
    e = np.array([np.nan, np.nan, np.nan, 0.0, 0.0])
    r = run_series(e, HysteresisParams(theta_on=0.0, min_steps=1))
    assert r.segments.tolist() == [[3, 5]]


def test_readers_report_the_last_step():
    p = HysteresisParams(**RAW).to_array()
    s = new_state()
    assert step_index(s) == -1 and segment_start(s) == -1 and not is_on(s)
    for v in (0.0, 2.0, 2.0):
        ev = energy_step(s, p, v)
    assert ev == EVENT_START and last_event(s) == EVENT_START
    assert step_index(s) == 2 and is_on(s) and segment_start(s) == 1 and segment_end(s) == -1
    assert smoothed_energy(s) == 2.0 and raw_energy(s) == 2.0
    assert finish(s, p) == EVENT_END and segment_end(s) == 3 and not is_on(s)


def test_per_frame_calls_give_the_same_events_as_the_series_runner():
    rng = np.random.default_rng(900)
    e = np.abs(rng.normal(0, 1, 400)).cumsum() % 3.0
    params = HysteresisParams(theta_on=1.5, max_steps=12)
    r = run_series(e, params)
    p = params.to_array()
    s = new_state()
    events = [energy_step(s, p, float(v)) for v in e]
    assert events == r.events.tolist()
    assert finish(s, p) == r.final_event


def test_energy_step_leaves_the_split_slots_at_their_initial_values():
    # The split step lives in the reserved slots and runs only from latent_step.
    p = HysteresisParams(**RAW, split_window=3, split_min_steps=3).to_array()
    s = new_state(4)
    fresh = s[S_RESERVED_FIRST:S_RESERVED_FIRST + N_RESERVED].copy()
    for v in np.linspace(0, 3, 30):
        energy_step(s, p, float(v))
    assert S_RESERVED_FIRST + N_RESERVED <= HEADER
    np.testing.assert_array_equal(s[S_RESERVED_FIRST:S_RESERVED_FIRST + N_RESERVED], fresh)


def test_new_state_rejects_negative_latent_dim():
    with pytest.raises(ValueError):
        new_state(-1)
