"""Teachers of the distilled tracker: where the training targets come from.

Every teacher yields a `TeacherClip`: grey frames at the model fps and input size plus
*continuous* tracks over them,

    positions  (T, M, 2) float32, (x, y) px at the model input size (edge.tracking.base),
    visible    (T, M) bool, True where the teacher vouches for the position,

where column m is ONE physical surface point for as long as it is visible (a teacher that loses a
point and starts again starts a new column). Training windows are cut from them by
`export.tracker.dataset`.

(a) `synthetic_clip`: the synthetic workstation's EXACT trajectories (`SyntheticWorkstation.
    trajectories`), queried per window at random points, so it has no `TeacherClip` form of its
    own but the same window form (see dataset.synthetic_windows).
(b) `lk_pseudo_labels`: OpenCV Lucas-Kanade with the forward-backward check (`edge.tracking.lk`,
    the device's CPU backend) on real, unlabelled video. A point counts only while it passes the
    check (|forward-backward| <= 1 px); when LK re-seeds a point its column ends and a new one
    starts at the grid position.
(c) `saved_tracks_clip`: tracks computed elsewhere (e.g. CoTracker on a workstation) saved as
    `.npz` — the SAVED-TRACKS FORMAT:

        positions   (T, N, 2) float32  (x, y) px in the frame of the video resized to the model
                                       input size (320 x 240 by default), origin at the top-left
                                       pixel's centre
        visibility  (T, N)    bool     True where the point is visible (not occluded)
        fps         ()        float    the rate of the T rows; row t is the video frame at t / fps

    plus the video they were computed on (any `open_source` spec). Rows are matched to the
    video's frames by time after both are resampled to the model fps. Unlike (b), a column may
    become visible again after an occlusion (CoTracker's tracks do); windows use only the
    visible rows of each column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ConfigError, LapsError


class TeacherDataError(LapsError):
    """Teacher data (saved tracks, video) is missing, malformed or does not match."""


@dataclass
class TeacherClip:
    """Frames (T, H, W) uint8 grey at the model fps and input size; continuous tracks
    positions (T, M, 2) float32 px and visible (T, M) bool; `source` names where they came from."""

    frames: np.ndarray
    positions: np.ndarray
    visible: np.ndarray
    fps: float
    source: str

    def __post_init__(self) -> None:
        t = self.frames.shape[0]
        if self.positions.shape[:1] != (t,) or self.visible.shape != self.positions.shape[:2]:
            raise TeacherDataError(
                f"teacher {self.source}: {t} frames but positions {self.positions.shape} and visibility "
                f"{self.visible.shape}; they must be (T, M, 2) and (T, M) with the same T"
            )


def read_grey_frames(spec: str, fps: float, size: tuple[int, int], max_frames: int | None = None) -> np.ndarray:
    """Frames of any source spec at `fps`, resized to `size` (w, h), as (T, H, W) uint8 grey."""
    from edge.sources.factory import open_source
    from edge.tracking.lk import to_grey

    frames = []
    with open_source(spec, fps=fps, size=size) as src:
        for frame in src:
            frames.append(to_grey(frame.image))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise TeacherDataError(f"source {spec} delivered no frames; check the file or stream")
    return np.stack(frames)


def lk_pseudo_labels(spec: str, fps: float, size: tuple[int, int], grid: int = 20, margin: float = 1.0 / 20.0,
                     max_frames: int | None = None, frames: np.ndarray | None = None) -> TeacherClip:
    """Teacher (b): LK forward-backward tracks of a real video as continuous columns.

    The LK tracker runs exactly as on the device (grid, margin, FB threshold 1 px). Each of its N
    slots starts a new column whenever it is (re-)seeded; a column is visible from its seed frame
    until LK drops it. Columns that never survive one step carry no motion and are removed.
    `frames` (T, H, W) uint8 grey may be given instead of reading `spec` again.
    """
    from edge.tracking.lk import LucasKanadeTracker

    if frames is None:
        frames = read_grey_frames(spec, fps, size, max_frames)
    tracker = LucasKanadeTracker(grid=grid, margin=margin)
    t_total, n = frames.shape[0], grid * grid
    slot_col = np.full(n, -1, np.int64)
    # Grow in blocks: the number of columns is not known in advance.
    cap = 4 * n
    pos = np.zeros((t_total, cap, 2), np.float32)
    vis = np.zeros((t_total, cap), bool)
    used = 0
    for t in range(t_total):
        step = tracker.step(frames[t])
        reseeded = tracker.last_reseeded
        new = np.flatnonzero(reseeded | (slot_col < 0))
        if used + len(new) > cap:
            grow = max(cap, len(new))
            pos = np.concatenate([pos, np.zeros((t_total, grow, 2), np.float32)], axis=1)
            vis = np.concatenate([vis, np.zeros((t_total, grow), bool)], axis=1)
            cap += grow
        slot_col[new] = np.arange(used, used + len(new))
        used += len(new)
        pos[t, slot_col] = step.points
        vis[t, slot_col] = True  # a just-seeded point is exactly where it was placed
    pos, vis = pos[:, :used], vis[:, :used]
    lasting = vis.sum(axis=0) >= 2
    return TeacherClip(frames=frames, positions=pos[:, lasting], visible=vis[:, lasting], fps=float(fps),
                       source=f"lk:{spec}")


def load_saved_tracks(path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Read a saved-tracks `.npz` (format in the module docstring): positions, visibility, fps."""
    p = Path(path)
    if not p.is_file():
        raise TeacherDataError(f"saved tracks {p} do not exist; give an .npz with positions, visibility and fps")
    try:
        with np.load(p) as data:
            missing = [k for k in ("positions", "visibility", "fps") if k not in data]
            if missing:
                raise TeacherDataError(
                    f"saved tracks {p} lack {', '.join(missing)}; save positions (T,N,2), visibility (T,N) and fps"
                )
            positions = np.asarray(data["positions"], np.float32)
            visibility = np.asarray(data["visibility"]).astype(bool)
            fps = float(data["fps"])
    except (OSError, ValueError) as err:
        raise TeacherDataError(f"saved tracks {p} are unreadable ({err}); give a valid .npz") from None
    if positions.ndim != 3 or positions.shape[2] != 2 or visibility.shape != positions.shape[:2]:
        raise TeacherDataError(
            f"saved tracks {p} have positions {positions.shape} and visibility {visibility.shape}; "
            "expected (T, N, 2) and (T, N)"
        )
    if not fps > 0:
        raise TeacherDataError(f"saved tracks {p} have fps {fps}; it must be > 0")
    return positions, visibility, fps


