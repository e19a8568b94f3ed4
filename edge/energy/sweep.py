"""The energy kernel over many parameter sets at once, in parallel (Numba prange over sets).

Used by threshold calibration: every row of a (P, N_PARAMS) grid runs the same
`edge.energy.kernel.energy_step` over the same series, each with its own state (the jitted
loops are in `kernel.py`, see there why). Threads: `numba.set_num_threads`.
"""

from __future__ import annotations

import numpy as np

from edge.energy.kernel import _sweep_counts, _sweep_masks
from edge.energy.params import validate_grid
from edge.errors import ConfigError


def run_sweep(energy: np.ndarray, params_grid: np.ndarray) -> np.ndarray:
    """ON masks of every parameter set: (P, T) uint8, 1 on steps inside kept segments.

    energy: (T,) raw energy. params_grid: (P, N_PARAMS) rows of `HysteresisParams.to_array()`
    (see `edge.energy.params.stack_params`). Memory is P*T bytes; for scoring against labels
    prefer `sweep_confusion`, which never materialises the masks.
    """
    e = _energy_1d(energy)
    grid = validate_grid(params_grid)
    return _sweep_masks(e, grid)


def sweep_confusion(energy: np.ndarray, params_grid: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Frame-wise confusion counts of every parameter set against boolean labels.

    energy: (T,) raw energy; params_grid: (P, N_PARAMS); labels: (T,) bool (True = activity).
    Returns (P, 4) int64 [tp, fp, fn, tn] where "predicted positive" = inside a kept segment.
    """
    e = _energy_1d(energy)
    grid = validate_grid(params_grid)
    lab = np.asarray(labels)
    if lab.shape != e.shape:
        raise ConfigError(
            f"labels have shape {lab.shape} but the energy series has shape {e.shape}; "
            f"give one label per step"
        )
    # Prefix sums turn the positives inside [s, e) into one subtraction per closed segment.
    cum = np.zeros(e.shape[0] + 1, dtype=np.int64)
    np.cumsum(lab.astype(bool), out=cum[1:])
    return _sweep_counts(e, grid, cum)


def _energy_1d(energy: np.ndarray) -> np.ndarray:
    e = np.ascontiguousarray(energy, dtype=np.float64)
    if e.ndim != 1:
        raise ConfigError(f"energy series has shape {e.shape}; expected a 1-D array (T,)")
    return e
