"""run_sweep and sweep_confusion: each parameter set gives what run_series gives for it."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.energy import HysteresisParams, run_series, run_sweep, stack_params, sweep_confusion
from edge.errors import ConfigError

from .reference_kernel import reference_run
from .strategies import energy_series, hysteresis_params


@settings(max_examples=60, deadline=None)
@given(energy_series, st.lists(hysteresis_params(), min_size=1, max_size=6))
def test_sweep_rows_equal_the_series_runner(energy, params_list):
    e = np.asarray(energy, dtype=np.float64)
    masks = run_sweep(e, stack_params(params_list))
    assert masks.shape == (len(params_list), e.shape[0]) and masks.dtype == np.uint8
    for row, p in zip(masks, params_list):
        np.testing.assert_array_equal(row.astype(bool), run_series(e, p).on)


@settings(max_examples=60, deadline=None)
@given(energy_series, st.lists(hysteresis_params(), min_size=1, max_size=6), st.randoms())
def test_confusion_counts_equal_counts_of_the_reference_masks(energy, params_list, rnd):
    e = np.asarray(energy, dtype=np.float64)
    labels = np.array([rnd.random() < 0.5 for _ in energy], dtype=bool)
    got = sweep_confusion(e, stack_params(params_list), labels)
    for counts, p in zip(got, params_list):
        m = reference_run(energy, **p.to_dict())["mask"]
        expected = [(m & labels).sum(), (m & ~labels).sum(),
                    (~m & labels).sum(), (~m & ~labels).sum()]
        assert counts.tolist() == expected


def test_sweep_of_many_sets_over_a_long_series_matches_the_series_runner():
    rng = np.random.default_rng(902)
    e = np.repeat(rng.uniform(0, 2, 200), rng.integers(1, 20, 200))
    grid = [HysteresisParams(theta_on=t, max_steps=m)
            for t in np.linspace(0.1, 1.9, 9) for m in (0, 30)]
    masks = run_sweep(e, stack_params(grid))
    for row, p in zip(masks, grid):
        np.testing.assert_array_equal(row.astype(bool), run_series(e, p).on)


def test_empty_grid_and_empty_series_give_empty_results():
    assert run_sweep(np.ones(5), stack_params([])).shape == (0, 5)
    grid = stack_params([HysteresisParams(theta_on=1.0)])
    assert run_sweep(np.zeros(0), grid).shape == (1, 0)
    assert sweep_confusion(np.zeros(0), grid, np.zeros(0, bool)).tolist() == [[0, 0, 0, 0]]


def test_labels_of_the_wrong_length_are_a_config_error():
    grid = stack_params([HysteresisParams(theta_on=1.0)])
    with pytest.raises(ConfigError, match="labels"):
        sweep_confusion(np.zeros(5), grid, np.zeros(4, bool))


def test_invalid_grid_row_is_a_config_error():
    grid = stack_params([HysteresisParams(theta_on=1.0)])
    grid[0, 2] = 0  # up_steps
    with pytest.raises(ConfigError, match="up_steps"):
        run_sweep(np.zeros(5), grid)
