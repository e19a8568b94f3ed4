"""`SyntheticWorkstation`: a generated assembly-workstation recording with exact ground truth.

Everything is drawn from the seed at construction (layout, looks, motion script, distractor,
camera nuisances) from independent random streams, so changing a nuisance switch never changes
the motion or the labels, and frame i is a pure function of (seed, options, i).
"""

from __future__ import annotations

from typing import Iterator

import cv2
import numpy as np

from edge.errors import ConfigError
from edge.synthetic import sprites as sp
from edge.synthetic.distractor import plan_distractor
from edge.synthetic.groundtruth import GroundTruth
from edge.synthetic.layers import LayerStack
from edge.synthetic.nuisances import CameraEffects, Nuisances
from edge.synthetic.render import Renderer
from edge.synthetic.scene import DISTRACTORS, choose_layout, paint_background
from edge.synthetic.script import LABEL_NAMES, LEFT, PRIMITIVE_MOTION, compose_script
from edge.synthetic.trajectories import exact_trajectories

#: salt mixed into every seed so these streams never coincide with another module's
_SALT = 0x1A95_ED6E
#: limits that keep a recording renderable and its files sane
MAX_MINUTES = 600.0
MAX_FPS = 240.0
MIN_SIZE = (96, 72)
MAX_SIZE = (3840, 2160)


