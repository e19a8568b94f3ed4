"""Training windows for the distilled tracker: short clips of frame crops with target tracks.

A window is S + 1 consecutive frames at the model fps (S tracker steps), cropped to `crop`
(w, h) px at an origin that is a multiple of 8 px (the coarsest feature stride, so a crop's
features equal the full frame's there, away from the crop border), with P query points on the
first frame and the teacher's positions of the same points on every frame:

    frames    (W, S+1, h, w) uint8 grey
    positions (W, S+1, P, 2) float32 (x, y) px in CROP coordinates
    valid     (W, S+1, P)    bool  the teacher vouches for the point on every frame 0..t and it
                                   is inside the crop (a target for step t)

Training on crops instead of 320x240 frames makes a step ~4x cheaper, which is what lets the
student train on a 2-core CPU; the network is convolutional, so nothing about it depends on
the frame size. Half of a window's points (when there are that many) are points that move
more than 1 px in the window, and 70 % of windows are centred on a moving point: at 10 fps
only ~10 % of a workstation's surface moves, and a tracker that only ever saw static points
learns to stand still.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edge.errors import ConfigError
from export.tracker.teachers import TeacherClip

#: the coarsest feature stride: crop origins are multiples of it
ALIGN = 8
#: probability that a window is centred on a moving point (when the clip has one)
CENTRE_ON_MOTION = 0.7
#: a point "moves" when it gets this far (px) from its start within the window
MOVING_PX = 1.0


@dataclass(frozen=True)
class WindowSpec:
    """How windows are cut. steps: S tracker steps per window; points: P per window; crop: (w, h)
    px, multiples of 8; stride: model frames between window starts; fps, input_size: the model's
    (frames are rendered / resampled to them); moving_fraction: share of moving query points."""

    steps: int = 4
    points: int = 64
    crop: tuple[int, int] = (160, 128)
    stride: int = 2
    fps: float = 10.0
    input_size: tuple[int, int] = (320, 240)
    moving_fraction: float = 0.5

    def __post_init__(self) -> None:
        w, h = self.crop
        if w % ALIGN or h % ALIGN or w < 32 or h < 32 or w > self.input_size[0] or h > self.input_size[1]:
            raise ConfigError(
                f"crop {w}x{h} is not allowed; use multiples of {ALIGN} px, at least 32, at most the input size "
                f"{self.input_size[0]}x{self.input_size[1]}, e.g. 160x128"
            )
        if self.steps < 1 or self.points < 1 or self.stride < 1:
            raise ConfigError(f"window steps {self.steps}, points {self.points} and stride {self.stride} must be >= 1")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["crop"], d["input_size"] = list(self.crop), list(self.input_size)
        return d


@dataclass
class WindowSet:
    """Windows (see the module docstring)."""

    frames: np.ndarray
    positions: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @staticmethod
    def concat(sets: list["WindowSet"]) -> "WindowSet":
        sets = [s for s in sets if len(s)]
        if not sets:
            raise ConfigError("no training windows were made; give longer clips or more seeds")
        return WindowSet(np.concatenate([s.frames for s in sets]), np.concatenate([s.positions for s in sets]),
                         np.concatenate([s.valid for s in sets]))

    def subset(self, idx: np.ndarray) -> "WindowSet":
        return WindowSet(self.frames[idx], self.positions[idx], self.valid[idx])


def synthetic_windows(seed: int, minutes: float, nuisances: str, spec: WindowSpec, rng_seed: int) -> WindowSet:
    """Teacher (a): windows of one synthetic workstation recording with EXACT target tracks.

    The workstation renders at 30 fps at the model input size; every (30 / fps)-th frame is
    used, as the frame resampler delivers them. Query points are drawn per window and tracked by
    `SyntheticWorkstation.trajectories` (camera shake included; occlusion and leaving the frame
    end a point's targets).
    """
    from edge.synthetic.nuisances import Nuisances
    from edge.synthetic.workstation import SyntheticWorkstation
    from edge.tracking.lk import to_grey

    render_fps = 30.0
    every = int(round(render_fps / spec.fps))
    if abs(render_fps / every - spec.fps) > 1e-6:
        raise ConfigError(f"model fps {spec.fps:g} does not divide the synthetic rate 30 fps; use 10, 15 or 30")
    ws = SyntheticWorkstation(seed=seed, minutes=minutes, fps=render_fps, size=tuple(spec.input_size),
                              nuisances=Nuisances.parse(nuisances))
    model_frames = np.arange(0, ws.n_frames, every)
    grey = np.stack([to_grey(ws.render(int(i))) for i in model_frames])
    rng = np.random.default_rng([rng_seed, seed])

    def track(points: np.ndarray, t0: int) -> tuple[np.ndarray, np.ndarray]:
        idx = model_frames[t0:t0 + spec.steps + 1]
        return ws.trajectories(points, int(model_frames[t0]), idx)

    return _cut_windows(grey, track, spec, rng)


def windows_from_clip(clip: TeacherClip, spec: WindowSpec, rng_seed: int) -> WindowSet:
    """Teachers (b) and (c): windows of a clip with continuous teacher tracks.

    Query points are the teacher's columns visible at the window's first frame; a point's
    targets end at the first frame the teacher does not vouch for it.
    """
    rng = np.random.default_rng([rng_seed, len(clip.frames)])

    def track(points_index: np.ndarray, t0: int) -> tuple[np.ndarray, np.ndarray]:
        sl = slice(t0, t0 + spec.steps + 1)
        return clip.positions[sl][:, points_index], clip.visible[sl][:, points_index]

    return _cut_windows(clip.frames, track, spec, rng, columns=clip)


def _cut_windows(grey: np.ndarray, track, spec: WindowSpec, rng: np.random.Generator,
                 columns: TeacherClip | None = None) -> WindowSet:
    """Cut every window of a clip. `track(points_or_columns, t0)` -> positions (S+1, K, 2), visible."""
    t_total, height, width = grey.shape
    cw, ch = spec.crop
    s1, p = spec.steps + 1, spec.points
    starts = np.arange(0, t_total - s1 + 1, spec.stride)
    frames = np.zeros((len(starts), s1, ch, cw), np.uint8)
    positions = np.zeros((len(starts), s1, p, 2), np.float32)
    valid = np.zeros((len(starts), s1, p), bool)
    keep = np.zeros(len(starts), bool)
    for k, t0 in enumerate(starts):
        t0 = int(t0)
        # 1) where to crop: around a moving point 70 % of the time, else anywhere
        if columns is None:
            probe = rng.uniform([0, 0], [width - 1, height - 1], size=(256, 2)).astype(np.float32)
            pp, pv = track(probe, t0)
        else:
            alive = np.flatnonzero(columns.visible[t0])
            pick = alive if len(alive) <= 256 else rng.choice(alive, 256, replace=False)
            pp, pv = track(pick, t0)
        ox, oy = _crop_origin(pp, pv, rng, (width, height), spec.crop)
        # 2) query points inside the crop (4 px in from its border)
        if columns is None:
            cand = rng.uniform([ox + 4, oy + 4], [ox + cw - 5, oy + ch - 5], size=(6 * p, 2)).astype(np.float32)
            cp, cv = track(cand, t0)
        else:
            at0 = columns.positions[t0]
            inside = columns.visible[t0] & (at0[:, 0] >= ox + 4) & (at0[:, 0] <= ox + cw - 5) \
                & (at0[:, 1] >= oy + 4) & (at0[:, 1] <= oy + ch - 5)
            cand_idx = np.flatnonzero(inside)
            if len(cand_idx) == 0:
                continue
            cp, cv = track(cand_idx, t0)
        cp = cp - np.array([ox, oy], np.float32)
        in_crop = (cp[..., 0] >= 0) & (cp[..., 0] <= cw - 1) & (cp[..., 1] >= 0) & (cp[..., 1] <= ch - 1)
        ok = np.logical_and.accumulate(cv & in_crop & np.isfinite(cp).all(axis=-1), axis=0)
        usable = np.flatnonzero(ok[0])
        if len(usable) == 0:
            continue
        chosen = _choose_points(cp[:, usable], ok[:, usable], p, spec.moving_fraction, rng)
        frames[k] = grey[t0:t0 + s1, oy:oy + ch, ox:ox + cw]
        positions[k] = cp[:, usable][:, chosen]
        valid[k] = ok[:, usable][:, chosen]
        keep[k] = True
    return WindowSet(frames[keep], positions[keep], valid[keep])


def _crop_origin(pp: np.ndarray, pv: np.ndarray, rng: np.random.Generator, size: tuple[int, int],
                 crop: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    cw, ch = crop
    both = pv[0] & pv[-1]
    moving = both & (np.linalg.norm(pp[-1] - pp[0], axis=-1) > MOVING_PX)
    if moving.any() and rng.random() < CENTRE_ON_MOTION:
        cx, cy = pp[0][rng.choice(np.flatnonzero(moving))]
        ox, oy = cx - cw / 2 + rng.uniform(-cw / 4, cw / 4), cy - ch / 2 + rng.uniform(-ch / 4, ch / 4)
    else:
        ox, oy = rng.uniform(0, width - cw), rng.uniform(0, height - ch)
    ox = int(np.clip(np.round(ox / ALIGN) * ALIGN, 0, (width - cw) // ALIGN * ALIGN))
    oy = int(np.clip(np.round(oy / ALIGN) * ALIGN, 0, (height - ch) // ALIGN * ALIGN))
    return ox, oy


def _choose_points(pos: np.ndarray, ok: np.ndarray, p: int, moving_fraction: float,
                   rng: np.random.Generator) -> np.ndarray:
    """P column indices: up to moving_fraction * P moving ones, the rest at random (with
    replacement only when there are fewer than P)."""
    k = pos.shape[1]
    last = np.where(ok, np.arange(ok.shape[0])[:, None], 0).max(axis=0)
    travel = np.linalg.norm(pos[last, np.arange(k)] - pos[0], axis=-1)
    moving = np.flatnonzero(travel > MOVING_PX)
    n_moving = min(len(moving), int(round(moving_fraction * p)))
    first = rng.choice(moving, n_moving, replace=False) if n_moving else np.zeros(0, np.int64)
    rest_pool = np.setdiff1d(np.arange(k), first)
    n_rest = p - n_moving
    if len(rest_pool) >= n_rest:
        rest = rng.choice(rest_pool, n_rest, replace=False)
    else:
        rest = rng.choice(np.arange(k), n_rest, replace=True)
    return np.concatenate([first, rest]).astype(np.int64)


def build_synthetic(seeds: list[int], minutes: float, nuisances: str, spec: WindowSpec, rng_seed: int,
                    workers: int = 1, progress: bool = True) -> WindowSet:
    """Windows of several synthetic recordings (one process per seed when workers > 1; the
    result does not depend on `workers`: every seed has its own random stream)."""
    from tqdm import tqdm

    jobs = [(s, minutes, nuisances, spec, rng_seed) for s in seeds]
    if workers > 1 and len(seeds) > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(seeds))) as pool:
            parts = list(tqdm(pool.imap(_synthetic_job, jobs), total=len(jobs), desc="synthetic windows",
                              disable=not progress, leave=False))
    else:
        parts = [_synthetic_job(j) for j in tqdm(jobs, desc="synthetic windows", disable=not progress, leave=False)]
    return WindowSet.concat(parts)


def _synthetic_job(job: tuple) -> WindowSet:
    seed, minutes, nuisances, spec, rng_seed = job
    return synthetic_windows(seed, minutes, nuisances, spec, rng_seed)
