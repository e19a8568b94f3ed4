"""HysteresisParams: paper defaults, packing, and one-line rejections of bad values."""

import numpy as np
import pytest

from edge.energy.params import N_PARAMS, HysteresisParams, stack_params, validate_grid
from edge.errors import ConfigError


def test_defaults_are_the_papers_values():
    p = HysteresisParams(theta_on=1.0)
    assert (p.ratio_off, p.up_steps, p.down_steps, p.cooldown_steps, p.alpha, p.max_steps,
            p.min_steps) == (0.95, 2, 2, 1, 0.7, 0, 3)
    assert p.theta_off == pytest.approx(0.95)


def test_array_round_trip_keeps_every_field():
    p = HysteresisParams(theta_on=0.3, ratio_off=0.8, up_steps=3, down_steps=4, cooldown_steps=2,
                         alpha=0.5, max_steps=20, min_steps=5)
    a = p.to_array()
    assert a.dtype == np.float64 and a.shape == (N_PARAMS,)
    assert HysteresisParams.from_array(a) == p


def test_dict_round_trip_keeps_every_field():
    p = HysteresisParams(theta_on=0.3, max_steps=20)
    assert HysteresisParams.from_dict(p.to_dict()) == p


def test_unknown_dict_key_is_a_one_line_error_naming_it():
    with pytest.raises(ConfigError, match="theta_of") as info:
        HysteresisParams.from_dict({"theta_on": 1.0, "theta_of": 0.5})
    assert "\n" not in str(info.value)


def test_missing_theta_on_is_an_error():
    with pytest.raises(ConfigError, match="theta_on"):
        HysteresisParams.from_dict({"alpha": 0.5})


@pytest.mark.parametrize(
    "field, value",
    [
        ("theta_on", -0.1), ("theta_on", float("nan")), ("theta_on", float("inf")),
        ("ratio_off", 0.0), ("ratio_off", 1.5), ("up_steps", 0), ("down_steps", 0),
        ("cooldown_steps", -1), ("alpha", 0.0), ("alpha", 1.01), ("min_steps", -1),
        ("max_steps", 2), ("max_steps", -3), ("up_steps", 2.5), ("up_steps", True),
    ],
)
def test_bad_value_is_rejected_naming_field_and_value(field, value):
    kwargs = {"theta_on": 1.0, field: value}
    with pytest.raises(ConfigError) as info:
        HysteresisParams(**kwargs)
    msg = str(info.value)
    assert field in msg and repr(value) in msg
    assert "\n" not in msg
    assert "allowed" in msg or "whole number" in msg


def test_max_steps_below_min_steps_is_rejected():
    with pytest.raises(ConfigError, match="max_steps"):
        HysteresisParams(theta_on=1.0, max_steps=4, min_steps=5)


def test_from_array_rejects_fractional_step_counts():
    a = HysteresisParams(theta_on=1.0).to_array()
    a[2] = 2.5
    with pytest.raises(ConfigError, match="up_steps"):
        HysteresisParams.from_array(a)


def test_from_array_rejects_wrong_length():
    with pytest.raises(ConfigError, match="shape"):
        HysteresisParams.from_array(np.zeros(3))


def test_validate_grid_names_the_bad_row():
    grid = stack_params([HysteresisParams(theta_on=1.0), HysteresisParams(theta_on=2.0)])
    grid[1, 5] = 0.0  # alpha
    with pytest.raises(ConfigError, match="row 1.*alpha"):
        validate_grid(grid)


def test_validate_grid_accepts_a_valid_grid_unchanged():
    grid = stack_params([HysteresisParams(theta_on=t) for t in (0.0, 0.5, 1.0)])
    np.testing.assert_array_equal(validate_grid(grid), grid)


def test_a_vector_written_before_the_split_step_reads_with_the_split_off():
    p = HysteresisParams(theta_on=0.3, up_steps=3, min_steps=4)
    old = p.to_array()[:8]  # theta_on .. min_steps: the layout older bundles' golden files hold
    assert HysteresisParams.from_array(old) == p
    assert not HysteresisParams.from_array(old).splits
