"""Motion of the distractor in the top strip: a stop-and-go conveyor belt or people walking past.

Both move independently of the worker (during rests too), so a segmenter that looks at the whole
frame sees motion that is not an action primitive. Switched off, the belt stands still and
nobody passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.synthetic.scene import Layout


@dataclass(frozen=True)
class DistractorMotion:
    """Per-frame distractor state.

    belt_offset: (n,) px the belt has advanced (conveyor), monotone, float64.
    person_xy: (n, 2) head position px; person_angle: (n,) rad; person_alive: (n,) bool.
    """

    kind: str
    belt_offset: np.ndarray
    person_xy: np.ndarray
    person_angle: np.ndarray
    person_alive: np.ndarray


def plan_distractor(rng: np.random.Generator, layout: Layout, n_frames: int, fps: float,
                    enabled: bool) -> DistractorMotion:
    """Draw the distractor's motion for every frame (drawn even when disabled, then zeroed)."""
    w, u = layout.width, layout.unit
    t = np.arange(n_frames) / fps
    t_end = float(t[-1]) if n_frames else 0.0
    # Conveyor: runs 3-10 s, stops 1-5 s, with 0.4 s ramps.
    speed = np.zeros(n_frames)
    v = rng.uniform(0.08, 0.2) * w
    clock = rng.uniform(-3.0, 0.0)
    while clock < t_end + 1.0:
        run = rng.uniform(3.0, 10.0)
        stop = rng.uniform(1.0, 5.0)
        ramp_up = np.clip((t - clock) / 0.4, 0, 1) * np.clip((clock + run - t) / 0.4, 0, 1)
        speed = np.maximum(speed, v * ramp_up * ((t >= clock) & (t <= clock + run)))
        clock += run + stop
    offset = np.cumsum(speed) / fps
    # Passers-by: one every 6-20 s, crossing the strip left->right or right->left.
    xy = np.full((n_frames, 2), -1e4)
    angle = np.zeros(n_frames)
    alive = np.zeros(n_frames, bool)
    clock = rng.uniform(1.0, 8.0)
    margin = 140 * u
    while clock < t_end:
        direction = 1.0 if rng.random() < 0.5 else -1.0
        pace = rng.uniform(0.25, 0.45) * w
        y0 = rng.uniform(12, 32) * u
        span = w + 2 * margin
        dur = span / pace
        sel = (t >= clock) & (t < clock + dur)
        s = (t[sel] - clock) * pace
        x = -margin + s if direction > 0 else w + margin - s
        step = 2 * np.pi * rng.uniform(1.6, 2.0) * (t[sel] - clock)
        xy[sel, 0] = x
        xy[sel, 1] = y0 + 4 * u * np.sin(step)
        angle[sel] = 0.06 * np.sin(step + 0.5) + (0.0 if direction > 0 else np.pi)
        alive |= sel
        clock += dur + rng.uniform(6.0, 20.0)
    if not enabled:
        offset = np.zeros(n_frames)
        alive = np.zeros(n_frames, bool)
    if layout.distractor != "passerby":
        alive = np.zeros(n_frames, bool)
    if layout.distractor != "conveyor":
        offset = np.zeros(n_frames)
    return DistractorMotion(kind=layout.distractor, belt_offset=offset, person_xy=xy, person_angle=angle,
                            person_alive=alive)
