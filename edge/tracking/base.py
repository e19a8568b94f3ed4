"""The tracking contract every backend meets (OpenCV LK, the distilled ONNX student, saved tracks).

Coordinate convention (the one for the whole project, docs/method.md#tracking): points are (x, y) in
pixels of the frame given to the tracker (the model's input size), x to the right, y down,
origin at the top-left pixel's centre. Velocities are pixels per tracker step (one step per
frame at the model fps).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TrackStep:
    """What a tracker returns for one frame.

    points:   (N, 2) float32, current (x, y) positions in pixels.
    visible:  (N,) bool, True where the point was tracked reliably into this frame.
    velocity: (N, 2) float32, displacement since the previous frame in pixels per step;
              zero for points that were invisible or re-seeded in this step.
    """

    points: np.ndarray
    visible: np.ndarray
    velocity: np.ndarray


def grid_points(width: int, height: int, grid: int = 20, margin: float = 1.0 / 20.0) -> np.ndarray:
    """A uniform grid x grid lattice of query points, (grid*grid, 2) float32 (x, y) pixels.

    `margin` is the normalised border left free on each side (the paper: 1/20), so points
    span [margin, 1 - margin] of the width and height. Row-major: y outer, x inner.
    """
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    xs = np.linspace(margin, 1.0 - margin, grid) * (width - 1)
    ys = np.linspace(margin, 1.0 - margin, grid) * (height - 1)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)


class PointTracker(abc.ABC):
    """Tracks a fixed number N of points, one frame per call, re-seeding lost points on the grid.

    The first call after construction or `reset()` seeds the grid and returns zero velocities.
    """

    #: number of points tracked
    n_points: int

    @abc.abstractmethod
    def step(self, image: np.ndarray) -> TrackStep:
        """Advance by one frame. `image`: (H, W, 3) uint8 BGR or (H, W) uint8 grey."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget all state; the next `step` re-seeds the grid."""
