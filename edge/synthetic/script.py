"""The primitive vocabulary and the composition of assembly cycles into a per-frame motion script.

A cycle (one part assembled) is a sequence of primitives, each done by one hand while the other
holds still:

    reach (empty hand moves fast to the part bin) -> grasp (fingers close, little arm motion)
    -> [inspect] -> transport (the part rides with the hand to the fixture) -> insert (slow
    short push down, release) -> [reach back home, when the left hand fetched] -> reach the
    screwdriver -> grasp -> transport (tool tip over a bolt hole) -> screw (wrist oscillates
    about the bolt; 1-3 bolts, with a transport between) -> put_aside (tool back to its holder,
    release) -> reach the fixture -> grasp -> [inspect: lift and turn slowly] -> put_aside
    (to a tray slot, release)

Variation per cycle: which hand fetches the part, where inspections happen (before insertion,
after screwing, both or none), how many bolts, which bin and tray slot, curved paths, speeds (a
per-cycle pace times per-primitive jitter) and wrist angles. Between consecutive primitives there
is a rest (no motion at all) with probability `rest_fraction` (0.5-4 s, log-uniform), else a
direct transition: the motion continues at non-zero speed and changes character. Two consecutive
primitives with the same label are always separated by a rest, so every ground-truth boundary is
visible in the labels.

"reach" is used in its MTM sense: any move of the empty hand, including back to a rest position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.synthetic import affine
from edge.synthetic.scene import Layout
from edge.synthetic.sprites import HAND, PART_HOLE, TOOL_TIP_X

#: The primitive vocabulary; ground-truth label k (1..K) is PRIMITIVES[k-1], label 0 is "rest".
PRIMITIVES: tuple[str, ...] = ("reach", "grasp", "transport", "insert", "screw", "inspect", "put_aside")
LABEL_NAMES: tuple[str, ...] = ("rest",) + PRIMITIVES
LABEL_OF = {name: k for k, name in enumerate(LABEL_NAMES)}

#: What each primitive looks like (for docs and the ground-truth file).
PRIMITIVE_MOTION = {
    "reach": "fast empty-hand arm translation (to the part bin, the tool, the fixture, or home)",
    "grasp": "fingers and thumb close over an object; little arm motion",
    "transport": "arm carries the held object along a curved path; the object moves with the hand",
    "insert": "slow short push down (the hand and part shrink slightly), small wiggle, release",
    "screw": "repetitive wrist rotation of hand and screwdriver about a bolt hole",
    "inspect": "part lifted towards the camera and turned slowly",
    "put_aside": "move the held object to a tray slot or the tool holder and release",
}

LEFT, RIGHT = 0, 1
STATIC, ATTACHED = 0, 1
#: rest lengths (s) and primitive durations (s), after the per-cycle pace
REST_RANGE = (0.5, 4.0)
PRIMITIVE_RANGE = (0.6, 4.0)
#: progress slope at a direct transition (1 = the primitive's mean speed): the hand slows but
#: never stops, as in a fluent sequence of movements
DIRECT_SLOPE = 0.5


@dataclass
class HandTrack:
    """Per-frame pose of one hand: wrist (x, y) px, orientation theta (rad), scale, grip 0..1."""

    name: str
    shoulder: tuple[float, float]
    thumb_side: int
    x: np.ndarray
    y: np.ndarray
    theta: np.ndarray
    scale: np.ndarray
    grip: np.ndarray

    def matrices(self, frames: np.ndarray) -> np.ndarray:
        """Hand-local -> image matrices at `frames`, (T, 3, 3)."""
        return affine.similarity(self.x[frames], self.y[frames], self.theta[frames], self.scale[frames])

    def arm_angle(self, frames: np.ndarray) -> np.ndarray:
        """Direction (rad) from the shoulder to the wrist: the forearm's axis."""
        return np.arctan2(self.y[frames] - self.shoulder[1], self.x[frames] - self.shoulder[0])


