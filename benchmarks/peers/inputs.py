"""The input check every clustering peer shares: a (T, D) frame matrix and a cluster count."""

from __future__ import annotations

import numpy as np


def frame_matrix(features: np.ndarray, k: int) -> np.ndarray:
    """`features` as a (T, D) float64 array with T >= 1; ValueError for a bad shape or k < 1."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"features must be (T, D) with T >= 1, got {x.shape}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return x
