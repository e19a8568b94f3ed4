"""Sprites of the synthetic workstation: forearm, palm, fingers, thumb, part, screwdriver, conveyor
belt and a passer-by, each textured and shaded, drawn once per seed.

Sizes are in pixels for a frame 480 px high times `unit` (= height / 480). Local frames: a hand's
is at the wrist with +x towards the fingertips; a part's at its centre; the screwdriver's at the
middle of its handle with +x towards the tip.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.synthetic.textures import (
    Sprite,
    colour_field,
    cylinder_shading,
    make_sprite,
    print_text,
    scratches,
)


@dataclass(frozen=True)
class HandGeometry:
    """Where the pieces of a hand sit in its local frame (pixels at unit 1; wrist at the origin)."""

    palm_back: float = -10.0     # palm extends from here ...
    palm_front: float = 56.0     # ... to here along +x
    palm_half_width: float = 30.0
    knuckle_x: float = 50.0      # fingers pivot here
    finger_length: float = 50.0
    finger_width: float = 14.0   # each of 4 fingers
    thumb_base: tuple[float, float] = (14.0, 25.0)  # (x, |y|); y sign = the hand's thumb side
    thumb_length: float = 40.0
    thumb_width: float = 17.0
    grip_x: float = 74.0         # where a grasped part's centre sits (beyond closed fingertips)
    tool_grip_x: float = 58.0    # where a grasped tool handle's centre sits
    arm_overlap: float = 10.0    # the forearm sprite reaches this far under the palm
    wrist_half_width: float = 25.0
    elbow_half_width: float = 36.0


HAND = HandGeometry()

#: part: square flange, side in px at unit 1; bolt holes at +-HOLE from the centre
PART_SIDE = 48.0
PART_HOLE = 15.0
#: screwdriver: handle length, shaft length (px at unit 1); tip = +TOOL_TIP_X from the handle centre
TOOL_HANDLE = 62.0
TOOL_SHAFT = 58.0
TOOL_TIP_X = TOOL_HANDLE / 2 + TOOL_SHAFT

SKIN_TONES = [(150, 180, 228), (120, 150, 200), (92, 120, 168), (62, 82, 122)]
GLOVES = [(200, 122, 40), (48, 48, 52), (212, 214, 210), (40, 120, 215), (70, 150, 80)]
SLEEVES = [(92, 52, 30), (115, 115, 118), (52, 78, 46), (40, 40, 44), (60, 70, 140), (150, 120, 70)]


@dataclass(frozen=True)
class HandLook:
    """Colours of one worker's hands (both hands look alike)."""

    skin: tuple[int, int, int]
    gloved: bool
    sleeve: tuple[int, int, int]


def choose_hand_look(rng: np.random.Generator) -> HandLook:
    gloved = bool(rng.random() < 0.5)
    skin = GLOVES[rng.integers(len(GLOVES))] if gloved else SKIN_TONES[rng.integers(len(SKIN_TONES))]
    sleeve = SLEEVES[rng.integers(len(SLEEVES))]
    return HandLook(skin=tuple(int(c) for c in skin), gloved=gloved, sleeve=tuple(int(c) for c in sleeve))


def _skin_texture(rng, h, w, look: HandLook, unit: float) -> np.ndarray:
    contrast = 10.0 if look.gloved else 14.0
    img = colour_field(rng, h, w, look.skin, contrast, cell=14 * unit, grain_amount=7.0, tint=0.3)
    # Creases/wrinkles: the strong features a tracker locks onto.
    scratches(rng, img, count=int(h * w / (260 * unit * unit)) + 2, length=(4 * unit, 12 * unit), shade=-38.0)
    scratches(rng, img, count=int(h * w / (700 * unit * unit)) + 1, length=(3 * unit, 8 * unit), shade=22.0)
    return img


