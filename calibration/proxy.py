"""The unsupervised reference of calibration: the velocity-energy proxy and its Otsu pseudo-labels.

docs/method.md#calibration: the proxy is the per-step velocity energy (mean |v| over the visible
points, px/step, `edge.pipeline.velocity_energy` — the device computes it in every step and
records it with `laps-edge run --record-energy`). Otsu's method on its 256-bin histogram splits
the steps into "activity" (proxy above the threshold) and "rest"; those pseudo-labels are what
the threshold sweep is scored against when no labelled minutes exist.

Besides the threshold we keep Otsu's own separability measure eta = between-class variance /
total variance of the histogram (Otsu 1979): 1 for two point masses, 0.75 for a uniform
distribution, about 0.64 for a single Gaussian. It is reported, not used to decide anything: how
much the calibration can be trusted is judged by how well the device's energy agrees with the
pseudo-labels (Youden's J, see `calibration.unsupervised`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edge.errors import LapsError

#: Histogram bins of the Otsu split (the paper's choice).
OTSU_BINS = 256


class CalibrationError(LapsError):
    """Calibration cannot run on the data it was given (empty, constant, mismatched)."""


@dataclass(frozen=True)
class OtsuSplit:
    """Otsu's split of a set of values.

    threshold:    values strictly above it are "activity" (units of the values, px/step for the
                  proxy); the upper edge of the last "rest" bin.
    separability: eta = between-class variance / total variance of the binned values, in [0, 1].
    active_fraction: fraction of the finite values above the threshold.
    counts:       (bins,) histogram counts; edges: (bins + 1,) bin edges (for plots).
    """

    threshold: float
    separability: float
    active_fraction: float
    counts: np.ndarray
    edges: np.ndarray


def otsu_split(values: np.ndarray | Sequence[float], bins: int = OTSU_BINS) -> OtsuSplit:
    """Otsu's threshold over a `bins`-bin histogram of the finite values.

    The split maximises the between-class variance w0*w1*(mu0 - mu1)^2 over the bin boundaries
    (bin centres stand for their values); the first maximum wins on a tie. Constant input has
    no split: the threshold is that value (nothing is above it) and the separability 0.
    Raises CalibrationError when there is no finite value.
    """
    if bins < 2:
        raise ValueError(f"Otsu needs at least 2 bins, got {bins}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise CalibrationError(
            "the velocity-energy proxy has no finite value; the recordings hold no usable motion "
            "steps, record longer or check that the tracker sees the scene"
        )
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        counts = np.zeros(bins, dtype=np.int64)
        counts[0] = v.size
        edges = np.linspace(lo, lo + 1.0, bins + 1)
        return OtsuSplit(threshold=lo, separability=0.0, active_fraction=0.0, counts=counts, edges=edges)
    counts, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    p = counts / counts.sum()
    w0 = np.cumsum(p)                      # weight of bins 0..k ("rest")
    m0 = np.cumsum(p * centres)            # first moment of bins 0..k
    mu_t = m0[-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 - m0) ** 2 / (w0 * w1)
    between = np.where((w0 > 0) & (w1 > 1e-15), between, -np.inf)[:-1]  # split after bin k < bins-1
    k = int(np.argmax(between))
    total_var = float(np.sum(p * (centres - mu_t) ** 2))
    eta = float(between[k] / total_var) if total_var > 0 and np.isfinite(between[k]) else 0.0
    threshold = float(edges[k + 1])
    return OtsuSplit(
        threshold=threshold,
        separability=min(max(eta, 0.0), 1.0),
        active_fraction=float(np.mean(v > threshold)),
        counts=counts.astype(np.int64),
        edges=edges,
    )


def otsu_threshold(values: np.ndarray | Sequence[float], bins: int = OTSU_BINS) -> float:
    """Otsu's threshold of the finite values (see `otsu_split`)."""
    return otsu_split(values, bins).threshold


def pseudo_labels(proxy: np.ndarray, threshold: float) -> np.ndarray:
    """(T,) bool: True ("activity") where the proxy is above the threshold; NaN steps are rest."""
    p = np.asarray(proxy, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.greater(p, threshold) & np.isfinite(p)


def proxy_from_tracks(velocity: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The proxy of every step of recorded tracks, (T,) float64 px/step.

    velocity: (T, N, 2) px/step; visible: (T, N) bool. Calls the device's own
    `edge.pipeline.velocity_energy` per step, so the numbers are the ones the device records.
    """
    from edge.pipeline import velocity_energy

    vel = np.asarray(velocity)
    vis = np.asarray(visible, dtype=bool)
    if vel.ndim != 3 or vel.shape[2] != 2 or vis.shape != vel.shape[:2]:
        raise CalibrationError(
            f"tracks have velocity {vel.shape} and visibility {vis.shape}; expected (T, N, 2) and (T, N)"
        )
    return np.array([velocity_energy(vel[t], vis[t]) for t in range(vel.shape[0])], dtype=np.float64)
