"""2-D similarity/affine transforms as 3x3 matrices, vectorised over frames.

Every layer of the synthetic scene is placed by one matrix per frame that maps its sprite's
pixel coordinates (x, y) to image pixels (x right, y down, origin at the top-left pixel's
centre, the project's one convention). Arrays of matrices have shape (..., 3, 3), float64.
"""

from __future__ import annotations

import numpy as np


def similarity(tx, ty, theta, sx, sy=None) -> np.ndarray:
    """T(tx, ty) @ R(theta) @ S(sx, sy) as (..., 3, 3); broadcasts its arguments.

    theta in radians (positive turns +x towards +y, i.e. clockwise on screen); sx, sy are
    scale factors along the rotated frame's axes (sy defaults to sx).
    """
    if sy is None:
        sy = sx
    tx, ty, theta, sx, sy = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (tx, ty, theta, sx, sy)))
    c, s = np.cos(theta), np.sin(theta)
    out = np.zeros(tx.shape + (3, 3), np.float64)
    out[..., 0, 0] = c * sx
    out[..., 0, 1] = -s * sy
    out[..., 0, 2] = tx
    out[..., 1, 0] = s * sx
    out[..., 1, 1] = c * sy
    out[..., 1, 2] = ty
    out[..., 2, 2] = 1.0
    return out


def translation(tx: float, ty: float) -> np.ndarray:
    """A single 3x3 translation matrix."""
    return similarity(tx, ty, 0.0, 1.0)


def about_point(px, py, theta, scale) -> np.ndarray:
    """Rotation by `theta` and scaling by `scale` about the point (px, py), (..., 3, 3)."""
    return similarity(px, py, 0.0, 1.0) @ similarity(0.0, 0.0, theta, scale) @ similarity(-np.asarray(px),
                                                                                           -np.asarray(py), 0.0, 1.0)


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of affine matrices (..., 3, 3) (last row 0 0 1), exact closed form."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    det = a * e - b * d
    out = np.zeros_like(m)
    out[..., 0, 0] = e / det
    out[..., 0, 1] = -b / det
    out[..., 1, 0] = -d / det
    out[..., 1, 1] = a / det
    out[..., 0, 2] = (b * f - e * c) / det
    out[..., 1, 2] = (d * c - a * f) / det
    out[..., 2, 2] = 1.0
    return out


def apply(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points (..., N, 2) by matrices (..., 3, 3) (broadcast over leading axes) -> (..., N, 2)."""
    p = np.asarray(points, np.float64)
    x = m[..., None, 0, 0] * p[..., 0] + m[..., None, 0, 1] * p[..., 1] + m[..., None, 0, 2]
    y = m[..., None, 1, 0] * p[..., 0] + m[..., None, 1, 1] * p[..., 1] + m[..., None, 1, 2]
    return np.stack([x, y], axis=-1)


def decompose(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tx, ty, theta, scale) of similarity matrices (..., 3, 3) (uniform scale, no shear)."""
    tx, ty = m[..., 0, 2], m[..., 1, 2]
    theta = np.arctan2(m[..., 1, 0], m[..., 0, 0])
    scale = np.hypot(m[..., 0, 0], m[..., 1, 0])
    return tx, ty, theta, scale


def wrap_angle(a):
    """Angles wrapped to [-pi, pi)."""
    return (np.asarray(a) + np.pi) % (2.0 * np.pi) - np.pi
