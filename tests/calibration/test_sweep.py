"""Parameter grids and their scores: every number comes from the shared kernel."""

import numpy as np
import pytest

from calibration.sweep import (
    SweepScores,
    SweepSpace,
    best_row,
    build_grid,
    plateau_row,
    scores_from_counts,
    sweep_counts,
    theta_candidates,
)
from edge.energy import HysteresisParams, run_series
from edge.errors import ConfigError

from .makers import bursty_series


def test_sweep_scores_equal_a_direct_computation_from_the_series_runner():
    series = [bursty_series(510 + i, 300) for i in range(3)]
    energies = [e for e, _, _ in series]
    rng = np.random.default_rng(7)
    labels = [(a ^ (rng.random(a.size) < 0.1)) for _, _, a in series]  # labels with 10 % flips
    space = SweepSpace(ratio_off=(0.8, 1.0), up_steps=(1, 3), down_steps=(2,), alpha=(0.5, 1.0), max_theta=12)
    grid = build_grid(theta_candidates(energies, space.max_theta), space)
    scores = SweepScores(sweep_counts(energies, labels, grid))
    for row in range(grid.size):
        params = grid.params(row)
        tp = fp = fn = tn = 0
        for e, lab in zip(energies, labels):
            on = run_series(e, params).on
            tp += int((on & lab).sum()); fp += int((on & ~lab).sum())
            fn += int((~on & lab).sum()); tn += int((~on & ~lab).sum())
        assert scores.counts[row].tolist() == [tp, fp, fn, tn]
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        j = tp / (tp + fn) + tn / (tn + fp) - 1.0
        assert scores.f1[row] == pytest.approx(f1)
        assert scores.youden_j[row] == pytest.approx(j)


def test_theta_candidates_are_distinct_values_and_midpoints():
    got = theta_candidates([np.array([1.0, 3.0, 3.0]), np.array([2.0, np.nan])])
    assert got.tolist() == [1.0, 1.5, 2.0, 2.5, 3.0]


def test_theta_candidates_are_thinned_by_rank_to_the_limit_keeping_both_ends():
    e = np.random.default_rng(3).gamma(2.0, 1.0, 5000)
    got = theta_candidates([e], max_theta=64)
    assert got.size == 64 and np.all(np.diff(got) > 0)
    assert got[0] == e.min() and got[-1] == e.max()
    # dense where the data is: the lower half of the candidates covers the lower half of the data
    assert np.median(got) == pytest.approx(np.median(e), rel=0.1)


def test_grid_rows_run_theta_fastest_and_unpack_to_their_parameters():
    space = SweepSpace(ratio_off=(0.9,), up_steps=(1, 2), down_steps=(3,), alpha=(0.7,), min_steps=4)
    grid = build_grid(np.array([0.1, 0.2, 0.3]), space)
    assert grid.size == 6
    assert grid.params(grid.row_of(1, 2)) == HysteresisParams(theta_on=0.3, ratio_off=0.9, up_steps=2,
                                                              down_steps=3, alpha=0.7, min_steps=4)


def test_a_sweep_space_with_an_invalid_value_is_a_config_error():
    with pytest.raises(ConfigError, match="alpha"):
        SweepSpace(alpha=(0.0,))
    with pytest.raises(ConfigError, match="empty"):
        SweepSpace(up_steps=())


def test_best_row_takes_the_first_of_equal_scores():
    assert best_row(np.array([0.2, 0.9, 0.9, np.nan])) == 1


def test_youden_j_is_zero_without_positives_or_negatives():
    f1, j, _, _ = scores_from_counts(np.array([[0, 0, 5, 0], [3, 0, 0, 0]]))
    assert j.tolist() == [0.0, 0.0] and f1.tolist() == [0.0, 1.0]


def test_plateau_row_takes_the_middle_of_the_near_best_theta_values():
    grid = build_grid(np.arange(7) * 0.1, SweepSpace(ratio_off=(0.9,), up_steps=(1,), down_steps=(2,),
                                                     alpha=(0.5, 1.0)))
    scores = np.array([0.1, 0.2, 0.3, 0.2, 0.1, 0.0, 0.0,      # first (r, u, d, alpha): lower peak
                       0.5, 0.96, 1.0, 0.97, 0.99, 0.955, 0.3])  # second: near-best at theta 0.1-0.5
    row = plateau_row(scores, grid)
    assert row == grid.row_of(1, 3)  # the middle of thetas 0.1 ... 0.5
    assert best_row(scores) == grid.row_of(1, 2)


def test_gmean_is_zero_for_everything_on_and_for_nothing_on():
    # (tp, fp, fn, tn): all steps ON, none ON, and a decent mask
    scores = SweepScores(np.array([[50, 50, 0, 0], [0, 0, 50, 50], [40, 10, 10, 40]]))
    g = scores.by("gmean")
    assert g[0] == 0.0 and g[1] == 0.0 and g[2] == pytest.approx(np.sqrt(0.8 * 0.6))
