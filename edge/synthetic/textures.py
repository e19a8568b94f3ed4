"""Procedural textures and the sprite container of the synthetic workstation.

Everything a point tracker follows must carry texture: fractal noise for material variation,
fine grain for corners at every scale, and marks (scratches, creases, print) for strong features.
All functions draw from the `np.random.Generator` they are given, so one seed gives one look.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.synthetic import affine


@dataclass(frozen=True)
class Sprite:
    """A pre-rendered image placed in the scene by one affine transform per frame.

    bgra: (h, w, 4) uint8. Colour is extended a few pixels into transparent areas so bilinear
          warping never pulls dark fringes in; coverage is alpha > 127.
    pivot: the sprite pixel (x, y) that is the origin of the layer's local frame.
    """

    bgra: np.ndarray
    pivot: tuple[float, float]

    @property
    def alpha(self) -> np.ndarray:
        return self.bgra[:, :, 3]

    @property
    def local_from_sprite(self) -> np.ndarray:
        """3x3 matrix mapping sprite pixels to the layer's local frame (pivot at the origin)."""
        return affine.translation(-self.pivot[0], -self.pivot[1])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.bgra.shape[1], self.bgra.shape[0]


def fractal_noise(rng: np.random.Generator, height: int, width: int, cell: float, octaves: int = 3,
                  stretch: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Smooth noise (height, width) float32, zero mean, unit std; `cell` = largest feature in px.

    `stretch` (sx, sy) elongates features (wood grain, brushed metal).
    """
    acc = np.zeros((height, width), np.float32)
    amp = 1.0
    for _ in range(octaves):
        gw = max(2, int(width / (cell * stretch[0])) + 3)
        gh = max(2, int(height / (cell * stretch[1])) + 3)
        grid = rng.standard_normal((gh, gw)).astype(np.float32)
        acc += amp * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        cell /= 2.0
        amp *= 0.55
    acc -= acc.mean()
    std = float(acc.std())
    return acc / std if std > 0 else acc


def grain(rng: np.random.Generator, height: int, width: int, sigma: float = 0.7) -> np.ndarray:
    """Fine pixel-scale grain (height, width) float32, unit std: corners for trackers everywhere."""
    g = rng.standard_normal((height, width)).astype(np.float32)
    g = cv2.GaussianBlur(g, (0, 0), sigma)
    return g / max(float(g.std()), 1e-6)


def colour_field(rng: np.random.Generator, height: int, width: int, base_bgr, contrast: float,
                 cell: float, grain_amount: float = 6.0, stretch: tuple[float, float] = (1.0, 1.0),
                 tint: float = 0.25) -> np.ndarray:
    """A textured colour image (height, width, 3) float32 around `base_bgr` (0..255 scale).

    contrast: std of the fractal brightness variation in grey levels; tint: fraction of it that
    varies per channel (material colour variation); grain_amount: std of the fine grain.
    """
    base = np.asarray(base_bgr, np.float32)
    lum = fractal_noise(rng, height, width, cell, 4, stretch) * contrast
    img = np.empty((height, width, 3), np.float32)
    for ch in range(3):
        chroma = fractal_noise(rng, height, width, cell * 1.5, 2) * contrast * tint
        img[:, :, ch] = base[ch] + lum + chroma
    img += grain(rng, height, width)[:, :, None] * grain_amount
    return img


def scratches(rng: np.random.Generator, img: np.ndarray, count: int, length: tuple[float, float],
              shade: float, thickness: int = 1, mask: np.ndarray | None = None) -> None:
    """Draw `count` thin straight/curved scratches into float image `img` (in place).

    shade > 0 lightens, < 0 darkens (grey levels).
    """
    h, w = img.shape[:2]
    layer = np.zeros((h, w), np.float32)
    for _ in range(count):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        ang = rng.uniform(0, np.pi)
        ln = rng.uniform(*length)
        bend = rng.uniform(-0.3, 0.3)
        pts = []
        for k in range(6):
            s = k / 5.0
            a = ang + bend * s
            pts.append((x0 + np.cos(a) * ln * s, y0 + np.sin(a) * ln * s))
        cv2.polylines(layer, [np.round(np.array(pts) * 16).astype(np.int32)], False,
                      float(rng.uniform(0.5, 1.0)), thickness, cv2.LINE_AA, shift=4)
    if mask is not None:
        layer *= mask
    img += layer[:, :, None] * shade


def print_text(rng: np.random.Generator, img: np.ndarray, origin: tuple[float, float], height_px: float,
               colour, chars: int = 6, angle: float = 0.0) -> None:
    """Stamp a random alphanumeric code (like a serial number or a label) into `img` in place."""
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789-"
    text = "".join(rng.choice(list(alphabet), chars))
    scale = height_px / 22.0
    thickness = max(1, int(round(height_px / 10.0)))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = 4
    patch = np.zeros((th + 2 * pad + 4, tw + 2 * pad), np.uint8)
    cv2.putText(patch, text, (pad, th + pad), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    centre = (patch.shape[1] / 2, patch.shape[0] / 2)
    m = cv2.getRotationMatrix2D(centre, -np.degrees(angle), 1.0)
    m[0, 2] += origin[0] - centre[0]
    m[1, 2] += origin[1] - centre[1]
    h, w = img.shape[:2]
    stamp = cv2.warpAffine(patch, m, (w, h)).astype(np.float32) / 255.0
    img[:] = img * (1 - stamp[:, :, None]) + np.asarray(colour, np.float32) * stamp[:, :, None]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float image (0..255 scale) rounded and clipped to uint8."""
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def make_sprite(colour: np.ndarray, alpha: np.ndarray, pivot: tuple[float, float]) -> Sprite:
    """Build a Sprite from a float/uint8 colour image and a uint8 alpha (0..255) of the same size.

    Colour is extended into transparent pixels (dilation) so warped edges keep the object's colour.
    """
    bgr = to_uint8(colour) if colour.dtype != np.uint8 else colour
    a = alpha.astype(np.uint8)
    inside = a > 127
    filled = np.where(inside[:, :, None], bgr, 0).astype(np.uint8)
    known = inside.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(3):
        grown = cv2.dilate(filled, kernel)
        grown_known = cv2.dilate(known, kernel)
        new = (grown_known > 0) & (known == 0)
        filled[new] = grown[new]
        known = grown_known
    bgra = np.dstack([filled, a])
    return Sprite(bgra=np.ascontiguousarray(bgra), pivot=(float(pivot[0]), float(pivot[1])))


def cylinder_shading(height: int, width: int, axis: int, ambient: float = 0.62,
                     light: float = 0.55) -> np.ndarray:
    """Brightness factor (height, width) of a cylinder lying along `axis` (0: along x, 1: along y),
    lit from slightly above-left: darker towards its silhouette, a soft highlight off-centre."""
    n = height if axis == 0 else width
    s = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    profile = ambient + (1.0 - ambient) * np.sqrt(np.clip(1.0 - s ** 2, 0, 1))
    profile += 0.12 * np.exp(-((s + 0.35) / 0.25) ** 2) * light
    if axis == 0:
        return np.repeat(profile[:, None], width, axis=1)
    return np.repeat(profile[None, :], height, axis=0)