def make_arm(rng: np.random.Generator, unit: float, length: float, look: HandLook) -> Sprite:
    """Forearm and sleeve, `length` px from the wrist (local origin) back along -x, tapering wider."""
    g = HAND
    over = g.arm_overlap * unit
    half_far = g.elbow_half_width * unit
    pad = 3
    w = int(np.ceil(length + over)) + 2 * pad
    h = int(np.ceil(2 * half_far)) + 2 * pad
    cy = h / 2.0
    x_wrist = w - pad - over  # sprite x of the wrist
    # Silhouette: a tapered band, rounded at the wrist end.
    alpha = np.zeros((h, w), np.uint8)
    poly = np.array([
        (pad, cy - half_far), (x_wrist, cy - g.wrist_half_width * unit),
        (x_wrist, cy + g.wrist_half_width * unit), (pad, cy + half_far),
    ])
    cv2.fillPoly(alpha, [np.round(poly * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    cv2.ellipse(alpha, (int(round(x_wrist)), int(round(cy))),
                (int(round(over + 2)), int(round(g.wrist_half_width * unit))), 0, 0, 360, 255, -1, cv2.LINE_AA)
    skin = _skin_texture(rng, h, w, look, unit)
    cuff_x = x_wrist - rng.uniform(0.42, 0.6) * 240 * unit  # sleeve starts this far back from the wrist
    sleeve = colour_field(rng, h, w, look.sleeve, 12.0, cell=10 * unit, grain_amount=6.0, stretch=(2.5, 1.0))
    # Woven fabric: fine diagonal ribs.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    sleeve += 7.0 * np.sin((xx + yy) * (2 * np.pi / (4.0 * unit)))[:, :, None]
    scratches(rng, sleeve, count=int(w / (12 * unit)), length=(8 * unit, 30 * unit), shade=-30.0, thickness=1)
    img = np.where((xx < cuff_x)[:, :, None], sleeve, skin)
    # Cuff band: a darker hem with stitching.
    band = (xx >= cuff_x - 7 * unit) & (xx < cuff_x)
    img[band] *= 0.72
    img *= cylinder_shading(h, w, axis=0)[:, :, None]
    return make_sprite(img, alpha, pivot=(x_wrist, cy))


def make_palm(rng: np.random.Generator, unit: float, look: HandLook) -> Sprite:
    """Back of the hand seen from above: a rounded shape from palm_back to palm_front."""
    g = HAND
    pad = 3
    x0, x1 = g.palm_back * unit, g.palm_front * unit
    hw = g.palm_half_width * unit
    w = int(np.ceil(x1 - x0)) + 2 * pad
    h = int(np.ceil(2 * hw)) + 2 * pad
    px, py = pad - x0, h / 2.0
    alpha = np.zeros((h, w), np.uint8)
    cx = int(round(px + 0.5 * (x0 + x1)))
    cv2.ellipse(alpha, (cx, int(round(py))), (int(round(0.5 * (x1 - x0))), int(round(hw))), 0, 0, 360, 255, -1,
                cv2.LINE_AA)
    # Squarer towards the knuckles.
    cv2.rectangle(alpha, (int(round(px + 0.25 * x1)), int(round(py - hw + 3 * unit))),
                  (int(round(px + x1 - 2)), int(round(py + hw - 3 * unit))), 255, -1)
    img = _skin_texture(rng, h, w, look, unit)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Knuckle ridge: four bumps along the front edge.
    for k in range(4):
        ky = py + (k - 1.5) * g.finger_width * unit
        kx = px + g.knuckle_x * unit - 4 * unit
        bump = np.exp(-(((xx - kx) / (5 * unit)) ** 2 + ((yy - ky) / (5 * unit)) ** 2))
        img += 30.0 * bump[:, :, None]
    # Tendons fanning from the wrist to the knuckles.
    for k in range(4):
        ky = py + (k - 1.5) * g.finger_width * unit
        pts = np.array([(px + 2 * unit, py + (k - 1.5) * 4 * unit), (px + g.knuckle_x * unit - 8 * unit, ky)])
        layer = np.zeros((h, w), np.float32)
        cv2.polylines(layer, [np.round(pts * 16).astype(np.int32)], False, 1.0, max(1, int(2 * unit)), cv2.LINE_AA,
                      shift=4)
        img += 12.0 * cv2.GaussianBlur(layer, (0, 0), 1.2 * unit)[:, :, None]
    shade = cylinder_shading(h, w, axis=0, ambient=0.75)
    img *= shade[:, :, None]
    return make_sprite(img, alpha, pivot=(px, py))


def make_fingers(rng: np.random.Generator, unit: float, look: HandLook, thumb_side: int) -> Sprite:
    """Four fingers side by side from the knuckle line (local x = 0) to the tips along +x; the
    index finger on the thumb's side (`thumb_side` = sign of local y)."""
    g = HAND
    pad = 3
    fw = g.finger_width * unit
    length = g.finger_length * unit
    w = int(np.ceil(length)) + 2 * pad
    h = int(np.ceil(4 * fw)) + 2 * pad
    px, py = float(pad), h / 2.0
    alpha = np.zeros((h, w), np.uint8)
    img = _skin_texture(rng, h, w, look, unit)
    shade = np.ones((h, w), np.float32)
    lengths = [0.78, 0.96, 1.0, 0.9]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for k in range(4):
        cy = py + (k - 1.5) * fw
        fl = length * lengths[k]
        r = 0.46 * fw
        one = np.zeros((h, w), np.uint8)
        cv2.rectangle(one, (int(round(px)), int(round(cy - r))), (int(round(px + fl - r)), int(round(cy + r))), 255, -1)
        cv2.circle(one, (int(round(px + fl - r)), int(round(cy))), int(round(r)), 255, -1, cv2.LINE_AA)
        alpha = np.maximum(alpha, one)
        across = np.clip(1.0 - ((yy - cy) / (r + 0.5)) ** 2, 0, 1)
        inside = one > 0
        shade[inside] = (0.6 + 0.4 * np.sqrt(across))[inside]
        # Joint creases at one and two thirds, a nail (skin) or fingertip seam (glove).
        for frac in (0.36, 0.68):
            jx = px + fl * frac
            cv2.line(img, (int(round(jx)), int(round(cy - r * 0.7))), (int(round(jx + 1.5 * unit)),
                     int(round(cy + r * 0.7))), tuple(float(c) * 0.55 for c in look.skin), max(1, int(unit)),
                     cv2.LINE_AA)
        nail_c = (int(round(px + fl - 0.55 * r - 2 * unit)), int(round(cy)))
        nail_col = (175, 190, 225) if not look.gloved else tuple(float(c) * 0.8 for c in look.skin)
        cv2.ellipse(img, nail_c, (int(round(0.45 * r + unit)), int(round(0.55 * r))), 0, 0, 360, nail_col, -1,
                    cv2.LINE_AA)
    # Separate neighbouring fingers with a dark gap line.
    for k in range(3):
        gy = py + (k - 1.0) * fw
        img[int(round(gy)) - 1:int(round(gy)) + 1, :, :] *= 0.55
    img *= shade[:, :, None]
    if thumb_side < 0:  # drawn with the index finger at +y; mirror for a thumb at -y
        img, alpha = img[::-1].copy(), alpha[::-1].copy()
        py = h - py
    return make_sprite(img, alpha, pivot=(px, py))


def make_thumb(rng: np.random.Generator, unit: float, look: HandLook) -> Sprite:
    """A thumb from its base (local origin) along +x."""
    g = HAND
    pad = 3
    length, width = g.thumb_length * unit, g.thumb_width * unit
    w = int(np.ceil(length)) + 2 * pad
    h = int(np.ceil(width)) + 2 * pad
    px, py = float(pad), h / 2.0
    r = width / 2.0
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (int(round(px + 0.35 * length)), int(round(py))), (int(round(0.38 * length)), int(round(r))),
                0, 0, 360, 255, -1, cv2.LINE_AA)
    cv2.circle(alpha, (int(round(px + length - r)), int(round(py))), int(round(r * 0.92)), 255, -1, cv2.LINE_AA)
    cv2.rectangle(alpha, (int(round(px + 0.35 * length)), int(round(py - r * 0.9))),
                  (int(round(px + length - r)), int(round(py + r * 0.9))), 255, -1)
    img = _skin_texture(rng, h, w, look, unit)
    cv2.line(img, (int(round(px + 0.55 * length)), int(round(py - r * 0.6))),
             (int(round(px + 0.55 * length + unit)), int(round(py + r * 0.6))), tuple(float(c) * 0.55 for c in look.skin),
             max(1, int(unit)), cv2.LINE_AA)
    nail_col = (175, 190, 225) if not look.gloved else tuple(float(c) * 0.8 for c in look.skin)
    cv2.ellipse(img, (int(round(px + length - r - 1.5 * unit)), int(round(py))),
                (int(round(0.5 * r + unit)), int(round(0.55 * r))), 0, 0, 360, nail_col, -1, cv2.LINE_AA)
    img *= cylinder_shading(h, w, axis=0, ambient=0.6)[:, :, None]
    return make_sprite(img, alpha, pivot=(px, py))


PART_COLOURS = [(175, 175, 170), (70, 150, 200), (160, 90, 40), (60, 60, 180), (110, 140, 110)]


def make_part(rng: np.random.Generator, unit: float) -> Sprite:
    """A square flange with a central boss, four bolt holes, a serial number and a colour dot."""
    side = PART_SIDE * unit
    pad = 3
    n = int(np.ceil(side)) + 2 * pad
    c = n / 2.0
    base = PART_COLOURS[rng.integers(len(PART_COLOURS))]
    img = colour_field(rng, n, n, base, 9.0, cell=8 * unit, grain_amount=6.0, stretch=(3.0, 1.0))
    scratches(rng, img, count=8, length=(4 * unit, 14 * unit), shade=30.0)
    alpha = np.zeros((n, n), np.uint8)
    r = 6 * unit
    cv2.rectangle(alpha, (int(round(c - side / 2 + r)), int(round(c - side / 2))),
                  (int(round(c + side / 2 - r)), int(round(c + side / 2))), 255, -1)
    cv2.rectangle(alpha, (int(round(c - side / 2)), int(round(c - side / 2 + r))),
                  (int(round(c + side / 2)), int(round(c + side / 2 - r))), 255, -1)
    for sx in (-1, 1):
        for sy in (-1, 1):
            cv2.circle(alpha, (int(round(c + sx * (side / 2 - r))), int(round(c + sy * (side / 2 - r)))),
                       int(round(r)), 255, -1, cv2.LINE_AA)
    # Bevel: lighter top-left edge, darker bottom-right edge.
    inner = cv2.erode(alpha, np.ones((3, 3), np.uint8), iterations=max(1, int(2 * unit)))
    rim = (alpha > 127) & (inner <= 127)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    light = ((xx - c) + (yy - c)) < 0
    img[rim & light] += 40.0
    img[rim & ~light] -= 45.0
    # Central boss and bolt holes.
    cv2.circle(img, (int(round(c)), int(round(c))), int(round(12 * unit)), tuple(float(v) * 1.2 for v in base), -1,
               cv2.LINE_AA)
    cv2.circle(img, (int(round(c)), int(round(c))), int(round(12 * unit)), tuple(float(v) * 0.55 for v in base),
               max(1, int(unit)), cv2.LINE_AA)
    cv2.circle(img, (int(round(c)), int(round(c))), int(round(5 * unit)), (25, 25, 25), -1, cv2.LINE_AA)
    for sx in (-1, 1):
        for sy in (-1, 1):
            cv2.circle(img, (int(round(c + sx * PART_HOLE * unit)), int(round(c + sy * PART_HOLE * unit))),
                       int(round(3.5 * unit)), (30, 30, 30), -1, cv2.LINE_AA)
    print_text(rng, img, (c, c + 19 * unit), 5.5 * unit, (20, 20, 20), chars=5)
    cv2.circle(img, (int(round(c + 15 * unit)), int(round(c))), int(round(2.5 * unit)), (40, 200, 230), -1,
               cv2.LINE_AA)
    img *= (1.08 - 0.16 * ((xx + yy) / (2 * n)))[:, :, None]
    return make_sprite(img, alpha, pivot=(c, c))


TOOL_HANDLE_COLOURS = [(40, 40, 200), (30, 200, 230), (200, 90, 30), (40, 150, 40)]


def make_tool(rng: np.random.Generator, unit: float) -> Sprite:
    """A screwdriver lying along +x: handle (grip ridges, label) then a metal shaft to the tip."""
    hl, sl = TOOL_HANDLE * unit, TOOL_SHAFT * unit
    hw, sw = 11 * unit, 3.2 * unit
    pad = 3
    w = int(np.ceil(hl + sl)) + 2 * pad
    h = int(np.ceil(2 * hw)) + 2 * pad
    cy = h / 2.0
    x0 = float(pad)
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (int(round(x0 + hl / 2)), int(round(cy))), (int(round(hl / 2)), int(round(hw))), 0, 0, 360, 255,
                -1, cv2.LINE_AA)
    cv2.rectangle(alpha, (int(round(x0 + hl * 0.2)), int(round(cy - hw * 0.92))),
                  (int(round(x0 + hl * 0.85)), int(round(cy + hw * 0.92))), 255, -1)
    cv2.rectangle(alpha, (int(round(x0 + hl - 2)), int(round(cy - sw))), (int(round(x0 + hl + sl - 2 * unit)),
                  int(round(cy + sw))), 255, -1)
    tip = np.array([(x0 + hl + sl - 2 * unit, cy - sw), (x0 + hl + sl, cy - 1), (x0 + hl + sl, cy + 1),
                    (x0 + hl + sl - 2 * unit, cy + sw)])
    cv2.fillPoly(alpha, [np.round(tip * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
    handle_col = TOOL_HANDLE_COLOURS[rng.integers(len(TOOL_HANDLE_COLOURS))]
    img = colour_field(rng, h, w, handle_col, 10.0, cell=6 * unit, grain_amount=6.0)
    metal = colour_field(rng, h, w, (178, 176, 172), 12.0, cell=6 * unit, grain_amount=8.0, stretch=(4.0, 1.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shaft = xx >= x0 + hl - 2
    img[shaft] = metal[shaft]
    # Grip ridges along the handle and a black band.
    ridges = (xx < x0 + hl * 0.8) & (np.sin(yy * 2 * np.pi / (3.2 * unit)) > 0.6)
    img[ridges] *= 0.7
    band = (xx > x0 + hl * 0.8) & (xx < x0 + hl * 0.9)
    img[band] = 35.0
    print_text(rng, img, (x0 + hl * 0.45, cy), 5.0 * unit, (235, 235, 235), chars=4)
    img *= cylinder_shading(h, w, axis=0, ambient=0.55)[:, :, None]
    # Local origin at the handle centre (where the hand grips it).
    return make_sprite(img, alpha, pivot=(x0 + hl / 2, cy))


def make_belt(rng: np.random.Generator, unit: float, width: int, strip_h: int, period: int) -> Sprite:
    """A conveyor belt strip `width + period` px long, periodic in x with `period`, with boxes on it.

    The belt is drawn periodic so it can scroll without end: the renderer shifts it by the belt
    offset modulo `period`, which is pixel-identical to shifting by the full offset.
    """
    tile_w, h = period, strip_h
    seam = int(12 * unit) + 2
    # Draw a little wider than the period and cross-fade the overhang into the start, so the
    # tile joins itself without a visible seam.
    wide = colour_field(rng, h, tile_w + seam, (48, 50, 52), 7.0, cell=6 * unit, grain_amount=6.0)
    ramp = np.linspace(0, 1, seam, dtype=np.float32)[None, :, None]
    rubber = wide[:, :tile_w].copy()
    rubber[:, :seam] = wide[:, :seam] * ramp + wide[:, tile_w:] * (1 - ramp)
    xx = np.arange(tile_w, dtype=np.float32)
    n_ribs = max(1, round(period / (9 * unit)))
    rubber += 14.0 * (0.5 + 0.5 * np.cos(xx * 2 * np.pi * n_ribs / period))[None, :, None]
    tile = rubber.copy()
    x = rng.uniform(0, 30 * unit)
    while x < tile_w - 40 * unit:
        bw = rng.uniform(34, 70) * unit
        bh = rng.uniform(0.55, 0.8) * h
        if x + bw > tile_w - 8 * unit:
            break
        y = rng.uniform(0.08 * h, h - bh - 0.08 * h)
        box = colour_field(rng, int(bh), int(bw), (70, 125, 165), 10.0, cell=8 * unit, grain_amount=6.0)
        box[:, :, :] *= np.linspace(1.1, 0.85, int(bw), dtype=np.float32)[None, :, None]
        tape_y = int(bh / 2)
        box[max(0, tape_y - int(3 * unit)):tape_y + int(3 * unit)] = (150, 170, 180)
        print_text(rng, box, (bw * 0.35, bh * 0.25), 5 * unit, (30, 30, 30), chars=4)
        tile[int(y):int(y) + int(bh), int(x):int(x) + int(bw)] = box
        x += bw + rng.uniform(25, 90) * unit
    n_tiles = int(np.ceil((width + period) / period)) + 1
    img = np.concatenate([tile] * n_tiles, axis=1)[:, :width + period]
    # Rails shade the belt edges.
    yy = np.linspace(-1, 1, h, dtype=np.float32)
    img *= (1.0 - 0.25 * yy ** 8)[:, None, None]
    alpha = np.full(img.shape[:2], 255, np.uint8)
    return make_sprite(img, alpha, pivot=(0.0, 0.0))


def make_person(rng: np.random.Generator, unit: float) -> Sprite:
    """A passer-by seen from above: shoulders (shirt) and head (hair). Local origin at the head."""
    sw, sh = 230 * unit, 95 * unit
    pad = 3
    w, h = int(np.ceil(sw)) + 2 * pad, int(np.ceil(sh)) + 2 * pad
    cx, cy = w / 2.0, h / 2.0
    shirt_col = SLEEVES[rng.integers(len(SLEEVES))]
    img = colour_field(rng, h, w, shirt_col, 14.0, cell=14 * unit, grain_amount=6.0)
    scratches(rng, img, count=30, length=(10 * unit, 40 * unit), shade=-30.0, thickness=max(1, int(unit)))
    alpha = np.zeros((h, w), np.uint8)
    cv2.ellipse(alpha, (int(round(cx)), int(round(cy))), (int(round(sw / 2)), int(round(sh * 0.42))), 0, 0, 360, 255,
                -1, cv2.LINE_AA)
    hair_col = [(30, 30, 35), (40, 60, 90), (120, 150, 180), (90, 90, 95)][rng.integers(4)]
    hair = colour_field(rng, h, w, hair_col, 16.0, cell=4 * unit, grain_amount=10.0, stretch=(1.0, 3.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    head = ((xx - cx) / (38 * unit)) ** 2 + ((yy - cy) / (44 * unit)) ** 2 <= 1.0
    img[head] = hair[head]
    img *= (1.0 - 0.35 * np.clip(((xx - cx) / (sw / 2)) ** 2 + ((yy - cy) / (sh / 2)) ** 2, 0, 1))[:, :, None]
    return make_sprite(img, alpha, pivot=(cx, cy))
