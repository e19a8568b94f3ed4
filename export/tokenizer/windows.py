"""Training windows: T frames of tracks at the model fps -> T-1 velocity steps.

A clip's tracks are held as a `TrackRecord`: per-frame velocity (F, N, 2) in px per step at the
model fps, (x, y), and a validity mask (F, N) saying the step into frame f is trustworthy
(the point was visible in both frames). Frame 0 has no step (velocity 0, invalid). A window
starting at frame s covers frames s..s+T-1 and so the steps into frames s+1..s+T-1.

The conventions (fps, T, grid, input size, "xy", velocity scale, displacement range) come from
one `DataConventions`, which becomes part of the exported model's metadata.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from edge.errors import ConfigError, LapsError


class TrackDataError(LapsError):
    """Saved tracks or a track cache entry cannot be used."""


@dataclass(frozen=True)
class DataConventions:
    """The conventions fixed before training and written into the model metadata.

    fps: model frame rate. window: T. grid: points per side (N = grid^2). grid_margin: as in
    `edge.tracking.base.grid_points`. input_size: (width, height) px of the tracker's frames.
    velocity_scale_px: encoder input = v / velocity_scale_px. max_displacement_px: decoder
    classes cover [-m, m] px per axis.
    """

    fps: float = 10.0
    window: int = 16
    grid: int = 20
    grid_margin: float = 1.0 / 20.0
    input_size: tuple[int, int] = (320, 240)
    convention: str = "xy"
    velocity_scale_px: float = 7.0
    max_displacement_px: int = 7

    def __post_init__(self) -> None:
        if self.convention != "xy":
            raise ConfigError(f"coordinate convention {self.convention!r} is not supported; use 'xy'")
        if self.window < 2:
            raise ConfigError(f"window T={self.window} is too short; use T >= 2 (default 16)")
        if self.fps <= 0:
            raise ConfigError(f"fps {self.fps} must be > 0 (default 10)")

    @property
    def n_points(self) -> int:
        return self.grid * self.grid

    @property
    def steps(self) -> int:
        return self.window - 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DataConventions":
        d = dict(d)
        d["input_size"] = tuple(d["input_size"])
        return cls(**d)


@dataclass
class TrackRecord:
    """Per-frame tracks of one clip at the model fps.

    velocity: (F, N, 2) float32 px per step, (x, y). valid: (F, N) bool. fps: frames per second.
    source: a description (spec or path) for provenance.
    """

    velocity: np.ndarray
    valid: np.ndarray
    fps: float
    source: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.velocity.shape[0])


def tracks_from_positions(
    positions: np.ndarray, visibility: np.ndarray, fps: float, model_fps: float, source: str = ""
) -> TrackRecord:
    """Positions (F, N, 2) (x, y) px and visibility (F, N) at `fps` -> a record at `model_fps`.

    Frames are picked by time (nearest frame at k / model_fps); a step is valid only if the
    point was visible in every source frame it spans, so a disappearance between two picked
    frames is not mistaken for motion.
    """
    pos = np.asarray(positions, dtype=np.float32)
    vis = np.asarray(visibility, dtype=bool)
    if pos.ndim != 3 or pos.shape[2] != 2 or vis.shape != pos.shape[:2]:
        raise TrackDataError(
            f"tracks have positions {pos.shape} and visibility {vis.shape}; expected (T, N, 2) and (T, N)"
        )
    if fps <= 0:
        raise TrackDataError(f"tracks have fps {fps}; it must be > 0")
    duration = (pos.shape[0] - 1) / fps
    n_out = int(np.floor(duration * model_fps + 1e-9)) + 1
    picks = np.minimum(np.round(np.arange(n_out) * fps / model_fps).astype(np.int64), pos.shape[0] - 1)
    p = pos[picks]
    velocity = np.zeros_like(p)
    velocity[1:] = p[1:] - p[:-1]
    valid = np.zeros(p.shape[:2], dtype=bool)
    # visible throughout [picks[k-1], picks[k]]: running minimum over the source frames
    cum_invisible = np.concatenate([np.zeros((1, vis.shape[1]), np.int64), np.cumsum(~vis, axis=0)])
    for k in range(1, n_out):
        a, b = picks[k - 1], picks[k]
        valid[k] = (cum_invisible[b + 1] - cum_invisible[a]) == 0
    velocity[~valid] = 0.0
    return TrackRecord(velocity=velocity, valid=valid, fps=float(model_fps), source=source)


def load_saved_tracks(path: str | os.PathLike, conventions: DataConventions) -> TrackRecord:
    """Read tracks saved by any external tracker: `.npz` with `positions` (T, N, 2) (x, y) px at
    the model input size, `visibility` (T, N) and `fps`; resampled to the model fps.
    """
    p = Path(path)
    if not p.is_file():
        raise TrackDataError(f"saved tracks {p} do not exist; give an .npz with positions, visibility and fps")
    try:
        with np.load(p) as data:
            missing = [k for k in ("positions", "visibility", "fps") if k not in data]
            if missing:
                raise TrackDataError(
                    f"saved tracks {p} lack {', '.join(missing)}; save positions (T,N,2), visibility (T,N) and fps"
                )
            positions, visibility, fps = data["positions"], data["visibility"], float(data["fps"])
    except (OSError, ValueError) as err:
        raise TrackDataError(f"saved tracks {p} are unreadable ({err}); give a valid .npz") from None
    if positions.ndim == 3 and positions.shape[1] != conventions.n_points:
        raise TrackDataError(
            f"saved tracks {p} have {positions.shape[1]} points but the model uses {conventions.n_points}"
            f" ({conventions.grid}x{conventions.grid}); re-track with that grid"
        )
    return tracks_from_positions(positions, visibility, fps, conventions.fps, source=str(p))


def window_starts(n_frames: int, window: int, stride: int) -> np.ndarray:
    """Start frames of every full window of `window` frames, `stride` frames apart."""
    if n_frames < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - window + 1, stride, dtype=np.int64)


def make_windows(records: list[TrackRecord], window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of all records: velocity (W, T-1, N, 2) float32 px and valid (W, T-1, N) bool."""
    vels, valids = [], []
    for rec in records:
        starts = window_starts(rec.n_frames, window, stride)
        if starts.size == 0:
            continue
        idx = starts[:, None] + np.arange(1, window)[None, :]
        vels.append(rec.velocity[idx])
        valids.append(rec.valid[idx])
    if not vels:
        raise TrackDataError(
            f"no clip is at least {window} frames long at the model fps; give longer clips or more minutes"
        )
    return np.concatenate(vels).astype(np.float32), np.concatenate(valids)


def normalise_velocity(velocity_px: np.ndarray, valid: np.ndarray, scale_px: float) -> np.ndarray:
    """Encoder input: velocity / scale, zero where invalid (the device does the same)."""
    out = np.asarray(velocity_px, dtype=np.float32) * np.float32(1.0 / scale_px)
    return np.where(np.asarray(valid, dtype=bool)[..., None], out, np.float32(0.0)).astype(np.float32)