def saved_tracks_clip(tracks_path: str | Path, video_spec: str, fps: float, size: tuple[int, int]) -> TeacherClip:
    """Teacher (c): saved tracks + the video they were computed on, both at the model fps.

    Track rows are picked by time (nearest row to k / fps), as the frame resampler picks frames.
    A position counts as visible only if finite and inside the frame.
    """
    positions, visibility, src_fps = load_saved_tracks(tracks_path)
    frames = read_grey_frames(video_spec, fps, size)
    duration = (positions.shape[0] - 1) / src_fps
    n_rows = int(np.floor(duration * fps + 1e-9)) + 1
    t = min(n_rows, frames.shape[0])
    if t < 2:
        raise TeacherDataError(
            f"saved tracks {tracks_path} and video {video_spec} overlap in {t} frame(s) at {fps:g} fps; "
            "give the video the tracks were computed on"
        )
    picks = np.minimum(np.round(np.arange(t) * src_fps / fps).astype(np.int64), positions.shape[0] - 1)
    pos, vis = positions[picks], visibility[picks]
    w, h = size
    vis = vis & np.isfinite(pos).all(axis=2) & (pos[..., 0] >= 0) & (pos[..., 0] <= w - 1) \
        & (pos[..., 1] >= 0) & (pos[..., 1] <= h - 1)
    pos = np.nan_to_num(pos, nan=0.0, posinf=0.0, neginf=0.0)
    return TeacherClip(frames=frames[:t], positions=pos, visible=vis, fps=float(fps),
                       source=f"tracks:{tracks_path}@{video_spec}")


def check_training_seed(seed: int, role: str) -> None:
    """Seed policy: TRAINING 100-199, VALIDATION 500-599; HELD-OUT 900-999 is refused here."""
    allowed = {"training": (100, 199), "validation": (500, 599)}[role]
    if not allowed[0] <= seed <= allowed[1]:
        raise ConfigError(
            f"{role} seed {seed} is outside {allowed[0]}-{allowed[1]}; synthetic seeds are TRAINING 100-199, "
            "VALIDATION 500-599 (HELD-OUT 900-999 is only for benchmarks)"
        )
