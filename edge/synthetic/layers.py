"""The scene as a stack of layers, each a sprite with one transform per frame.

`LayerStack.state(frames)` is the one source of truth for where every layer is: the renderer
draws from it and the exact trajectories are computed from it. Per frame and layer it gives the
sprite -> image matrix (before camera shake), whether the layer exists, its depth (higher is
drawn later, on top) and its motion-blur group.

Depth tiers: belt 0.5 < objects lying still 1 < held objects 2 < left arm/hand 3 < right 4 <
passer-by 9. Objects within a tier are ordered by creation, so a part put on the tray lies on
the ones put there before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.synthetic import affine
from edge.synthetic.distractor import DistractorMotion
from edge.synthetic.scene import Layout
from edge.synthetic.script import LEFT, Script
from edge.synthetic.sprites import HAND
from edge.synthetic.textures import Sprite


@dataclass(frozen=True)
class Layer:
    """One drawable layer. `period` > 0: the sprite repeats along x with that period (the belt)."""

    name: str
    sprite: Sprite
    group: str
    period: float = 0.0


@dataclass(frozen=True)
class LayerState:
    """State of every layer at T frames.

    mats: (T, L, 3, 3) sprite px -> image px (before shake); alive: (T, L) bool; z: (T, L) float
    (draw order, higher on top); group: (T, L) int index into `LayerStack.groups` (motion-blur
    groups: a held object blurs with its hand).
    """

    frames: np.ndarray
    mats: np.ndarray
    alive: np.ndarray
    z: np.ndarray
    group: np.ndarray


class LayerStack:
    """All layers of one recording and their per-frame state."""

    def __init__(self, layout: Layout, script: Script, distractor: DistractorMotion, sprites: dict) -> None:
        self.layout = layout
        self.script = script
        self.distractor = distractor
        u = layout.unit
        self.layers: list[Layer] = []
        self._eval = []
        self.groups: list[str] = ["static"]
        for h in script.active_hands:
            self.groups += [f"arm{h}", f"hand{h}"]
        self.groups += ["belt", "person"]
        gid = {g: k for k, g in enumerate(self.groups)}
        self._gid = gid

        if layout.distractor == "conveyor":
            belt: Sprite = sprites["belt"]
            period = float(sprites["belt_period"])
            y_top = float(sprites["belt_y"])
            offset = distractor.belt_offset

            def belt_state(frames):
                n = len(frames)
                m = affine.similarity(offset[frames] - period, np.full(n, y_top), 0.0, 1.0)
                return m, np.ones(n, bool), np.full(n, 0.5), np.full(n, gid["belt"])

            self._add(Layer("belt", belt, "belt", period), belt_state)

        part_sprite: Sprite = sprites["part"]
        tool_sprite: Sprite = sprites["tool"]
        for k, obj in enumerate(script.objects):
            sprite = tool_sprite if obj.kind == "tool" else part_sprite
            self._add(Layer(obj.name, sprite, "object"), self._object_state(k, obj, sprite))

        for h in script.active_hands:
            side = script.hands[h].thumb_side
            tier = 3.0 if h == LEFT else 4.0
            hand = script.hands[h]
            arm, palm = sprites[f"arm{h}"], sprites[f"palm{h}"]
            fingers, thumb = sprites[f"fingers{h}"], sprites[f"thumb{h}"]
            self._add(Layer(f"arm{h}", arm, f"arm{h}"), self._hand_part(hand, arm, "arm", tier, gid[f"arm{h}"], side, u))
            self._add(Layer(f"palm{h}", palm, f"hand{h}"),
                      self._hand_part(hand, palm, "palm", tier + 0.1, gid[f"hand{h}"], side, u))
            self._add(Layer(f"fingers{h}", fingers, f"hand{h}"),
                      self._hand_part(hand, fingers, "fingers", tier + 0.2, gid[f"hand{h}"], side, u))
            self._add(Layer(f"thumb{h}", thumb, f"hand{h}"),
                      self._hand_part(hand, thumb, "thumb", tier + 0.3, gid[f"hand{h}"], side, u))

        if layout.distractor == "passerby":
            person: Sprite = sprites["person"]
            d = distractor

            def person_state(frames):
                n = len(frames)
                m = affine.similarity(d.person_xy[frames, 0], d.person_xy[frames, 1], d.person_angle[frames], 1.0)
                return (m @ person.local_from_sprite, d.person_alive[frames].copy(), np.full(n, 9.0),
                        np.full(n, gid["person"]))

            self._add(Layer("person", person, "person"), person_state)

    def _add(self, layer: Layer, fn) -> None:
        self.layers.append(layer)
        self._eval.append(fn)

    def _object_state(self, k: int, obj, sprite: Sprite):
        hands = self.script.hands
        gid = self._gid
        local = sprite.local_from_sprite

        def state(frames):
            mats, attached = obj.matrices(frames, hands)
            held_by = np.asarray(obj.hands)[np.clip(np.searchsorted(np.asarray(obj.starts), frames, side="right") - 1,
                                                    0, None)]
            z = np.where(attached, 2.0, 1.0) + k * 1e-4
            group = np.zeros(len(frames), np.int64)
            for h in np.unique(held_by[attached]):
                group[attached & (held_by == h)] = gid.get(f"hand{int(h)}", 0)
            return mats @ local, frames >= obj.appear, z, group

        return state

    @staticmethod
    def _hand_part(hand, sprite: Sprite, part: str, z: float, group: int, side: int, u: float):
        local = sprite.local_from_sprite
        g = HAND

        def state(frames):
            n = len(frames)
            if part == "arm":
                m = affine.similarity(hand.x[frames], hand.y[frames], hand.arm_angle(frames), hand.scale[frames])
            else:
                m = hand.matrices(frames)
                grip = hand.grip[frames]
                if part == "fingers":
                    # Curling fingers seen from above get shorter.
                    m = m @ affine.similarity(g.knuckle_x * u, 0.0, 0.0, 1.0 - 0.45 * grip, 1.0 - 0.04 * grip)
                elif part == "thumb":
                    m = m @ affine.similarity(g.thumb_base[0] * u, side * g.thumb_base[1] * u,
                                              side * (0.95 - 0.7 * grip), 1.0 - 0.12 * grip, 1.0)
            return m @ local, np.ones(n, bool), np.full(n, z), np.full(n, group)

        return state

    def state(self, frames: np.ndarray) -> LayerState:
        """State of all layers at `frames` (1-D int array of frame indices)."""
        frames = np.asarray(frames, np.int64)
        n, n_layers = len(frames), len(self.layers)
        mats = np.empty((n, n_layers, 3, 3))
        alive = np.empty((n, n_layers), bool)
        z = np.empty((n, n_layers))
        group = np.empty((n, n_layers), np.int64)
        for k, fn in enumerate(self._eval):
            mats[:, k], alive[:, k], z[:, k], group[:, k] = fn(frames)
        return LayerState(frames=frames, mats=mats, alive=alive, z=z, group=group)

    def render_matrix(self, k: int, m: np.ndarray) -> np.ndarray:
        """The 2x3 matrix to draw layer k with: for a periodic sprite, shifted by whole periods
        (pixel-identical) so the sprite always covers the frame."""
        layer = self.layers[k]
        if layer.period > 0:
            m = m.copy()
            m[0, 2] = np.mod(m[0, 2] + layer.period, layer.period) - layer.period
        return m[:2]
