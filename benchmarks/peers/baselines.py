"""Baselines that never look at the features: K equal parts, and a fixed-period clock."""

from __future__ import annotations

import numpy as np

from benchmarks.segmentation import periodic_segments


def equal_split(duration_s: float, k: int) -> np.ndarray:
    """(K, 2) [start, end) seconds: the video cut into K parts of equal length."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    edges = np.linspace(0.0, float(duration_s), int(k) + 1)
    return np.stack([edges[:-1], edges[1:]], axis=1)


def periodic(duration_s: float, period_s: float) -> np.ndarray:
    """(K, 2) back-to-back segments of `period_s` seconds (the last one cut at the end)."""
    if not period_s > 0:
        raise ValueError(f"period must be > 0 seconds, got {period_s}")
    return periodic_segments(float(duration_s), float(period_s))
