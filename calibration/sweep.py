"""Parameter grids over the hysteresis and their frame-wise scores against reference labels.

Every score comes from the device's own kernel: `edge.energy.sweep_confusion` runs THE
`energy_step` over each recording for every row of the grid in parallel (Numba prange over
parameter sets) and returns tp/fp/fn/tn per row. There is no second implementation of the state
machine here: this module only builds grids, sums counts over recordings and turns them into
F1 and Youden's J.

Grid: theta_on takes the candidate values of `theta_candidates` (the distinct energy values and
the midpoints between neighbours, thinned to at most `max_theta` of them by rank when there are
more); ratio_off, up_steps, down_steps and alpha take the values of a `SweepSpace`; cooldown,
min_steps and max_steps stay fixed. Rows are ordered with theta_on fastest, so
`scores.reshape(n_combos, n_theta)` gives one score-vs-theta curve per (r, u, d, alpha).
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from edge.energy import N_PARAMS, HysteresisParams, sweep_confusion
from edge.energy.kernel import P_THETA_ON
from edge.energy.params import validate_grid
from edge.errors import ConfigError

#: Criteria a calibration can maximise: the geometric mean of F1 and Youden's J, J, or F1.
CRITERIA = ("gmean", "youden", "f1")
#: `plateau_row` keeps the theta_on values scoring at least this fraction of the best.
PLATEAU_FRACTION = 0.95
#: Rows of the grid handed to the kernel per call: large enough to keep both cores busy,
#: small enough for a progress bar that moves.
CHUNK_ROWS = 4096


@dataclass(frozen=True)
class SweepSpace:
    """The values each hysteresis parameter takes in a sweep (theta_on comes from the data).

    ratio_off, up_steps, down_steps, alpha: the values swept (see `HysteresisParams`).
    cooldown_steps, min_steps, max_steps: held fixed at these values.
    max_theta: at most this many theta_on candidates.
    The class defaults are the wide grid, 256 x 3 x 3 x 3 x 4 = 27,648 parameter sets around the
    paper's values (r 0.95, u 2, d 2, alpha 0.7); the calibrations' own defaults are narrower
    (`calibration.unsupervised.DEFAULT_SPACE`, `calibration.labelled.LABELLED_SPACE`).
    """

    ratio_off: tuple[float, ...] = (0.8, 0.9, 0.95)
    up_steps: tuple[int, ...] = (1, 2, 3)
    down_steps: tuple[int, ...] = (1, 2, 4)
    alpha: tuple[float, ...] = (0.3, 0.5, 0.7, 1.0)
    cooldown_steps: int = 1
    min_steps: int = 3
    max_steps: int = 0
    max_theta: int = 256

    def __post_init__(self) -> None:
        for name in ("ratio_off", "up_steps", "down_steps", "alpha"):
            values = tuple(getattr(self, name))
            if not values:
                raise ConfigError(f"sweep values for {name} are empty; give at least one value")
            object.__setattr__(self, name, values)
        if self.max_theta < 1:
            raise ConfigError(f"max_theta={self.max_theta} is too small; give at least 1 candidate")
        # Validate every combination once through the one validator of parameters.
        for r, u, d, a in itertools.product(self.ratio_off, self.up_steps, self.down_steps, self.alpha):
            HysteresisParams(theta_on=0.0, ratio_off=r, up_steps=u, down_steps=d, alpha=a,
                             cooldown_steps=self.cooldown_steps, min_steps=self.min_steps,
                             max_steps=self.max_steps)

    @property
    def combos(self) -> list[tuple[float, int, int, float]]:
        """Every (ratio_off, up_steps, down_steps, alpha), in grid order."""
        return list(itertools.product(self.ratio_off, self.up_steps, self.down_steps, self.alpha))

    @classmethod
    def only_theta(cls, base: HysteresisParams, max_theta: int = 256) -> "SweepSpace":
        """A space that sweeps theta_on alone, every other parameter as in `base`."""
        return cls(ratio_off=(base.ratio_off,), up_steps=(base.up_steps,), down_steps=(base.down_steps,),
                   alpha=(base.alpha,), cooldown_steps=base.cooldown_steps, min_steps=base.min_steps,
                   max_steps=base.max_steps, max_theta=max_theta)


@dataclass(frozen=True)
class SweepGrid:
    """A (P, N_PARAMS) grid and how it was built.

    thetas: (n_theta,) candidate theta_on values, ascending. combos: the (r, u, d, alpha) of
    each block of n_theta rows. array: the packed rows, P = len(combos) * n_theta.
    """

    thetas: np.ndarray
    combos: list[tuple[float, int, int, float]]
    array: np.ndarray
    space: SweepSpace

    @property
    def size(self) -> int:
        return int(self.array.shape[0])

    def params(self, row: int) -> HysteresisParams:
        """The parameter set of one row."""
        return HysteresisParams.from_array(self.array[row])

    def row_of(self, combo_index: int, theta_index: int) -> int:
        return combo_index * self.thetas.shape[0] + theta_index


@dataclass(frozen=True)
class SweepScores:
    """Frame-wise scores of every grid row against reference labels.

    counts: (P, 4) int64 tp, fp, fn, tn summed over recordings ("positive" = inside a kept
    segment / labelled activity). f1, youden_j, precision, recall: (P,) float64.
    """

    counts: np.ndarray
    f1: np.ndarray = field(init=False)
    youden_j: np.ndarray = field(init=False)
    precision: np.ndarray = field(init=False)
    recall: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        f1, j, p, r = scores_from_counts(self.counts)
        object.__setattr__(self, "f1", f1)
        object.__setattr__(self, "youden_j", j)
        object.__setattr__(self, "precision", p)
        object.__setattr__(self, "recall", r)

    def by(self, criterion: str) -> np.ndarray:
        """The (P,) score named by `criterion`: "f1", "youden", or "gmean" = sqrt(F1 * max(J, 0)),
        which is 0 both for "everything is activity" (J = 0) and for "nothing is" (F1 = 0)."""
        check_criterion(criterion)
        if criterion == "f1":
            return self.f1
        if criterion == "youden":
            return self.youden_j
        return np.sqrt(self.f1 * np.clip(self.youden_j, 0.0, None))


def theta_candidates(energies: Sequence[np.ndarray], max_theta: int = 256) -> np.ndarray:
    """Candidate theta_on values: the distinct finite energies and the midpoints between
    neighbouring ones, ascending; when there are more than `max_theta`, `max_theta` of them at
    evenly spaced ranks (so candidates are dense where the energy is, like quantiles).

    Raises ConfigError when there is no finite, non-negative energy at all.
    """
    pooled = np.concatenate([np.asarray(e, dtype=np.float64).ravel() for e in energies]) if energies else np.zeros(0)
    values = np.unique(pooled[np.isfinite(pooled) & (pooled >= 0)])
    if values.size == 0:
        raise ConfigError(
            "the energy series hold no finite value >= 0, so there is no threshold to sweep; "
            "check that the recordings have motion and the model runs"
        )
    mids = 0.5 * (values[:-1] + values[1:])
    cands = np.unique(np.concatenate([values, mids]))
    if cands.size > max_theta:
        ranks = np.unique(np.round(np.linspace(0, cands.size - 1, max_theta)).astype(np.int64))
        cands = cands[ranks]
    return cands


def build_grid(thetas: np.ndarray, space: SweepSpace) -> SweepGrid:
    """The (P, N_PARAMS) grid of every theta x (r, u, d, alpha) of `space`, theta fastest."""
    th = np.asarray(thetas, dtype=np.float64).ravel()
    combos = space.combos
    rows = []
    for r, u, d, a in combos:
        proto = HysteresisParams(theta_on=0.0, ratio_off=r, up_steps=u, down_steps=d, alpha=a,
                                 cooldown_steps=space.cooldown_steps, min_steps=space.min_steps,
                                 max_steps=space.max_steps).to_array()
        block = np.tile(proto, (th.shape[0], 1))
        block[:, P_THETA_ON] = th
        rows.append(block)
    array = validate_grid(np.concatenate(rows) if rows else np.zeros((0, N_PARAMS)))
    return SweepGrid(thetas=th, combos=combos, array=array, space=space)


def sweep_counts(
    energies: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    grid: SweepGrid | np.ndarray,
    progress: bool = False,
    desc: str = "sweeping",
) -> np.ndarray:
    """(P, 4) int64 tp, fp, fn, tn of every grid row, summed over the recordings.

    energies[i]: (T_i,) raw kernel energy of recording i; labels[i]: (T_i,) bool reference.
    Each recording starts from a fresh kernel state, as a new stream does on the device.
    """
    array = grid.array if isinstance(grid, SweepGrid) else validate_grid(grid)
    if len(energies) != len(labels):
        raise ConfigError(f"{len(energies)} energy series but {len(labels)} label series; give one each")
    from tqdm import tqdm

    total = np.zeros((array.shape[0], 4), dtype=np.int64)
    work = sum(int(np.asarray(e).shape[0]) for e in energies) * array.shape[0]
    bar = tqdm(total=work, desc=desc, unit="set-step", unit_scale=True, disable=not progress,
               file=sys.stderr, leave=False)
    for e, lab in zip(energies, labels):
        n = int(np.asarray(e).shape[0])
        for lo in range(0, array.shape[0], CHUNK_ROWS):
            hi = min(lo + CHUNK_ROWS, array.shape[0])
            total[lo:hi] += sweep_confusion(e, array[lo:hi], lab)
            bar.update(n * (hi - lo))
    bar.close()
    return total


def scores_from_counts(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(f1, youden_j, precision, recall), each (P,), from (P, 4) tp, fp, fn, tn.

    Youden's J = recall - false-positive rate = TP/(TP+FN) + TN/(TN+FP) - 1, in [-1, 1]; 0 is
    chance. A ratio with a zero denominator is 0 (no positives predicted, or none to find).
    """
    c = np.asarray(counts, dtype=np.float64).reshape(-1, 4)
    tp, fp, fn, tn = c[:, 0], c[:, 1], c[:, 2], c[:, 3]
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    specificity = _ratio(tn, tn + fp)
    j = np.where((tp + fn > 0) & (tn + fp > 0), recall + specificity - 1.0, 0.0)
    return f1, j, precision, recall


