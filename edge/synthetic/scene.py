"""The workbench seen by a fixed overhead camera: where things are, and the painted background.

The worker stands below the frame; two forearms enter from the bottom edge. On the bench: a part
bin (left), a tray for finished parts (right), a fixture (centre) and a screwdriver holder (right,
near the worker). Along the top edge runs either a conveyor belt or an aisle where people pass:
that strip is where the distractor moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.synthetic import affine
from edge.synthetic.compositing import draw_sprite
from edge.synthetic.sprites import PART_SIDE, TOOL_HANDLE, TOOL_SHAFT
from edge.synthetic.textures import Sprite, colour_field, print_text, scratches, to_uint8

DISTRACTORS = ("conveyor", "passerby")


@dataclass(frozen=True)
class Layout:
    """Positions (image pixels, x right, y down) of everything on the bench for one seed."""

    width: int
    height: int
    unit: float                                  # height / 480: scale of sprites and offsets
    distractor: str                              # "conveyor" or "passerby"
    strip_h: int                                 # height of the top strip (belt / aisle)
    bin_rect: tuple[float, float, float, float]  # x0, y0, x1, y1
    bin_slots: tuple[tuple[float, float, float], ...]    # parts ready to grasp: x, y, angle
    tray_rect: tuple[float, float, float, float]
    tray_slots: tuple[tuple[float, float], ...]
    fixture: tuple[float, float, float]          # part seat: x, y, angle
    holder: tuple[float, float, float]           # screwdriver handle centre and axis angle
    homes: tuple[tuple[float, float, float], ...]   # rest pose per hand (left, right): x, y, theta
    shoulders: tuple[tuple[float, float], ...]   # per hand, below the frame
    arm_length: float                            # forearm sprite length: always reaches past the frame

    def bin_part_pose(self, slot: int) -> np.ndarray:
        x, y, a = self.bin_slots[slot]
        return affine.similarity(x, y, a, 1.0)

    def fixture_pose(self, quarter_turns: int = 0) -> np.ndarray:
        x, y, a = self.fixture
        return affine.similarity(x, y, a + quarter_turns * np.pi / 2, 1.0)

    def tool_pose(self) -> np.ndarray:
        x, y, a = self.holder
        return affine.similarity(x, y, a, 1.0)


def choose_layout(rng: np.random.Generator, size: tuple[int, int], distractor: str | None = None) -> Layout:
    """Draw a layout for a frame of `size` (width, height); positions jitter per seed."""
    width, height = size
    u = height / 480.0
    if distractor is None:
        distractor = DISTRACTORS[int(rng.integers(2))]
    else:
        rng.integers(2)  # keep the draw sequence independent of the choice
    jx = lambda: rng.uniform(-0.025, 0.025) * width  # noqa: E731
    jy = lambda: rng.uniform(-0.02, 0.02) * height  # noqa: E731
    strip_h = int(round(0.12 * height))
    bx, by = 0.2 * width + jx(), 0.42 * height + jy()
    bin_rect = (bx - 84 * u, by - 66 * u, bx + 84 * u, by + 76 * u)
    # Slot centres >= 68 px apart (two 48 px squares never overlap at any angle).
    bin_slots = tuple((bx + dx * u, by + dy * u, rng.uniform(-np.pi, np.pi))
                      for dx, dy in ((-40, -24), (40, -24), (0, 36)))
    tx, ty = 0.8 * width + jx(), 0.4 * height + jy()
    tray_rect = (tx - 100 * u, ty - 70 * u, tx + 100 * u, ty + 70 * u)
    tray_slots = tuple((tx + dx * 62 * u, ty + dy * 62 * u) for dy in (-0.5, 0.5) for dx in (-1, 0, 1))
    fixture = (0.5 * width + jx(), 0.5 * height + jy(), rng.uniform(-0.3, 0.3))
    # Right of the right hand's rest position, tip pointing up-left towards the fixture.
    holder = (0.87 * width + jx(), 0.72 * height + jy(), np.pi + rng.uniform(0.25, 0.6))
    shoulders = ((0.5 * width - 95 * u, height + 230 * u), (0.5 * width + 95 * u, height + 230 * u))
    homes = []
    for (sx, sy), hx, hy in zip(shoulders, (0.3 * width + jx(), 0.64 * width + jx()),
                                (0.86 * height, 0.88 * height)):
        homes.append((hx, hy, float(np.arctan2(hy - sy, hx - sx))))
    arm_length = float(np.hypot(0.6 * width, height + 260 * u))
    return Layout(width=width, height=height, unit=u, distractor=distractor, strip_h=strip_h, bin_rect=bin_rect,
                  bin_slots=bin_slots, tray_rect=tray_rect, tray_slots=tray_slots, fixture=fixture, holder=holder,
                  homes=tuple(homes), shoulders=shoulders, arm_length=arm_length)


BENCHES = ("wood", "esd_grey", "esd_green", "steel")


def paint_background(rng: np.random.Generator, layout: Layout, part: Sprite) -> np.ndarray:
    """The static scene (H, W, 4) uint8 BGRA: bench, strip, bin with a pile of parts, tray,
    fixture and tool holder. The parts waiting in the bin slots are drawn with `draw_sprite` at
    `layout.bin_part_pose`, exactly as the renderer draws them."""
    w, h, u = layout.width, layout.height, layout.unit
    kind = BENCHES[int(rng.integers(len(BENCHES)))]
    img = _bench(rng, kind, h, w, u)
    _strip(rng, img, layout)
    shadows = np.zeros((h, w), np.float32)
    _bin(rng, img, shadows, layout)
    _tray(rng, img, shadows, layout)
    _fixture(rng, img, shadows, layout)
    _holder(rng, img, shadows, layout)
    # Soft contact shadows of the props, then vignetting and an uneven light field.
    shadows = cv2.GaussianBlur(shadows, (0, 0), 6 * u)
    img *= (1.0 - 0.35 * shadows)[:, :, None]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (0.75 * w)) ** 2 + ((yy - h / 2) / (0.75 * h)) ** 2
    light = (1.0 - 0.22 * r2) * (1.0 + 0.06 * (xx - w / 2) / w)
    img *= light[:, :, None]
    bgra = np.dstack([to_uint8(img), np.full((h, w), 255, np.uint8)])
    bgra = np.ascontiguousarray(bgra)
    # The pile: parts under the slot parts, darker (deeper in the bin).
    x0, y0, x1, y1 = layout.bin_rect
    pile = part.bgra.copy()
    pile[:, :, :3] = (pile[:, :, :3].astype(np.float32) * 0.72).astype(np.uint8)
    for _ in range(7):
        m = affine.similarity(rng.uniform(x0 + 30 * u, x1 - 30 * u), rng.uniform(y0 + 30 * u, y1 - 30 * u),
                              rng.uniform(-np.pi, np.pi), 1.0) @ part.local_from_sprite
        draw_sprite(bgra, pile, m[:2])
    for slot in range(len(layout.bin_slots)):
        draw_sprite(bgra, part.bgra, (layout.bin_part_pose(slot) @ part.local_from_sprite)[:2])
    return bgra


def _bench(rng, kind: str, h: int, w: int, u: float) -> np.ndarray:
    if kind == "wood":
        img = colour_field(rng, h, w, (70, 118, 165), 16.0, cell=40 * u, grain_amount=5.0, stretch=(6.0, 0.6))
        planks = np.arange(h) % int(96 * u) < max(1, int(2 * u))
        img[planks] *= 0.6
    elif kind == "esd_grey":
        img = colour_field(rng, h, w, (112, 112, 108), 10.0, cell=30 * u, grain_amount=7.0)
        step = int(40 * u)
        img[::step] *= 0.85
        img[:, ::step] *= 0.85
    elif kind == "esd_green":
        img = colour_field(rng, h, w, (88, 122, 74), 10.0, cell=30 * u, grain_amount=7.0)
    else:
        img = colour_field(rng, h, w, (150, 148, 144), 10.0, cell=25 * u, grain_amount=6.0, stretch=(8.0, 0.5))
    scratches(rng, img, count=int(60 * u * u * w * h / (640 * 480)), length=(10 * u, 60 * u), shade=-25.0)
    scratches(rng, img, count=int(40 * u * u * w * h / (640 * 480)), length=(6 * u, 30 * u), shade=25.0)
    # Tape marks, labels and stray screws: strong features that never move.
    for _ in range(3):
        cx, cy = rng.uniform(0.05, 0.95) * w, rng.uniform(0.55, 0.95) * h
        tw, th = rng.uniform(40, 120) * u, rng.uniform(6, 12) * u
        box = cv2.boxPoints(((cx, cy), (tw, th), rng.uniform(0, 180)))
        col = [(40, 200, 230), (40, 40, 200), (200, 200, 200)][int(rng.integers(3))]
        cv2.fillPoly(img, [np.round(box * 16).astype(np.int32)], col, cv2.LINE_AA, shift=4)
    for _ in range(4):
        print_text(rng, img, (rng.uniform(0.05, 0.95) * w, rng.uniform(0.15, 0.95) * h), rng.uniform(6, 10) * u,
                   (30, 30, 30) if kind != "steel" else (60, 60, 60), chars=int(rng.integers(4, 9)),
                   angle=rng.uniform(-0.4, 0.4))
    for _ in range(6):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0.15, 1.0) * h))
        cv2.circle(img, c, max(2, int(3 * u)), (150, 150, 150), -1, cv2.LINE_AA)
        cv2.circle(img, c, max(1, int(1.2 * u)), (40, 40, 40), -1, cv2.LINE_AA)
    return img


def _strip(rng, img: np.ndarray, layout: Layout) -> None:
    """Top strip: conveyor frame (the belt itself is a layer) or an aisle floor with a shelf edge."""
    w, s, u = layout.width, layout.strip_h, layout.unit
    if layout.distractor == "conveyor":
        img[:s] = colour_field(rng, s, w, (60, 62, 64), 6.0, cell=10 * u, grain_amount=5.0)
        rail = max(2, int(5 * u))
        img[s - rail:s] = colour_field(rng, rail, w, (140, 140, 150), 8.0, cell=8 * u, grain_amount=6.0,
                                       stretch=(6.0, 1.0))
        for x in np.arange(rng.uniform(0, 60 * u), w, 60 * u):
            cv2.circle(img, (int(x), int(s - rail / 2)), max(1, int(1.5 * u)), (50, 50, 50), -1, cv2.LINE_AA)
    else:
        floor = colour_field(rng, s + int(40 * u), w, (95, 100, 105), 12.0, cell=20 * u, grain_amount=8.0)
        img[:s] = floor[:s]
        stripe = int(8 * u)
        img[s - stripe:s] = (30, 200, 230)
        img[s - stripe:s, ::max(2, int(24 * u))] = (30, 30, 30)


def _bin(rng, img, shadows, layout: Layout) -> None:
    u = layout.unit
    x0, y0, x1, y1 = (int(round(v)) for v in layout.bin_rect)
    col = [(160, 90, 40), (40, 40, 170), (50, 130, 60), (70, 70, 70)][int(rng.integers(4))]
    wall = int(10 * u)
    cv2.rectangle(shadows, (x0 + int(5 * u), y0 + int(6 * u)), (x1 + int(5 * u), y1 + int(8 * u)), 1.0, -1)
    outer = colour_field(rng, y1 - y0, x1 - x0, col, 10.0, cell=12 * u, grain_amount=6.0)
    img[y0:y1, x0:x1] = outer
    floor = colour_field(rng, y1 - y0 - 2 * wall, x1 - x0 - 2 * wall, tuple(c * 0.55 for c in col), 8.0, cell=10 * u,
                         grain_amount=6.0)
    img[y0 + wall:y1 - wall, x0 + wall:x1 - wall] = floor
    img[y0 + wall:y0 + wall + int(6 * u), x0 + wall:x1 - wall] *= 0.7  # inner wall shadow
    print_text(rng, img, ((x0 + x1) / 2, y1 - wall / 2), 7 * u, (235, 235, 235), chars=6)


def _tray(rng, img, shadows, layout: Layout) -> None:
    u = layout.unit
    x0, y0, x1, y1 = (int(round(v)) for v in layout.tray_rect)
    cv2.rectangle(shadows, (x0 + int(4 * u), y0 + int(5 * u)), (x1 + int(4 * u), y1 + int(6 * u)), 0.8, -1)
    base = (58, 58, 62) if rng.random() < 0.5 else (170, 172, 175)
    img[y0:y1, x0:x1] = colour_field(rng, y1 - y0, x1 - x0, base, 8.0, cell=10 * u, grain_amount=6.0)
    rim = max(2, int(6 * u))
    img[y0:y0 + rim, x0:x1] *= 1.25
    img[y1 - rim:y1, x0:x1] *= 0.7
    img[y0:y1, x0:x0 + rim] *= 1.15
    img[y0:y1, x1 - rim:x1] *= 0.8
    half = 0.5 * (PART_SIDE + 8) * u
    for sx, sy in layout.tray_slots:
        cv2.rectangle(img, (int(sx - half), int(sy - half)), (int(sx + half), int(sy + half)),
                      tuple(float(c) * 0.7 for c in base), max(1, int(u)), cv2.LINE_AA)


def _fixture(rng, img, shadows, layout: Layout) -> None:
    u = layout.unit
    fx, fy, fa = layout.fixture
    plate = ((fx, fy), (120 * u, 120 * u), np.degrees(fa))
    box = cv2.boxPoints(plate)
    cv2.fillPoly(shadows, [np.round((box + 6 * u) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    metal = colour_field(rng, img.shape[0], img.shape[1], (165, 165, 160), 10.0, cell=10 * u, grain_amount=7.0,
                         stretch=(5.0, 1.0))
    mask = np.zeros(img.shape[:2], np.float32)
    cv2.fillPoly(mask, [np.round(box * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    img[:] = img * (1 - mask[:, :, None]) + metal * mask[:, :, None]
    seat = cv2.boxPoints(((fx, fy), ((PART_SIDE + 6) * u, (PART_SIDE + 6) * u), np.degrees(fa)))
    cv2.fillPoly(img, [np.round(seat * 16).astype(np.int32)], (80, 80, 78), cv2.LINE_AA, shift=4)
    for corner in box:
        c = corner + (np.array([fx, fy]) - corner) * 0.14
        cv2.circle(img, (int(c[0]), int(c[1])), max(2, int(5 * u)), (100, 100, 100), -1, cv2.LINE_AA)
        cv2.line(img, (int(c[0] - 3 * u), int(c[1])), (int(c[0] + 3 * u), int(c[1])), (40, 40, 40), max(1, int(u)))
    print_text(rng, img, (fx, fy + 50 * u), 6 * u, (50, 50, 50), chars=7, angle=fa)


def _holder(rng, img, shadows, layout: Layout) -> None:
    u = layout.unit
    hx, hy, ha = layout.holder
    length = (TOOL_HANDLE + TOOL_SHAFT) * u
    # The block sits under the tool's middle; the tool's handle centre is (hx, hy).
    mid = np.array([hx, hy]) + np.array([np.cos(ha), np.sin(ha)]) * (length / 2 - TOOL_HANDLE * u / 2)
    block = cv2.boxPoints(((float(mid[0]), float(mid[1])), (length * 0.55, 34 * u), np.degrees(ha)))
    cv2.fillPoly(shadows, [np.round((block + 5 * u) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    col = (50, 50, 55) if rng.random() < 0.5 else (40, 110, 170)
    cv2.fillPoly(img, [np.round(block * 16).astype(np.int32)], col, cv2.LINE_AA, shift=4)
    groove = cv2.boxPoints(((float(mid[0]), float(mid[1])), (length * 0.5, 10 * u), np.degrees(ha)))
    cv2.fillPoly(img, [np.round(groove * 16).astype(np.int32)], tuple(c * 0.5 for c in col), cv2.LINE_AA, shift=4)
