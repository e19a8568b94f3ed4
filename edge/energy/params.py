"""Hysteresis parameters of the energy kernel, validated on construction.

`HysteresisParams` is what a person or a calibration file sets; `to_array()` packs it into the
float64 vector (`N_PARAMS`,) that the Numba kernel reads (integers are stored as exact floats).
A grid of parameter sets for a sweep is a (P, N_PARAMS) array of such rows (`stack_params`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from edge.energy.kernel import (  # the slots live beside the code compiled against them
    MAX_SPLIT_WINDOW,
    N_PARAMS,
    P_ALPHA,
    P_COOLDOWN_STEPS,
    P_DOWN_STEPS,
    P_MAX_STEPS,
    P_MIN_STEPS,
    P_RATIO_OFF,
    P_SPLIT_MIN_STEPS,
    P_SPLIT_THETA,
    P_SPLIT_WINDOW,
    P_THETA_ON,
    P_UP_STEPS,
)
from edge.errors import ConfigError


_FIELD_ORDER = (
    "theta_on", "ratio_off", "up_steps", "down_steps", "cooldown_steps", "alpha", "max_steps",
    "min_steps", "split_window", "split_theta", "split_min_steps",
)
#: Length of the parameter vector before the split step existed (theta_on .. min_steps).
N_PRE_SPLIT_PARAMS = 8
_INT_FIELDS = frozenset({"up_steps", "down_steps", "cooldown_steps", "max_steps", "min_steps",
                         "split_window", "split_min_steps"})


@dataclass(frozen=True)
class HysteresisParams:
    """Parameters of the energy kernel: EMA smoothing + hysteresis segmentation, and the
    within-activity split step (the `edge.energy.kernel` docstring defines both).

    theta_on:       ON threshold on the smoothed energy y (units of the energy), >= 0.
    ratio_off:      OFF threshold as a fraction of theta_on (theta_off = ratio_off * theta_on),
                    in (0, 1].
    up_steps:       consecutive steps with y >= theta_on that confirm ON (u), >= 1.
    down_steps:     consecutive steps with y < theta_off that confirm OFF (d), >= 1.
    cooldown_steps: steps after an END event that cannot count towards a new ON run, >= 0.
    alpha:          EMA weight of the newest energy, y_t = alpha*E_t + (1-alpha)*y_{t-1}, in (0, 1].
    max_steps:      a segment that reaches this many steps is ended there; 0 = no cap,
                    otherwise > up_steps and >= min_steps.
    min_steps:      kept segments have at least this many steps (shorter ones are discarded), >= 0.
    split_window:   w, steps per window of the two-window change test on the latent stream;
                    0 = no within-activity split (the paper's kernel), else 1..MAX_SPLIT_WINDOW.
                    Only `latent_step` splits (it needs the latents).
    split_theta:    a split needs a change score (distance between the two window means, units
                    of the latent) >= this, >= 0.
    split_min_steps: m, the shortest piece a split may leave, steps; with a split window,
                    >= max(1, min_steps), so no piece of a split is ever discarded.
    """

    theta_on: float
    ratio_off: float = 0.95
    up_steps: int = 2
    down_steps: int = 2
    cooldown_steps: int = 1
    alpha: float = 0.7
    max_steps: int = 0
    min_steps: int = 3
    split_window: int = 0
    split_theta: float = 0.0
    split_min_steps: int = 5

    def __post_init__(self) -> None:
        for name in _FIELD_ORDER:
            value = getattr(self, name)
            if name in _INT_FIELDS:
                if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                    raise ConfigError(
                        f"hysteresis parameter {name}={value!r} is not an integer; "
                        f"give a whole number of steps"
                    )
                object.__setattr__(self, name, int(value))
            else:
                if isinstance(value, (bool, np.bool_)) or not isinstance(
                    value, (int, float, np.integer, np.floating)
                ):
                    raise ConfigError(
                        f"hysteresis parameter {name}={value!r} is not a number; give a float"
                    )
                object.__setattr__(self, name, float(value))
        _check(self.theta_on >= 0.0 and math.isfinite(self.theta_on),
               "theta_on", self.theta_on, "a finite value >= 0")
        _check(0.0 < self.ratio_off <= 1.0, "ratio_off", self.ratio_off, "(0, 1]")
        _check(self.up_steps >= 1, "up_steps", self.up_steps, ">= 1")
        _check(self.down_steps >= 1, "down_steps", self.down_steps, ">= 1")
        _check(self.cooldown_steps >= 0, "cooldown_steps", self.cooldown_steps, ">= 0")
        _check(0.0 < self.alpha <= 1.0, "alpha", self.alpha, "(0, 1]")
        _check(self.min_steps >= 0, "min_steps", self.min_steps, ">= 0")
        _check(
            self.max_steps == 0
            or (self.max_steps > self.up_steps and self.max_steps >= self.min_steps),
            "max_steps", self.max_steps,
            f"0 (no cap) or > up_steps ({self.up_steps}) and >= min_steps ({self.min_steps})",
        )
        _check(0 <= self.split_window <= MAX_SPLIT_WINDOW, "split_window", self.split_window,
               f"0 (no split) to {MAX_SPLIT_WINDOW}")
        _check(self.split_theta >= 0.0 and math.isfinite(self.split_theta),
               "split_theta", self.split_theta, "a finite value >= 0")
        _check(self.split_window == 0 or self.split_min_steps >= max(1, self.min_steps),
               "split_min_steps", self.split_min_steps,
               f">= max(1, min_steps) = {max(1, self.min_steps)} when split_window > 0")

    @property
    def splits(self) -> bool:
        """True when the within-activity split step is on."""
        return self.split_window > 0

    @property
    def theta_off(self) -> float:
        """OFF threshold, ratio_off * theta_on."""
        return self.ratio_off * self.theta_on

    def to_array(self) -> np.ndarray:
        """The packed float64 vector (N_PARAMS,) the kernel reads."""
        return np.array([float(getattr(self, name)) for name in _FIELD_ORDER], dtype=np.float64)

    @classmethod
    def from_array(cls, a: Sequence[float] | np.ndarray) -> "HysteresisParams":
        """Inverse of `to_array`; rejects a wrong length or a non-integral integer slot.

        A vector of the first `N_PRE_SPLIT_PARAMS` fields (written before the split step, e.g.
        in an older bundle's golden file) reads as that set with the split off."""
        arr = np.asarray(a, dtype=np.float64)
        if arr.shape == (N_PRE_SPLIT_PARAMS,):
            arr = np.concatenate([arr, cls(theta_on=1.0).to_array()[N_PRE_SPLIT_PARAMS:]])
        if arr.shape != (N_PARAMS,):
            raise ConfigError(
                f"hysteresis parameter vector has shape {arr.shape}; expected ({N_PARAMS},) "
                f"in the order {', '.join(_FIELD_ORDER)}"
            )
        values: dict[str, Any] = {}
        for i, name in enumerate(_FIELD_ORDER):
            v = float(arr[i])
            if name in _INT_FIELDS:
                if not (math.isfinite(v) and v == round(v)):
                    raise ConfigError(
                        f"hysteresis parameter {name}={v!r} is not an integer; "
                        f"give a whole number of steps"
                    )
                values[name] = int(round(v))
            else:
                values[name] = v
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain dict of the fields (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HysteresisParams":
        """Build from a dict such as a calibration file's; unknown keys and a missing theta_on
        are errors, other missing keys take their defaults (files written before the split
        step have no split_* keys: no split)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(
                f"unknown hysteresis parameter(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(_FIELD_ORDER)}"
            )
        if "theta_on" not in d:
            raise ConfigError("hysteresis parameters lack theta_on; add the ON threshold")
        return cls(**dict(d))


def stack_params(params: Sequence[HysteresisParams]) -> np.ndarray:
    """Pack parameter sets into a sweep grid, (P, N_PARAMS) float64."""
    if len(params) == 0:
        return np.zeros((0, N_PARAMS), dtype=np.float64)
    return np.stack([p.to_array() for p in params])


def validate_grid(grid: np.ndarray) -> np.ndarray:
    """Check a (P, N_PARAMS) grid row by row (vectorised); returns it as C-contiguous float64.

    Raises ConfigError naming the first bad row, the field, its value and the allowed range.
    """
    g = np.ascontiguousarray(grid, dtype=np.float64)
    if g.ndim != 2 or g.shape[1] != N_PARAMS:
        raise ConfigError(
            f"parameter grid has shape {g.shape}; expected (P, {N_PARAMS}) rows built with "
            f"stack_params() or HysteresisParams.to_array()"
        )
    if g.shape[0] == 0:
        return g
    c = [g[:, i] for i in range(N_PARAMS)]
    ints_ok = np.ones(g.shape[0], dtype=bool)
    for i, name in enumerate(_FIELD_ORDER):
        if name in _INT_FIELDS:
            ints_ok &= np.isfinite(c[i]) & (c[i] == np.round(c[i]))
    ok = (
        ints_ok
        & np.isfinite(c[P_THETA_ON]) & (c[P_THETA_ON] >= 0)
        & (c[P_RATIO_OFF] > 0) & (c[P_RATIO_OFF] <= 1)
        & (c[P_UP_STEPS] >= 1) & (c[P_DOWN_STEPS] >= 1) & (c[P_COOLDOWN_STEPS] >= 0)
        & (c[P_ALPHA] > 0) & (c[P_ALPHA] <= 1) & (c[P_MIN_STEPS] >= 0)
        & ((c[P_MAX_STEPS] == 0)
           | ((c[P_MAX_STEPS] > c[P_UP_STEPS]) & (c[P_MAX_STEPS] >= c[P_MIN_STEPS])))
        & (c[P_SPLIT_WINDOW] >= 0) & (c[P_SPLIT_WINDOW] <= MAX_SPLIT_WINDOW)
        & np.isfinite(c[P_SPLIT_THETA]) & (c[P_SPLIT_THETA] >= 0)
        & ((c[P_SPLIT_WINDOW] == 0) | (c[P_SPLIT_MIN_STEPS] >= np.maximum(1, c[P_MIN_STEPS])))
    )
    if not ok.all():
        row = int(np.flatnonzero(~ok)[0])
        try:
            HysteresisParams.from_array(g[row])
        except ConfigError as err:
            raise ConfigError(f"parameter grid row {row}: {err}") from None
    return g


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(
            f"hysteresis parameter {name}={value!r} is out of range; allowed: {allowed}"
        )
