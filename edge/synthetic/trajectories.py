"""Exact 2-D trajectories of surface points, from the layer transforms.

A query point (x, y) in image pixels at frame `frame0` belongs to the topmost layer covering that
pixel there (the bench when nothing else does). Its position at frame t is that layer's
transform at t applied to the point's sprite coordinates, plus the camera shake at t. It is
visible at t when it lies inside the frame, its layer exists, and no layer drawn above it covers
it. Coverage is the sprite alpha (bilinear, > 127), the same test the renderer applies.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.synthetic import affine
from edge.synthetic.layers import LayerStack


def exact_trajectories(stack: LayerStack, shake: np.ndarray, size: tuple[int, int], points_xy: np.ndarray,
                       frame0: int, frame_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (T, N, 2) float32 (x, y) px and visibility (T, N) bool of `points_xy` (N, 2)
    given at `frame0`, at each frame of `frame_indices` (T,)."""
    width, height = size
    pts = np.asarray(points_xy, np.float64).reshape(-1, 2)
    frames = np.asarray(frame_indices, np.int64).reshape(-1)
    n = len(pts)
    scene0 = pts - shake[frame0]
    st0 = stack.state(np.array([frame0]))
    owner = np.full(n, -1, np.int64)
    local = scene0.copy()
    for k in np.argsort(-st0.z[0], kind="stable"):
        if not st0.alive[0, k]:
            continue
        free = owner < 0
        if not free.any():
            break
        q = affine.apply(affine.invert(st0.mats[0, k]), scene0[free])
        hit = _covered(stack, int(k), q)
        idx = np.flatnonzero(free)[hit]
        owner[idx] = k
        local[idx] = q[hit]

    st = stack.state(frames)
    t_len = len(frames)
    scene = np.broadcast_to(scene0, (t_len, n, 2)).copy()
    owner_alive = np.ones((t_len, n), bool)
    owner_z = np.full((t_len, n), -np.inf)
    for k in np.unique(owner[owner >= 0]):
        sel = owner == k
        scene[:, sel] = affine.apply(st.mats[:, k], local[sel][None].repeat(t_len, axis=0))
        owner_alive[:, sel] = st.alive[:, k][:, None]
        owner_z[:, sel] = st.z[:, k][:, None]

    occluded = np.zeros((t_len, n), bool)
    for k in range(len(stack.layers)):
        above = st.alive[:, k][:, None] & (st.z[:, k][:, None] > owner_z)
        if not above.any():
            continue
        q = affine.apply(affine.invert(st.mats[:, k]), scene)
        occluded |= above & _covered(stack, k, q)

    positions = scene + shake[frames][:, None, :]
    inside = ((positions[..., 0] >= -0.5) & (positions[..., 0] < width - 0.5)
              & (positions[..., 1] >= -0.5) & (positions[..., 1] < height - 0.5))
    visible = inside & owner_alive & ~occluded
    return positions.astype(np.float32), visible


def _covered(stack: LayerStack, k: int, q: np.ndarray) -> np.ndarray:
    """Whether sprite points q (..., 2) of layer k are covered (alpha > 127, bilinear)."""
    layer = stack.layers[k]
    shape = q.shape[:-1]
    flat = q.reshape(-1, 2)
    if flat.size == 0:
        return np.zeros(shape, bool)
    x = flat[:, 0]
    if layer.period > 0:
        x = np.mod(x, layer.period)
    alpha = layer.sprite.alpha
    # cv2.remap interpolates exactly like the renderer's warpAffine; maps are limited to
    # 32767 columns, so sample in rows of that width.
    m = len(flat)
    cols = min(m, 32000)
    rows = -(-m // cols)
    mx = np.full(rows * cols, -10.0, np.float32)
    my = np.full(rows * cols, -10.0, np.float32)
    mx[:m] = x
    my[:m] = flat[:, 1]
    a = cv2.remap(np.ascontiguousarray(alpha), mx.reshape(rows, cols), my.reshape(rows, cols), cv2.INTER_LINEAR,
                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return (a.reshape(-1)[:m] > 127).reshape(shape)