class SyntheticWorkstation:
    """A fixed overhead camera over a workbench where one or two hands assemble parts.

    seed: any int >= 0; minutes: length; fps: frame rate; size: (width, height) px;
    nuisances: which nuisances are rendered (default all on); hands: 1 or 2 (None: drawn from
    the seed, two hands 70 % of the time); rest_fraction: probability of a rest between two
    primitives (else a direct transition); distractor: "conveyor" or "passerby" (None: drawn).
    """

    def __init__(self, seed: int = 7, minutes: float = 2.0, fps: float = 30.0, size: tuple[int, int] = (640, 480),
                 nuisances: Nuisances | None = None, *, hands: int | None = None, rest_fraction: float = 0.5,
                 distractor: str | None = None) -> None:
        self.validate(seed, minutes, fps, size, nuisances, hands=hands, rest_fraction=rest_fraction,
                      distractor=distractor)
        seed, minutes, fps, size = _validate(seed, minutes, fps, size, hands, rest_fraction, distractor)
        self.seed = seed
        self.minutes = minutes
        self._fps = fps
        self._size = size
        self.nuisances = nuisances if nuisances is not None else Nuisances.all_on()
        self.rest_fraction = float(rest_fraction)
        self._n_frames = max(1, int(round(minutes * 60.0 * fps)))
        streams = [np.random.default_rng(s) for s in np.random.SeedSequence([seed, _SALT]).spawn(7)]
        r_layout, r_look, r_script, r_distractor, r_camera, r_background, r_choice = streams
        drawn_hands = 1 if r_choice.random() < 0.3 else 2
        self.hands = int(hands) if hands is not None else drawn_hands
        self.layout = choose_layout(r_layout, size, distractor)
        u = self.layout.unit
        look = sp.choose_hand_look(r_look)
        sprites = {"part": sp.make_part(r_look, u), "tool": sp.make_tool(r_look, u),
                   "person": sp.make_person(r_look, u)}
        for h in (0, 1):
            side = 1 if h == LEFT else -1
            sprites[f"arm{h}"] = sp.make_arm(r_look, u, self.layout.arm_length, look)
            sprites[f"palm{h}"] = sp.make_palm(r_look, u, look)
            sprites[f"fingers{h}"] = sp.make_fingers(r_look, u, look, side)
            sprites[f"thumb{h}"] = sp.make_thumb(r_look, u, look)
        rail = max(2, int(5 * u))
        period = int(round(256 * u))
        # One period wider than needed, so the belt also fills the canvas margin that shake reveals.
        sprites["belt"] = sp.make_belt(r_look, u, size[0] + period, self.layout.strip_h - rail, period)
        sprites["belt_period"] = period
        sprites["belt_y"] = 0.0
        self.look = look
        self.script = compose_script(r_script, self.layout, self._n_frames, fps, self.hands, self.rest_fraction)
        self.distractor = plan_distractor(r_distractor, self.layout, self._n_frames, fps, self.nuisances.distractor)
        self.effects = CameraEffects(r_camera, self._n_frames, fps, size, self.nuisances)
        self.background = paint_background(r_background, self.layout, sprites["part"])
        self.stack = LayerStack(self.layout, self.script, self.distractor, sprites)
        # The canvas extends past the frame by more than the largest shake (mirrored bench).
        pad = int(np.ceil(np.abs(self.effects.shake).max(initial=0.0))) + 2
        canvas = cv2.copyMakeBorder(self.background, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        self._renderer = Renderer(self.stack, canvas, self.effects, self.nuisances, self._n_frames, pad)
        self._ground_truth: GroundTruth | None = None

    @staticmethod
    def validate(seed: int = 7, minutes: float = 2.0, fps: float = 30.0, size: tuple[int, int] = (640, 480),
                 nuisances: Nuisances | None = None, *, hands: int | None = None, rest_fraction: float = 0.5,
                 distractor: str | None = None) -> None:
        """Raise ConfigError (one line) if the constructor would reject these arguments; cheap."""
        _validate(seed, minutes, fps, size, hands, rest_fraction, distractor)
        if nuisances is not None and not isinstance(nuisances, Nuisances):
            raise ConfigError(f"nuisances must be a Nuisances, got {nuisances!r}; use Nuisances.parse('all')")

    # ---- properties -------------------------------------------------------------------------

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def n_frames(self) -> int:
        return self._n_frames

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self._size

    @property
    def duration_s(self) -> float:
        return self._n_frames / self._fps

    @property
    def ground_truth(self) -> GroundTruth:
        """Labels and segments (built once, on first use)."""
        if self._ground_truth is None:
            self._ground_truth = self._build_ground_truth()
        return self._ground_truth

    # ---- frames and tracks ------------------------------------------------------------------

    def render(self, i: int) -> np.ndarray:
        """Frame i as (H, W, 3) uint8 BGR. Fast in order; random access gives identical pixels."""
        i = int(i)
        if not 0 <= i < self._n_frames:
            raise IndexError(f"frame {i} outside 0..{self._n_frames - 1}")
        return self._renderer.render(i)

    def frames(self, start: int = 0, stop: int | None = None, workers: int = 2) -> Iterator[np.ndarray]:
        """Frames start..stop-1 in order, identical to `render(i)`.

        With workers > 0 the photometric camera effects (illumination, sensor noise, the JPEG
        round trip: most of the cost when they are on) run in that many threads of this process
        while the next frames are composited (OpenCV releases the GIL), a few frames ahead.
        """
        stop = self._n_frames if stop is None else min(stop, self._n_frames)
        renderer = self._renderer
        photometric = self.nuisances.noise or self.nuisances.flicker or self.nuisances.drift or \
            self.nuisances.compression
        if workers <= 0 or not photometric:
            for i in range(start, stop):
                yield renderer.render(i)
            return
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synthetic-camera")
        pending: deque = deque()
        try:
            for i in range(start, stop):
                pending.append(pool.submit(self.effects.apply, renderer.render_scene(i), i))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True)

    def trajectories(self, points_xy: np.ndarray, frame0: int,
                     frame_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact tracks of surface points.

        points_xy: (N, 2) (x, y) px at frame `frame0` (origin at the top-left pixel's centre);
        each follows the topmost layer under it at frame0 (hand piece, part, tool, belt, passer-by
        or the bench), camera shake included. Returns positions (T, N, 2) float32 at
        `frame_indices` (T,) and visible (T, N) bool (inside the frame, not occluded, its layer
        present).
        """
        frame0 = int(frame0)
        idx = np.asarray(frame_indices, np.int64).reshape(-1)
        if not 0 <= frame0 < self._n_frames or (idx.size and (idx.min() < 0 or idx.max() >= self._n_frames)):
            raise IndexError(f"frames must lie in 0..{self._n_frames - 1}")
        return exact_trajectories(self.stack, self.effects.shake, self._size, points_xy, frame0, idx)

    def grid_tracks(self, grid: int = 20, window: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Exact tracks of a grid x grid lattice (edge.tracking.base.grid_points) seeded at frame 0
        and re-seeded every `window` frames: positions (n_frames, N, 2) float32 where row t is
        the position of the lattice seeded at frame window * (t // window); visible (n_frames, N);
        seed_frames (n_windows,) int."""
        from edge.tracking.base import grid_points

        pts = grid_points(self._size[0], self._size[1], grid)
        positions = np.empty((self._n_frames, len(pts), 2), np.float32)
        visible = np.empty((self._n_frames, len(pts)), bool)
        seeds = np.arange(0, self._n_frames, window)
        for f0 in seeds:
            idx = np.arange(f0, min(f0 + window, self._n_frames))
            positions[idx], visible[idx] = self.trajectories(pts, int(f0), idx)
        return positions, visible, seeds

    # ---- ground truth -----------------------------------------------------------------------

    def _build_ground_truth(self) -> GroundTruth:
        script = self.script
        segments, preceded, hands = [], [], []
        prev_end = None
        for s, e, lab, h in script.segments:
            segments.append((s / self._fps, e / self._fps, LABEL_NAMES[lab]))
            preceded.append("start" if prev_end is None else ("direct" if s == prev_end else "rest"))
            hands.append("left" if h == LEFT else "right")
            prev_end = e
        meta = {
            "generator": "edge.synthetic.SyntheticWorkstation",
            "seed": self.seed, "minutes": self.minutes, "size": list(self._size),
            "nuisances": self.nuisances.spec(), "hands": self.hands, "distractor": self.layout.distractor,
            "rest_fraction": self.rest_fraction, "cycles": script.n_cycles,
            "primitives": PRIMITIVE_MOTION,
        }
        return GroundTruth(fps=self._fps, n_frames=self._n_frames, label_names=list(LABEL_NAMES),
                           labels=script.labels.copy(), segments=segments, preceded_by=preceded, hands=hands,
                           meta=meta)

    def __repr__(self) -> str:
        return (f"SyntheticWorkstation(seed={self.seed}, minutes={self.minutes:g}, fps={self._fps:g}, "
                f"size={self._size[0]}x{self._size[1]}, nuisances={self.nuisances.spec()!r}, hands={self.hands}, "
                f"distractor={self.layout.distractor!r})")


def _validate(seed, minutes, fps, size, hands, rest_fraction, distractor):
    try:
        seed_i = int(seed)
    except (TypeError, ValueError):
        seed_i = -1
    if isinstance(seed, bool) or seed_i < 0 or seed_i != seed:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    try:
        minutes_f, fps_f = float(minutes), float(fps)
    except (TypeError, ValueError):
        raise ConfigError(f"minutes and fps must be numbers, got minutes={minutes!r} fps={fps!r}") from None
    if not 0 < minutes_f <= MAX_MINUTES:
        raise ConfigError(f"minutes must be in (0, {MAX_MINUTES:g}], got {minutes!r}")
    if not 1.0 <= fps_f <= MAX_FPS:
        raise ConfigError(f"fps must be in [1, {MAX_FPS:g}], got {fps!r}")
    try:
        width, height = (int(v) for v in size)
    except (TypeError, ValueError):
        raise ConfigError(f"size must be (width, height) in pixels, got {size!r}") from None
    if not (MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1]):
        raise ConfigError(f"size {width}x{height} is outside {MIN_SIZE[0]}x{MIN_SIZE[1]} .. "
                          f"{MAX_SIZE[0]}x{MAX_SIZE[1]}; pick e.g. 640x480")
    if width % 2 or height % 2:
        raise ConfigError(f"size {width}x{height} must have even width and height (video codecs need it)")
    if hands not in (None, 1, 2):
        raise ConfigError(f"hands must be 1 or 2, got {hands!r}")
    if not 0.0 <= float(rest_fraction) <= 1.0:
        raise ConfigError(f"rest_fraction must be in [0, 1], got {rest_fraction!r}")
    if distractor is not None and distractor not in DISTRACTORS:
        raise ConfigError(f"distractor must be one of {', '.join(DISTRACTORS)}, got {distractor!r}")
    return seed_i, minutes_f, fps_f, (width, height)