def best_row(scores: np.ndarray) -> int:
    """Index of the best score; the first in grid order on a tie (the lowest theta_on of the
    first (r, u, d, alpha) block that reaches it)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        raise ConfigError("the sweep grid is empty; give at least one value per parameter")
    return int(np.argmax(np.where(np.isfinite(s), s, -np.inf)))


def plateau_row(scores: np.ndarray, grid: SweepGrid, fraction: float = PLATEAU_FRACTION) -> int:
    """A robust argmax: within the (r, u, d, alpha) block of the best row, the theta_on at the
    middle (by rank) of those scoring at least `fraction` of the best.

    A score against noisy pseudo-labels is itself noisy over theta_on; its highest peak moves
    with small changes of the data, the middle of the near-best region much less.
    """
    s = np.where(np.isfinite(scores), np.asarray(scores, dtype=np.float64), -np.inf)
    top = best_row(s)
    n_theta = grid.thetas.shape[0]
    combo = top // n_theta
    block = s[combo * n_theta:(combo + 1) * n_theta]
    if not np.isfinite(s[top]) or s[top] <= 0:
        return top
    near = np.flatnonzero(block >= fraction * s[top])
    return grid.row_of(combo, int(near[(near.size - 1) // 2]))


def check_criterion(criterion: str) -> str:
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion {criterion!r} is not known; use one of {', '.join(CRITERIA)}")
    return criterion


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)