@dataclass
class ObjectTrack:
    """Where an object (part or tool) is: intervals that are either static or attached to a hand.

    Interval k covers frames [starts[k], starts[k+1]); mode STATIC uses mats[k] (object-local ->
    image) as is; mode ATTACHED uses hand_matrix @ mats[k] (mats[k]: object-local -> hand-local).
    The object exists (is drawn) from frame `appear` on.
    """

    name: str
    kind: str
    appear: int
    starts: list[int] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    hands: list[int] = field(default_factory=list)
    mats: list[np.ndarray] = field(default_factory=list)

    def add(self, start: int, mode: int, hand: int, mat: np.ndarray) -> None:
        if self.starts and start <= self.starts[-1]:
            # A new interval at the same frame replaces the last one.
            while self.starts and start <= self.starts[-1]:
                for lst in (self.starts, self.modes, self.hands, self.mats):
                    lst.pop()
        self.starts.append(int(start))
        self.modes.append(mode)
        self.hands.append(hand)
        self.mats.append(np.array(mat, np.float64))

    def matrices(self, frames: np.ndarray, hands: list[HandTrack]) -> tuple[np.ndarray, np.ndarray]:
        """(object-local -> image matrices (T, 3, 3), attached (T,) bool) at `frames`."""
        k = np.clip(np.searchsorted(np.asarray(self.starts), frames, side="right") - 1, 0, None)
        mats = np.stack(self.mats)[k]
        modes = np.asarray(self.modes)[k]
        attached = modes == ATTACHED
        if attached.any():
            hand_ids = np.asarray(self.hands)[k]
            for h in np.unique(hand_ids[attached]):
                sel = attached & (hand_ids == h)
                mats[sel] = hands[int(h)].matrices(frames[sel]) @ mats[sel]
        return mats, attached


@dataclass
class Script:
    """The planned motion of one recording: hand poses, objects, labels and segments per frame."""

    n_frames: int
    fps: float
    hands: list[HandTrack]             # [left, right]; the left one idles off-stage with one hand
    active_hands: list[int]            # which hands appear in the scene
    objects: list[ObjectTrack]
    labels: np.ndarray                 # (n_frames,) int, 0 = rest
    segments: list[tuple[int, int, int, int]]  # (start_frame, end_frame exclusive, label, hand)
    n_cycles: int


def compose_script(rng: np.random.Generator, layout: Layout, n_frames: int, fps: float, hands: int,
                   rest_fraction: float) -> Script:
    """Plan assembly cycles until `n_frames` frames are filled; deterministic for a given `rng`."""
    builder = _ScriptBuilder(rng, layout, n_frames, fps, hands, rest_fraction)
    return builder.build()


# --------------------------------------------------------------------------------------------
# implementation


def _hermite(n: int, v0: float, v1: float) -> np.ndarray:
    """Progress u(tau) for tau = 1/n .. 1 (n values) from 0 to 1 with end slopes v0, v1.

    Slope 0 at an end is a smooth stop/start (a rest boundary); a positive slope keeps moving (a
    direct transition, where the motion must not pause).
    """
    tau = np.arange(1, n + 1, dtype=np.float64) / n
    h10 = tau ** 3 - 2 * tau ** 2 + tau
    h01 = -2 * tau ** 3 + 3 * tau ** 2
    h11 = tau ** 3 - tau ** 2
    return h01 + v0 * h10 + v1 * h11


