"""Calibrating the within-activity split step: unsupervised (Otsu on log peak scores) and on labels."""

import numpy as np
import pytest

from calibration.split import (
    calibrate_split_labelled,
    calibrate_split_unsupervised,
    split_peaks,
    steps_for,
)
from edge.energy import MAX_SPLIT_WINDOW, HysteresisParams, run_series_latent

FPS = 10.0
BASE = HysteresisParams(theta_on=0.5)


def activity_chain(seed: int, n_chains: int = 6):
    """Rest, then 3-4 activities back to back (each 3-6 s around its own mean latent, with as
    much noise as the means differ), repeated. Returns the latents (T, 4) and the true activity
    spans in seconds."""
    rng = np.random.default_rng(seed)
    rows, spans, t = [], [], 0
    for _ in range(n_chains):
        rest = int(rng.integers(20, 40))
        rows.append(np.zeros((rest, 4)))
        t += rest
        for _ in range(int(rng.integers(3, 5))):
            n = int(rng.integers(30, 61))
            mean = rng.normal(0.0, 2.0, 4)
            rows.append(mean + rng.normal(0.0, 1.0, (n, 4)))
            spans.append((t / FPS, (t + n) / FPS))
            t += n
    rows.append(np.zeros((30, 4)))
    return np.vstack(rows), np.array(spans)


def test_steps_for_rounds_and_clamps_to_the_kernel_window():
    assert steps_for(0.8, 10.0) == 8 and steps_for(0.01, 10.0) == 1 and steps_for(5.0, 30.0) == MAX_SPLIT_WINDOW == 32


def test_peaks_lie_inside_activity_and_are_local_maxima():
    z, _ = activity_chain(1)
    params = HysteresisParams(theta_on=0.5, split_window=6, split_min_steps=5)
    peaks = split_peaks([z], params)
    assert peaks.size >= 10 and np.all(peaks > 0)


def test_unsupervised_threshold_separates_changes_from_noise():
    z, spans = activity_chain(2)
    cal = calibrate_split_unsupervised([z], BASE, FPS)
    assert cal.params.splits and cal.mode == "unsupervised"
    segs = run_series_latent(z, cal.params).segments / FPS
    starts = segs[:, 0]
    hits = [np.min(np.abs(starts - s)) <= 0.3 for s, _ in spans]
    assert np.mean(hits) >= 0.9
    assert len(segs) <= 1.3 * len(spans)   # few splits at noise peaks


def test_unsupervised_without_any_activity_leaves_the_split_off_with_a_warning():
    z = np.zeros((200, 4))
    cal = calibrate_split_unsupervised([z], BASE, FPS)
    assert not cal.params.splits and cal.warnings and "stays off" in cal.warnings[0]


def test_labelled_search_finds_the_boundaries_and_beats_no_split():
    zs, gts = zip(*(activity_chain(s) for s in (3, 4)))
    cal = calibrate_split_labelled(list(zs), list(gts), FPS, BASE)
    no_split = [c for c in cal.curve if c[0] == 0][0][2]
    assert cal.params.splits and cal.score > no_split + 0.2


def test_labelled_search_keeps_the_split_off_when_it_does_not_help():
    z, spans = activity_chain(5)
    # Labels that call every ON run one action: splits can only hurt.
    merged = run_series_latent(z, BASE).segments / FPS
    cal = calibrate_split_labelled([z], [merged], FPS, BASE)
    assert not cal.params.splits


def test_peaks_need_a_split_window():
    with pytest.raises(Exception, match="split window"):
        split_peaks([np.zeros((10, 2))], BASE)


def test_the_labelled_search_keeps_the_decision_lag_within_its_budget():
    from calibration.split import decision_lag_steps

    zs, gts = zip(*(activity_chain(s) for s in (3, 4)))
    cal = calibrate_split_labelled(list(zs), list(gts), FPS, BASE, max_lag_s=1.0)
    assert decision_lag_steps(cal.params) <= 1.0 * FPS
    assert cal.params.splits and all(w == 0 or 2 * w - 1 <= FPS for w, _, _ in cal.curve)


def test_a_window_over_the_lag_budget_is_warned_about():
    z, _ = activity_chain(2)
    cal = calibrate_split_unsupervised([z], BASE, FPS, window_s=3.0)
    assert any("budget" in w for w in cal.warnings)
