"""OpenCV pyramidal Lucas-Kanade point tracker with a forward-backward check (the CPU backend).

Per frame: one grey conversion (kept as the next step's previous frame), then LK forward
(previous -> current) and backward (current -> previous, starting from the forward result). A
point is kept when both passes converge, its position is finite and inside the frame, and it
comes back within `fb_threshold_px` of where it started (Kalal et al., "Forward-Backward Error",
2010).

Pyramids: OpenCV's C++ API lets a caller build each frame's pyramid once
(`buildOpticalFlowPyramid`) and pass it to both LK calls, but its Python binding accepts only a
single image for `prevImg`/`nextImg` (opencv/opencv#4777, still open; this OpenCV 5.0 build
rejects a list: "prevImg is not a numpy array"). So each `calcOpticalFlowPyrLK` call rebuilds the
two pyramids itself (4 builds per step). `benchmarks/lk_tracking.py` measures what that costs.

A point that fails is re-seeded at its original grid position: velocity 0 and visible False for
that step (the track was lost, so this step's motion is not a measurement), tracked again from
the next frame. On the first frame (and after `reset()`) the grid is seeded: velocity 0 and
visible True (the points are exactly where they were placed).

With a region of interest (`edge.tracking.roi`), only the grid points inside it are tracked
(the LK calls see only those, so a small region is also cheaper); the others stay at their grid
position, invisible, velocity 0, on every step including the seeding one.

Coordinates follow `edge.tracking.base`: (x, y) pixels of the image given to `step`.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.tracking.base import PointTracker, TrackStep, grid_points
from edge.tracking.roi import RegionOfInterest

log = logging.getLogger(__name__)


class LucasKanadeTracker(PointTracker):
    """Tracks a grid x grid lattice of points with pyramidal LK and a forward-backward check.

    grid: points per side (N = grid * grid). margin: normalised free border (see `grid_points`).
    win_size: LK window side in pixels (odd, >= 3). max_level: pyramid levels above the base.
    fb_threshold_px: largest forward-backward error (px) for a point to stay visible.
    max_iterations, epsilon: LK termination criteria per level.
    min_eig_threshold: LK's minimum normalised eigenvalue; points on flat, textureless patches
    below it fail (and are re-seeded) instead of drifting.
    roi: a `RegionOfInterest`; grid points outside it are never tracked (None: all are).

    After each `step`, `last_fb_error` holds the forward-backward error per point, (N,) float32
    pixels: NaN on a seeding step, +inf where LK itself failed (no convergence, left the image).
    `last_reseeded` (N,) bool marks the points re-seeded in the last step.
    """

    def __init__(
        self,
        grid: int = 20,
        margin: float = 1.0 / 20.0,
        win_size: int = 15,
        max_level: int = 3,
        fb_threshold_px: float = 1.0,
        max_iterations: int = 30,
        epsilon: float = 0.01,
        min_eig_threshold: float = 1e-4,
        roi: RegionOfInterest | None = None,
    ) -> None:
        _check(isinstance(grid, (int, np.integer)) and grid >= 1, "grid", grid, "a whole number >= 1, e.g. 20")
        _check(0.0 <= margin < 0.5, "margin", margin, "a fraction in [0, 0.5), e.g. 0.05")
        _check(isinstance(win_size, (int, np.integer)) and win_size >= 3 and win_size % 2 == 1,
               "win_size", win_size, "an odd number of pixels >= 3, e.g. 15")
        _check(isinstance(max_level, (int, np.integer)) and 0 <= max_level <= 8,
               "max_level", max_level, "a whole number in 0..8, e.g. 3")
        _check(fb_threshold_px > 0, "fb_threshold_px", fb_threshold_px, "a positive number of pixels, e.g. 1.0")
        _check(max_iterations >= 1, "max_iterations", max_iterations, "a whole number >= 1, e.g. 30")
        _check(epsilon > 0, "epsilon", epsilon, "a positive number, e.g. 0.01")
        _check(min_eig_threshold >= 0, "min_eig_threshold", min_eig_threshold, "a number >= 0, e.g. 1e-4")
        self.grid = int(grid)
        self.margin = float(margin)
        self.win_size = int(win_size)
        self.max_level = int(max_level)
        self.fb_threshold_px = float(fb_threshold_px)
        self.min_eig_threshold = float(min_eig_threshold)
        self.roi = roi
        self.criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, int(max_iterations), float(epsilon))
        self.n_points = self.grid * self.grid
        self.last_fb_error = np.full(self.n_points, np.nan, dtype=np.float32)
        self.last_reseeded = np.zeros(self.n_points, dtype=bool)
        self.reset()

    def reset(self) -> None:
        self._prev_grey: np.ndarray | None = None
        self._size: tuple[int, int] | None = None
        self._seeds: np.ndarray | None = None
        self._points: np.ndarray | None = None
        self._active: np.ndarray | None = None  # (N,) bool: inside the region (all without one)

    def step(self, image: np.ndarray) -> TrackStep:
        """Advance by one frame. `image`: (H, W, 3) uint8 BGR or (H, W) uint8 grey."""
        grey = to_grey(image)
        size = (grey.shape[1], grey.shape[0])
        if self._prev_grey is None or size != self._size:
            if self._size is not None and size != self._size:
                log.warning("frame size changed from %dx%d to %dx%d; re-seeding all points",
                            *self._size, *size)
            return self._seed(grey, size)

        assert self._points is not None and self._seeds is not None and self._active is not None
        active = self._active
        n = self.n_points
        fb_error = np.full(n, np.nan, dtype=np.float32)  # NaN: not measured (outside the region)
        visible = np.zeros(n, dtype=bool)
        p0_all = self._points
        p1_all = self._seeds.copy()
        if active.any():
            p0 = p0_all[active].reshape(-1, 1, 2)
            win = (self.win_size, self.win_size)
            p1, st_fwd, _ = cv2.calcOpticalFlowPyrLK(
                self._prev_grey, grey, p0, None, winSize=win, maxLevel=self.max_level,
                criteria=self.criteria, minEigThreshold=self.min_eig_threshold,
            )
            p0_back, st_bwd, _ = cv2.calcOpticalFlowPyrLK(
                grey, self._prev_grey, p1, None, winSize=win, maxLevel=self.max_level,
                criteria=self.criteria, minEigThreshold=self.min_eig_threshold,
            )
            p0 = p0.reshape(-1, 2)
            p1 = p1.reshape(-1, 2)
            converged = (st_fwd.ravel() == 1) & (st_bwd.ravel() == 1)
            err = np.linalg.norm(p0_back.reshape(-1, 2) - p0, axis=1).astype(np.float32)
            err[~converged] = np.inf
            w, h = size
            inside = (
                np.isfinite(p1).all(axis=1)
                & (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1)
                & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
            )
            fb_error[active] = err
            visible[active] = converged & inside & (err <= self.fb_threshold_px)
            p1_all[active] = p1

        points = np.where(visible[:, None], p1_all, self._seeds).astype(np.float32)
        velocity = np.where(visible[:, None], p1_all - p0_all, 0.0).astype(np.float32)
        self._points = points
        self._prev_grey = grey
        self.last_fb_error = fb_error
        self.last_reseeded = active & ~visible
        return TrackStep(points=points.copy(), visible=visible, velocity=velocity)

    def _seed(self, grey: np.ndarray, size: tuple[int, int]) -> TrackStep:
        """Place the grid on this frame: zero velocity, every point (inside the region) visible."""
        self._size = size
        self._seeds = grid_points(size[0], size[1], self.grid, self.margin)
        self._active = (self.roi.mask(self._seeds, size[0], size[1]) if self.roi is not None
                        else np.ones(self.n_points, dtype=bool))
        self._points = self._seeds.copy()
        self._prev_grey = grey
        self.last_fb_error = np.full(self.n_points, np.nan, dtype=np.float32)
        self.last_reseeded = self._active.copy()
        return TrackStep(
            points=self._seeds.copy(),
            visible=self._active.copy(),
            velocity=np.zeros((self.n_points, 2), dtype=np.float32),
        )


def to_grey(image: np.ndarray) -> np.ndarray:
    """(H, W) uint8 grey from (H, W, 3) BGR, (H, W, 1) or (H, W) uint8.

    Always a new array: the tracker keeps it as the next step's previous frame, and a caller may
    reuse its own buffer for the next frame.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(
            f"tracker images must be uint8 numpy arrays, got {getattr(image, 'dtype', type(image))}"
        )
    if image.ndim == 2:
        return image.copy()
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0].copy()
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    raise ValueError(f"tracker images must be (H, W, 3) BGR or (H, W) grey, got shape {image.shape}")


def _check(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"LK tracker option {name}={value!r} is not allowed; use {allowed}")