def _smooth(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _bezier(p0: np.ndarray, p1: np.ndarray, u: np.ndarray, bend: float) -> np.ndarray:
    """Quadratic Bezier from p0 to p1 bulging sideways by `bend` x distance; (n, 2)."""
    d = p1 - p0
    normal = np.array([-d[1], d[0]])
    ctrl = 0.5 * (p0 + p1) + bend * normal
    u = u[:, None]
    return (1 - u) ** 2 * p0 + 2 * u * (1 - u) * ctrl + u ** 2 * p1


@dataclass
class _Step:
    kind: str
    hand: int
    arg: object = None


class _ScriptBuilder:
    def __init__(self, rng: np.random.Generator, layout: Layout, n_frames: int, fps: float, hands: int,
                 rest_fraction: float) -> None:
        self.rng = rng
        self.lay = layout
        self.u = layout.unit
        self.n_frames = n_frames
        self.fps = fps
        self.n_hands = hands
        self.rest_fraction = rest_fraction
        self.capacity = n_frames + int(60 * fps)
        self.cursor = 0
        self.hands: list[HandTrack] = []
        for h in (LEFT, RIGHT):
            arr = {k: np.zeros(self.capacity) for k in ("x", "y", "theta", "scale", "grip")}
            self.hands.append(HandTrack(
                name="left" if h == LEFT else "right", shoulder=layout.shoulders[h],
                thumb_side=1 if h == LEFT else -1, **arr))
        self.pose = [[layout.homes[h][0], layout.homes[h][1], layout.homes[h][2], 1.0, 0.15] for h in (LEFT, RIGHT)]
        self.labels = np.zeros(self.capacity, np.int64)
        self.segments: list[tuple[int, int, int, int]] = []
        self.objects: list[ObjectTrack] = []
        self.holding: list[ObjectTrack | None] = [None, None]
        self.rel: list[np.ndarray | None] = [None, None]
        # Parts waiting in the bin slots (identical copies are painted in the background there,
        # so a part that appears in an emptied slot changes no pixel).
        self.bin_parts: list[ObjectTrack] = [self._new_part(0, k) for k in range(len(layout.bin_slots))]
        self.tool = ObjectTrack(name="tool", kind="tool", appear=0)
        self.tool.add(0, STATIC, -1, layout.tool_pose())
        self.objects.append(self.tool)
        self.fixture_part: ObjectTrack | None = None
        self.tray_next = 0
        self.pace = 1.0

    # ---- plan -------------------------------------------------------------------------------

    def build(self) -> Script:
        rng = self.rng
        self._rest(rng.uniform(0.5, 2.5))
        n_cycles = 0
        while self.cursor < self.n_frames:
            self.pace = float(np.clip(rng.normal(1.0, 0.12), 0.8, 1.3))
            steps = self._cycle_steps()
            for k, step in enumerate(steps):
                if self.cursor >= self.n_frames:
                    break
                label = LABEL_OF[step.kind]
                nxt = steps[k + 1] if k + 1 < len(steps) else _Step("reach", RIGHT)
                rest_before = self.cursor > 0 and self.labels[self.cursor - 1] == 0
                rest_after = bool(rng.random() < self.rest_fraction) or LABEL_OF[nxt.kind] == label
                v0 = 0.0 if rest_before else DIRECT_SLOPE
                v1 = 0.0 if rest_after else DIRECT_SLOPE
                getattr(self, "_" + step.kind)(step, v0, v1)
                if rest_after:
                    self._rest(np.exp(rng.uniform(np.log(REST_RANGE[0]), np.log(REST_RANGE[1]))))
            n_cycles += 1
        n = self.n_frames
        for hand in self.hands:
            for name in ("x", "y", "theta", "scale", "grip"):
                setattr(hand, name, getattr(hand, name)[:n].copy())
        segments = []
        for s, e, lab, h in self.segments:
            if s < n:
                segments.append((s, min(e, n), lab, h))
        active = [LEFT, RIGHT] if self.n_hands == 2 else [RIGHT]
        return Script(n_frames=n, fps=self.fps, hands=self.hands, active_hands=active, objects=self.objects,
                      labels=self.labels[:n].copy(), segments=segments, n_cycles=n_cycles)

    def _cycle_steps(self) -> list[_Step]:
        rng = self.rng
        fetch = LEFT if (self.n_hands == 2 and rng.random() < 0.45) else RIGHT
        slot = int(rng.integers(len(self.lay.bin_slots)))
        steps = [_Step("reach", fetch, ("bin", slot)), _Step("grasp", fetch, "part")]
        if rng.random() < 0.2:
            steps.append(_Step("inspect", fetch))
        steps += [_Step("transport", fetch, "fixture"), _Step("insert", fetch)]
        if fetch == LEFT:
            steps.append(_Step("reach", LEFT, ("home", None)))
        steps += [_Step("reach", RIGHT, ("tool", None)), _Step("grasp", RIGHT, "tool")]
        n_bolts = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
        holes = rng.permutation(4)[:n_bolts]
        for hole in holes:
            steps += [_Step("transport", RIGHT, ("bolt", int(hole))), _Step("screw", RIGHT)]
        steps += [_Step("put_aside", RIGHT, "holder"), _Step("reach", RIGHT, ("fixture", None)),
                  _Step("grasp", RIGHT, "part")]
        if rng.random() < 0.7:
            steps.append(_Step("inspect", RIGHT))
        steps.append(_Step("put_aside", RIGHT, "tray"))
        return steps

    # ---- low-level filling ------------------------------------------------------------------

    def _frames(self, seconds: float) -> int:
        return max(2, int(round(seconds * self.fps)))

    def _prim_frames(self, seconds: float) -> int:
        """Frames of one primitive: always within PRIMITIVE_RANGE seconds, whatever the pace."""
        return self._frames(float(np.clip(seconds, *PRIMITIVE_RANGE)))

    def _ensure(self, n: int) -> None:
        need = self.cursor + n
        if need <= self.capacity:
            return
        grow = max(need - self.capacity, int(60 * self.fps))
        for hand in self.hands:
            for name in ("x", "y", "theta", "scale", "grip"):
                arr = getattr(hand, name)
                setattr(hand, name, np.concatenate([arr, np.zeros(grow)]))
        self.labels = np.concatenate([self.labels, np.zeros(grow, np.int64)])
        self.capacity += grow

    def _hold(self, h: int, a: int, b: int) -> None:
        hand = self.hands[h]
        x, y, th, s, g = self.pose[h]
        hand.x[a:b], hand.y[a:b], hand.theta[a:b], hand.scale[a:b], hand.grip[a:b] = x, y, th, s, g

    def _rest(self, seconds: float) -> None:
        n = self._frames(seconds)
        self._ensure(n)
        for h in (LEFT, RIGHT):
            self._hold(h, self.cursor, self.cursor + n)
        self.labels[self.cursor:self.cursor + n] = 0
        self.cursor += n

    def _emit(self, h: int, label: str, x, y, theta, scale, grip) -> None:
        """Write one primitive's per-frame pose arrays for hand h (the other hand holds)."""
        n = len(x)
        self._ensure(n)
        a, b = self.cursor, self.cursor + n
        hand = self.hands[h]
        hand.x[a:b], hand.y[a:b], hand.theta[a:b] = x, y, theta
        hand.scale[a:b], hand.grip[a:b] = scale, grip
        self._hold(1 - h, a, b)
        self.labels[a:b] = LABEL_OF[label]
        self.segments.append((a, b, LABEL_OF[label], h))
        self.pose[h] = [float(x[-1]), float(y[-1]), float(theta[-1]), float(scale[-1]), float(grip[-1])]
        self.cursor = b

    def _hand_matrix_now(self, h: int) -> np.ndarray:
        x, y, th, s, _ = self.pose[h]
        return affine.similarity(x, y, th, s)

    def _natural_theta(self, h: int, wx: float, wy: float, delta: float) -> float:
        sx, sy = self.lay.shoulders[h]
        return float(np.arctan2(wy - sy, wx - sx) + delta)

    def _wrist_for(self, h: int, target: np.ndarray, local: np.ndarray, scale: float, delta: float,
                   theta_offset: float = 0.0) -> tuple[float, float, float]:
        """Wrist (x, y) and theta that put hand-local point `local` on image point `target`, with the
        hand turned `delta` from the forearm axis (plus `theta_offset`)."""
        w = np.array(target, np.float64)
        theta = 0.0
        for _ in range(6):  # the forearm axis depends on the wrist; a few fixed-point steps converge
            theta = self._natural_theta(h, w[0], w[1], delta) + theta_offset
            c, s = np.cos(theta), np.sin(theta)
            off = scale * np.array([c * local[0] - s * local[1], s * local[0] + c * local[1]])
            w = np.asarray(target, np.float64) - off
        return float(w[0]), float(w[1]), theta

    def _move_to(self, h: int, label: str, x1: float, y1: float, th1: float, s1: float, n: int, v0: float,
                 v1: float, bend: float, lift: float, grip) -> None:
        x0, y0, th0, s0, _ = self.pose[h]
        u = _hermite(n, v0, v1)
        p = _bezier(np.array([x0, y0]), np.array([x1, y1]), u, bend)
        dth = float(affine.wrap_angle(th1 - th0))
        theta = th0 + dth * u
        scale = s0 + (s1 - s0) * u + lift * np.sin(np.pi * np.clip(u, 0, 1))
        self._emit(h, label, p[:, 0], p[:, 1], theta, scale, grip)

    def _duration(self, dist: float, speed: tuple[float, float], lo: float, hi: float, base: float) -> int:
        v = self.rng.uniform(*speed) * self.lay.height  # px per second
        return self._prim_frames(float(np.clip(base + dist / v, lo, hi)) * self.pace)

    def _grip_open(self, n: int, g0: float, g1: float, start: float, stop: float) -> np.ndarray:
        tau = np.arange(1, n + 1) / n
        return g0 + (g1 - g0) * _smooth((tau - start) / max(stop - start, 1e-6))

    # ---- objects ----------------------------------------------------------------------------

    def _new_part(self, appear: int, slot: int) -> ObjectTrack:
        part = ObjectTrack(name=f"part{len([o for o in self.objects if o.kind == 'part'])}", kind="part",
                           appear=appear)
        part.add(appear, STATIC, -1, self.lay.bin_part_pose(slot))
        self.objects.append(part)
        return part

    def _attach(self, h: int, obj: ObjectTrack) -> None:
        frame = self.cursor - 1
        hand_m = self._hand_matrix_now(h)
        assert obj.modes[-1] == STATIC, f"{obj.name} is already held"
        obj_m = obj.mats[-1]
        rel = affine.invert(hand_m) @ obj_m
        obj.add(frame, ATTACHED, h, rel)
        self.holding[h] = obj
        self.rel[h] = rel

    def _release(self, h: int) -> ObjectTrack:
        obj = self.holding[h]
        assert obj is not None
        frame = self.cursor - 1
        obj.add(frame, STATIC, -1, self._hand_matrix_now(h) @ self.rel[h])
        self.holding[h] = None
        self.rel[h] = None
        return obj

    # ---- primitives -------------------------------------------------------------------------

    def _reach(self, step: _Step, v0: float, v1: float) -> None:
        h = step.hand
        where, arg = step.arg
        rng, u = self.rng, self.u
        delta = rng.uniform(-0.25, 0.25)
        if where == "home":
            hx, hy, _ = self.lay.homes[h]
            hx += rng.uniform(-12, 12) * u
            hy += rng.uniform(-8, 8) * u
            x1, y1, th1 = hx, hy, self._natural_theta(h, hx, hy, delta)
        else:
            if where == "bin":
                self._target_part = self.bin_parts[arg]
                centre = self.lay.bin_part_pose(arg)[:2, 2]
                local = np.array([HAND.grip_x * u, 0.0])
            elif where == "fixture":
                self._target_part = self.fixture_part
                centre = self.fixture_part.mats[-1][:2, 2]
                local = np.array([HAND.grip_x * u, 0.0])
            else:  # the tool: grip its handle, roughly across the hand
                centre = self.lay.tool_pose()[:2, 2]
                local = np.array([HAND.tool_grip_x * u, 0.0])
            x1, y1, th1 = self._wrist_for(h, centre, local, 1.0, delta)
        x0, y0, _, _, g0 = self.pose[h]
        dist = float(np.hypot(x1 - x0, y1 - y0))
        n = self._duration(dist, (0.9, 1.4), 0.6, 2.2, 0.35)
        grip = self._grip_open(n, g0, 0.0, 0.0, 0.4)
        self._move_to(h, "reach", x1, y1, th1, 1.0, n, v0, v1, rng.uniform(-0.25, 0.25), 0.0, grip)

    def _grasp(self, step: _Step, v0: float, v1: float) -> None:
        h = step.hand
        rng, u = self.rng, self.u
        n = self._prim_frames(rng.uniform(0.6, 1.2) * self.pace)
        x0, y0, th0, s0, g0 = self.pose[h]
        tau = np.arange(1, n + 1) / n
        bump = np.sin(np.pi * tau)
        push = rng.uniform(2.0, 4.5) * u
        x = x0 + push * np.cos(th0) * bump
        y = y0 + push * np.sin(th0) * bump
        theta = th0 + rng.uniform(-0.06, 0.06) * bump
        scale = s0 * (1.0 - 0.04 * bump)
        g_close = 0.8 if step.arg == "tool" else 1.0
        grip = g0 + (g_close - g0) * _smooth(tau / 0.85)
        self._emit(h, "grasp", x, y, theta, scale, grip)
        if step.arg == "tool":
            self._attach(h, self.tool)
        else:
            part = self._target_part
            self._attach(h, part)
            if part in self.bin_parts:
                slot = self.bin_parts.index(part)
                self.bin_parts[slot] = self._new_part(self.cursor - 1, slot)
            if part is self.fixture_part:
                self.fixture_part = None

    def _transport(self, step: _Step, v0: float, v1: float) -> None:
        h = step.hand
        rng, u = self.rng, self.u
        rel = self.rel[h]
        delta = rng.uniform(-0.2, 0.2)
        if step.arg == "fixture":
            # The square part fits the fixture in four orientations: take the one that keeps the
            # wrist most natural.
            best = None
            for k in range(4):
                d = self.lay.fixture_pose(k)
                hover = affine.about_point(d[0, 2], d[1, 2], 0.0, 1.06) @ d
                hm = hover @ affine.invert(rel)
                tx, ty, th, s = affine.decompose(hm)
                cost = abs(float(affine.wrap_angle(th - self._natural_theta(h, tx, ty, 0.0))))
                if best is None or cost < best[0]:
                    best = (cost, d, hm)
            _, dest, hm = best
            self._insert_dest = dest
            x1, y1, th1, s1 = (float(v) for v in affine.decompose(hm))
        else:  # ("bolt", hole): the tool tip over a bolt hole of the part in the fixture
            hole = step.arg[1]
            tip_local = np.array([TOOL_TIP_X * u, 0.0])
            tip_hand = affine.apply(rel, tip_local[None])[0]
            p = self._bolt_point(hole)
            x1, y1, th1 = self._wrist_for(h, p, tip_hand, 1.04, delta)
            s1 = 1.04
            self._bolt = p
        x0, y0 = self.pose[h][:2]
        dist = float(np.hypot(x1 - x0, y1 - y0))
        n = self._duration(dist, (0.45, 0.75), 0.9, 2.8, 0.4)
        grip = np.full(n, self.pose[h][4])
        self._move_to(h, "transport", x1, y1, th1, s1, n, v0, v1, rng.uniform(-0.2, 0.2), 0.04, grip)

    def _bolt_point(self, hole: int) -> np.ndarray:
        sx, sy = (-1, -1, 1, 1)[hole], (-1, 1, -1, 1)[hole]
        local = np.array([[sx * PART_HOLE * self.u, sy * PART_HOLE * self.u]])
        return affine.apply(self.fixture_part.mats[-1], local)[0]

    def _insert(self, step: _Step, v0: float, v1: float) -> None:
        h = step.hand
        rng, u = self.rng, self.u
        n = self._prim_frames(rng.uniform(1.0, 2.5) * self.pace)
        dest = self._insert_dest
        final = dest @ affine.invert(self.rel[h])
        cx, cy = dest[0, 2], dest[1, 2]
        prog = _hermite(n, v0, v1)  # a direct transition: the part seats with a bump
        sigma = 1.06 + (1.0 - 1.06) * prog
        t = np.arange(1, n + 1) / self.fps
        tau = np.arange(1, n + 1) / n
        amp = rng.uniform(1.0, 2.0) * u * (1.0 - tau)
        ang = rng.uniform(0, 2 * np.pi)
        wig = amp * np.sin(2 * np.pi * rng.uniform(2.5, 4.0) * t)
        mats = affine.similarity(wig * np.cos(ang), wig * np.sin(ang), 0.0, 1.0) @ \
            affine.about_point(cx, cy, 0.0, sigma) @ final
        x, y, theta, scale = affine.decompose(mats)
        theta = self.pose[h][2] + affine.wrap_angle(theta - self.pose[h][2])
        grip = self._grip_open(n, self.pose[h][4], 0.25, 0.75, 1.0)
        self._emit(h, "insert", x, y, theta, scale, grip)
        self.fixture_part = self._release(h)

    def _screw(self, step: _Step, v0: float, v1: float) -> None:
        h = step.hand
        rng = self.rng
        n = self._prim_frames(rng.uniform(1.5, 4.0) * self.pace)
        p = self._bolt
        h0 = self._hand_matrix_now(h)
        tau = np.arange(1, n + 1) / n
        t = np.arange(1, n + 1) / self.fps
        amp = rng.uniform(0.3, 0.55)
        freq = rng.uniform(1.3, 2.3)
        env = 1.0 - (2 * tau - 1) ** 6
        spin = amp * np.sin(2 * np.pi * freq * t) * env
        sigma = 1.0 - 0.035 * _smooth(tau / 0.2) + 0.025 * _smooth((tau - 0.85) / 0.15)
        mats = affine.about_point(p[0], p[1], spin, sigma / 1.0) @ h0
        x, y, theta, scale = affine.decompose(mats)
        theta = self.pose[h][2] + affine.wrap_angle(theta - self.pose[h][2])
        self._emit(h, "screw", x, y, theta, scale, np.full(n, self.pose[h][4]))

    def _inspect(self, step: _Step, v0: float, v1: float) -> None:
        h = step.hand
        rng, u, lay = self.rng, self.u, self.lay
        n = self._prim_frames(rng.uniform(1.8, 4.0) * self.pace)
        rel = self.rel[h]
        o0 = self._hand_matrix_now(h) @ rel
        c0 = o0[:2, 2].copy()
        c1 = np.array([lay.width * (0.5 + rng.uniform(-0.08, 0.08)), lay.height * (0.6 + rng.uniform(-0.04, 0.05))])
        tau = np.arange(1, n + 1) / n
        move = np.clip((np.arange(1, n + 1) / n) / 0.4, 0, 1)
        move = move * move * (3 - 2 * move) if v0 == 0 else 1 - (1 - move) ** 2
        c = _bezier(c0, c1, move, rng.uniform(-0.2, 0.2))
        sway = 2.0 * u * np.sin(2 * np.pi * tau * rng.uniform(0.8, 1.6)) * _smooth((tau - 0.4) / 0.2)
        c[:, 1] += sway
        sigma = 1.0 + rng.uniform(0.14, 0.22) * _smooth(tau / 0.35)
        turn = rng.uniform(-0.8, 0.8) * _smooth(tau) + rng.uniform(0.3, 0.6) * np.sin(
            2 * np.pi * tau * rng.choice([1.0, 1.5])) * np.sin(np.pi * tau)
        obj = affine.similarity(c[:, 0], c[:, 1], turn, sigma) @ affine.translation(-c0[0], -c0[1]) @ o0
        mats = obj @ affine.invert(rel)
        x, y, theta, scale = affine.decompose(mats)
        theta = self.pose[h][2] + np.unwrap(np.concatenate([[0.0], affine.wrap_angle(theta - self.pose[h][2])]))[1:]
        self._emit(h, "inspect", x, y, theta, scale, np.full(n, self.pose[h][4]))

    def _put_aside(self, step: _Step, v0: float, v1: float) -> None:
        h = step.hand
        rng = self.rng
        rel = self.rel[h]
        if step.arg == "holder":
            dest = self.lay.tool_pose()
            hm = dest @ affine.invert(rel)
            x1, y1, th1, s1 = (float(v) for v in affine.decompose(hm))
        else:
            slot = self.lay.tray_slots[self.tray_next % len(self.lay.tray_slots)]
            self.tray_next += 1
            rel_scale = float(np.hypot(rel[0, 0], rel[1, 0]))
            centre_hand = rel[:2, 2]
            delta = rng.uniform(-0.2, 0.2)
            s1 = 1.0 / rel_scale  # the part lands at scale 1 on the tray
            # The part's orientation on the tray is free, so the wrist stays natural.
            x1, y1, th1 = self._wrist_for(h, np.array(slot), centre_hand, s1, delta)
        x0, y0 = self.pose[h][:2]
        dist = float(np.hypot(x1 - x0, y1 - y0))
        n = self._duration(dist, (0.45, 0.75), 1.0, 2.8, 0.5)
        grip = self._grip_open(n, self.pose[h][4], 0.2, 0.78, 1.0)
        self._move_to(h, "put_aside", x1, y1, th1, s1, n, v0, v1, rng.uniform(-0.2, 0.2), 0.03, grip)
        self._release(h)
