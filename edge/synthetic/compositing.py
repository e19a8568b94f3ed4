"""Placing a sprite into a frame: one warp of the sprite's bounding box, then a masked copy.

The renderer and the background painter share this one function, so a part painted into the
background and the same part drawn as a layer with the same matrix give identical pixels.
"""

from __future__ import annotations

import math

import cv2
import numpy as np


def sprite_roi(shape: tuple[int, int], sprite_size: tuple[int, int], m23: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (x0, y0, x1, y1), end exclusive, of a sprite placed by `m23` inside a frame of
    `shape` (height, width); None when it falls outside the frame."""
    w, h = sprite_size
    a, b, c = m23[0]
    d, e, f = m23[1]
    xs = (c, a * (w - 1) + c, b * (h - 1) + c, a * (w - 1) + b * (h - 1) + c)
    ys = (f, d * (w - 1) + f, e * (h - 1) + f, d * (w - 1) + e * (h - 1) + f)
    x0 = max(0, int(math.floor(min(xs))) - 1)
    y0 = max(0, int(math.floor(min(ys))) - 1)
    x1 = min(shape[1], int(math.ceil(max(xs))) + 2)
    y1 = min(shape[0], int(math.ceil(max(ys))) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def warp_sprite(bgra: np.ndarray, m23: np.ndarray, roi: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The sprite warped into `roi` (bilinear) and its coverage mask (alpha > 127, uint8 0/255)."""
    x0, y0, x1, y1 = roi
    m = np.array(m23, np.float64)
    m[0, 2] -= x0
    m[1, 2] -= y0
    warped = cv2.warpAffine(bgra, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    mask = cv2.compare(cv2.extractChannel(warped, 3), 127, cv2.CMP_GT)
    return warped, mask


def draw_sprite(frame4: np.ndarray, bgra: np.ndarray, m23: np.ndarray) -> tuple[int, int, int, int] | None:
    """Composite a BGRA sprite placed by `m23` (sprite px -> frame px) into a BGRA frame in place.

    Returns the ROI drawn into, or None when the sprite is outside the frame.
    """
    roi = sprite_roi(frame4.shape[:2], (bgra.shape[1], bgra.shape[0]), m23)
    if roi is None:
        return None
    warped, mask = warp_sprite(bgra, m23, roi)
    x0, y0, x1, y1 = roi
    cv2.copyTo(warped, mask, frame4[y0:y1, x0:x1])
    return roi
