"""Choose the ON threshold of a freshly trained tokenizer on LABELLED validation recordings.

docs/method.md#calibration: when labelled minutes exist, calibrate on them instead of the
unsupervised proxy. For the default model those are synthetic VALIDATION seeds (500-599),
whose ground truth is exact. The search runs the shared kernel (`edge.energy.run_series`) over
each recording's latent energy for every candidate theta_on (quantiles of the energy) and keeps
the one with the best mean boundary F1 at `tau` seconds (`edge.evaluation.boundary_f1`). The
other hysteresis parameters stay at the paper's values. Held-out seeds never come here.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from edge.energy import HysteresisParams, run_series, run_series_latent
from edge.evaluation import boundary_f1


def latent_energy(z_q: np.ndarray) -> np.ndarray:
    """E_t = ||z_q,t - z_q,t-1||_2 per frame (E_0 = 0), exactly as the kernel computes it."""
    return run_series_latent(np.asarray(z_q, np.float32), HysteresisParams(theta_on=0.0)).energy


def search_theta_on(
    energies: Sequence[np.ndarray],
    ground_truth: Sequence[Sequence[tuple[float, float]]],
    fps: float,
    *,
    base: HysteresisParams | None = None,
    tau: float = 2.0,
    n_candidates: int = 64,
) -> tuple[HysteresisParams, dict]:
    """(best params, summary) over candidate theta_on values.

    energies: per recording (T_i,) raw energy per frame. ground_truth: per recording a list of
    (start_s, end_s) segments. Returns the params with the best mean boundary F1@tau and a
    summary {"theta_on", "f1", "tau", "candidates", "curve": [[theta, f1], ...]}.
    """
    base = base or HysteresisParams(theta_on=0.0)
    pooled = np.concatenate([np.asarray(e, np.float64) for e in energies])
    candidates = np.unique(np.quantile(pooled[np.isfinite(pooled)], np.linspace(0.02, 0.98, n_candidates)))
    durations = [len(e) / fps for e in energies]
    gts = [np.asarray([(s, e) for s, e in gt], np.float64).reshape(-1, 2) for gt in ground_truth]
    curve = []
    for theta in candidates:
        params = replace(base, theta_on=float(theta))
        preds = [run_series(e, params).segments / fps for e in energies]
        curve.append((float(theta), boundary_f1(preds, gts, tau, durations)))
    best_theta, best_f1 = max(curve, key=lambda c: (c[1], -c[0]))
    summary = {"theta_on": best_theta, "f1": best_f1, "tau": tau, "candidates": len(curve),
               "curve": [[t, f] for t, f in curve]}
    return replace(base, theta_on=best_theta), summary
