"""Frame rendering: composite the layer stack, blur what moves, shake, then the camera effects.

Speed comes from doing as little as possible per frame:
- layer states are computed for chunks of frames at once (vectorised) and reused;
- the bottom of the stack that did not move since the previous frame is composited once and
  cached (at a rest, the whole frame); the rest is drawn on a copy;
- a sprite is warped only over its bounding box inside the frame, and a layer whose matrix did
  not change reuses its last warp;
- motion blur filters only the bounding box of each moving group;
- the scene is composited on a canvas a few pixels larger than the frame, so camera shake is a
  window into it (the whole-pixel part costs nothing) plus one 2x2 filter for the sub-pixel part,
  and a shaken frame shows bench texture at its edges, as a real camera would;
- the camera effects are single passes (colour transform, noise add/subtract, JPEG).
Every cache holds values that are pure functions of the frame index, so random access gives
the same pixels as rendering in order.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.synthetic import affine
from edge.synthetic.compositing import sprite_roi, warp_sprite
from edge.synthetic.layers import LayerStack, LayerState
from edge.synthetic.nuisances import CameraEffects, Nuisances

#: fraction of the frame interval the shutter is open (motion-blur length = speed x this)
EXPOSURE = 0.5
#: frames per chunk of precomputed layer states
CHUNK = 128


class Renderer:
    """Renders frame i of one recording as (H, W, 3) uint8 BGR."""

    def __init__(self, stack: LayerStack, background: np.ndarray, effects: CameraEffects,
                 nuisances: Nuisances, n_frames: int, pad: int) -> None:
        """background: (H + 2 pad, W + 2 pad, 4) BGRA canvas; frame pixel (x, y) is canvas pixel
        (x + pad, y + pad) when there is no shake. `pad` must exceed the largest shake."""
        self.stack = stack
        self.background = background
        self.effects = effects
        self.nuisances = nuisances
        self.n_frames = n_frames
        self.pad = pad
        self.height, self.width = background.shape[0] - 2 * pad, background.shape[1] - 2 * pad
        self._to_canvas = np.array([[0.0, 0.0, pad], [0.0, 0.0, pad]])
        self._chunk_start = -1
        self._chunk: LayerState | None = None
        self._prefix_key: tuple = ()
        self._prefix_img: np.ndarray | None = None
        self._warp_cache: dict[int, tuple[bytes, tuple, np.ndarray, np.ndarray]] = {}
        self._kernels: dict[tuple[int, int], np.ndarray] = {}
        self._lists: dict[int, tuple] = {}

    # ---- state ------------------------------------------------------------------------------

    def _state_at(self, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        start = (i // CHUNK) * CHUNK
        if start != self._chunk_start:
            frames = np.arange(start, min(start + CHUNK, self.n_frames))
            self._chunk = self.stack.state(frames)
            self._chunk_start = start
        k = i - start
        st = self._chunk
        return st.mats[k], st.alive[k], st.z[k], st.group[k]

    def _draw_list(self, i: int) -> tuple[list[tuple[int, bytes]], dict, np.ndarray, np.ndarray]:
        """Layers to draw at frame i, bottom first, as (layer, matrix bytes); their canvas matrices;
        all layer matrices and blur groups. The last two frames' lists are memoised (in-order
        rendering asks for each frame twice: as the frame and as the previous one)."""
        memo = self._lists.get(i)
        if memo is not None:
            return memo
        mats, alive, z, group = self._state_at(i)
        order = [int(k) for k in np.argsort(z, kind="stable") if alive[k]]
        items = []
        rmats = {}
        for k in order:
            m = self.stack.render_matrix(k, mats[k]) + self._to_canvas
            rmats[k] = m
            items.append((k, np.ascontiguousarray(m).tobytes()))
        result = (items, rmats, mats, group)
        if len(self._lists) >= 2:
            self._lists.pop(min(self._lists))
        self._lists[i] = result
        return result

    # ---- frames -----------------------------------------------------------------------------

    def render(self, i: int) -> np.ndarray:
        """Frame i as (H, W, 3) uint8 BGR (a new array)."""
        return self.effects.apply(self.render_scene(i), i)

    def render_scene(self, i: int) -> np.ndarray:
        """Frame i before the photometric camera effects (illumination, noise, compression): the
        composited scene with motion blur, seen through the shaken camera. Not thread-safe."""
        items, rmats, mats, group = self._draw_list(i)
        if i > 0:
            prev_items, _, prev_mats, _ = self._draw_list(i - 1)
        else:
            prev_items, prev_mats = items, mats
        # Everything at the bottom of the stack that did not change since the previous frame.
        j = 0
        while j < len(items) and j < len(prev_items) and items[j] == prev_items[j]:
            j += 1
        prefix = tuple(items[:j])
        if prefix != self._prefix_key or self._prefix_img is None:
            base = self.background.copy()
            for k, _ in items[:j]:
                self._draw(base, k, rmats[k])
            self._prefix_key = prefix
            self._prefix_img = base
        frame = self._prefix_img.copy()
        drawn = []
        for k, _ in items[j:]:
            roi_mask = self._draw(frame, k, rmats[k])
            if roi_mask is not None:
                drawn.append((k, roi_mask))
        if self.nuisances.blur and drawn:
            self._motion_blur(frame, drawn, mats, prev_mats, group)
        return self._camera_window(frame, *self.effects.shake_xy(i))

    def _camera_window(self, canvas: np.ndarray, dx: float, dy: float) -> np.ndarray:
        """The frame seen through a camera shifted by (dx, dy): out(x, y) = scene(x - dx, y - dy),
        bilinear, as a new contiguous BGR array."""
        p, h, w = self.pad, self.height, self.width
        if dx == 0.0 and dy == 0.0:
            return cv2.cvtColor(canvas[p:p + h, p:p + w], cv2.COLOR_BGRA2BGR)
        ix, iy = math.floor(dx), math.floor(dy)
        fx, fy = dx - ix, dy - iy
        # out(x, y) = sum over the 2x2 canvas pixels at (x - ix - 1 .. x - ix, y - iy - 1 .. y - iy) + pad.
        x0, y0 = p - ix - 1, p - iy - 1
        region = cv2.cvtColor(canvas[y0:y0 + h + 1, x0:x0 + w + 1], cv2.COLOR_BGRA2BGR)
        kernel = np.array([[fx * fy, (1 - fx) * fy], [fx * (1 - fy), (1 - fx) * (1 - fy)]], np.float32)
        out = cv2.filter2D(region, -1, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        return np.ascontiguousarray(out[:h, :w])

    def _draw(self, frame: np.ndarray, k: int, m23: np.ndarray):
        """Draw layer k; returns (roi, mask) or None. Reuses the last warp when m23 is unchanged."""
        key = m23.tobytes()
        cached = self._warp_cache.get(k)
        if cached is not None and cached[0] == key:
            _, roi, warped, mask = cached
        else:
            sprite = self.stack.layers[k].sprite.bgra
            roi = sprite_roi(frame.shape[:2], (sprite.shape[1], sprite.shape[0]), m23)
            if roi is None:
                self._warp_cache[k] = (key, None, None, None)
                return None
            warped, mask = warp_sprite(sprite, m23, roi)
            self._warp_cache[k] = (key, roi, warped, mask)
        if roi is None:
            return None
        x0, y0, x1, y1 = roi
        cv2.copyTo(warped, mask, frame[y0:y1, x0:x1])
        return roi, mask

    def _motion_blur(self, frame: np.ndarray, drawn: list, mats: np.ndarray, prev_mats: np.ndarray,
                     group: np.ndarray) -> None:
        """Smear each moving group (arm, hand with what it holds, belt, passer-by) along its motion."""
        by_group: dict[int, list] = {}
        for k, (roi, mask) in drawn:
            by_group.setdefault(int(group[k]), []).append((k, roi, mask))
        for gid, members in by_group.items():
            if gid == 0:
                continue
            x0 = min(r[0] for _, r, _ in members)
            y0 = min(r[1] for _, r, _ in members)
            x1 = max(r[2] for _, r, _ in members)
            y1 = max(r[3] for _, r, _ in members)
            # Displacement since the previous frame at the group's centre, from its first layer.
            k0 = members[0][0]
            centre = np.array([[0.5 * (x0 + x1) - self.pad, 0.5 * (y0 + y1) - self.pad]])
            local = affine.apply(affine.invert(mats[k0]), centre)
            before = affine.apply(prev_mats[k0], local)[0]
            dx, dy = (centre[0] - before) * EXPOSURE
            length = math.hypot(dx, dy)
            if length < 1.0:
                continue
            kernel = self._kernel(dx, dy)
            r = kernel.shape[0] // 2
            bx0, by0 = max(0, x0 - r), max(0, y0 - r)
            bx1, by1 = min(frame.shape[1], x1 + r), min(frame.shape[0], y1 + r)
            region = frame[by0:by1, bx0:bx1]
            covered = np.zeros(region.shape[:2], np.uint8)
            for _, (rx0, ry0, rx1, ry1), mask in members:
                sub = covered[ry0 - by0:ry1 - by0, rx0 - bx0:rx1 - bx0]
                cv2.bitwise_or(sub, mask, dst=sub)
            smeared = cv2.filter2D(region, -1, kernel, borderType=cv2.BORDER_REPLICATE)
            reach = cv2.filter2D(covered, -1, kernel, borderType=cv2.BORDER_CONSTANT)
            cv2.copyTo(smeared, reach, region)

    def _kernel(self, dx: float, dy: float) -> np.ndarray:
        """Normalised line kernel of the motion (dx, dy) px, cached at half-pixel resolution."""
        key = (int(round(dx * 2)), int(round(dy * 2)))
        kern = self._kernels.get(key)
        if kern is None:
            qx, qy = key[0] / 2.0, key[1] / 2.0
            r = int(math.ceil(max(abs(qx), abs(qy)) / 2)) + 1
            size = 2 * r + 1
            kern = np.zeros((size, size), np.float32)
            samples = max(8, int(4 * math.hypot(qx, qy)))
            for s in np.linspace(-0.5, 0.5, samples):
                x, y = r + s * qx, r + s * qy
                ix, iy = int(math.floor(x)), int(math.floor(y))
                fx, fy = x - ix, y - iy
                kern[iy, ix] += (1 - fx) * (1 - fy)
                kern[iy, ix + 1] += fx * (1 - fy)
                kern[iy + 1, ix] += (1 - fx) * fy
                kern[iy + 1, ix + 1] += fx * fy
            kern /= kern.sum()
            self._kernels[key] = kern
        return kern
