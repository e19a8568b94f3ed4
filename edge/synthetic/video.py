"""Writing a synthetic recording to disk: MP4 video, ground-truth JSON, and exact grid tracks."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from edge.errors import LapsError


class SyntheticOutputError(LapsError):
    """A synthetic recording could not be written."""


def write_video(ws, mp4_path: str | os.PathLike, json_path: str | os.PathLike, progress: bool = True) -> None:
    """Render every frame of `ws` (a SyntheticWorkstation) to an MP4 (mp4v) at its fps and size,
    and its ground truth to `json_path`. A tqdm bar on stderr when `progress`."""
    from tqdm import tqdm

    mp4_path, json_path = Path(mp4_path), Path(json_path)
    for p in (mp4_path, json_path):
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SyntheticOutputError(f"cannot create directory {p.parent} ({err.strerror}); "
                                       "choose a writable --out") from None
    width, height = ws.size
    writer = cv2.VideoWriter(str(mp4_path), cv2.VideoWriter_fourcc(*"mp4v"), float(ws.fps), (width, height))
    if not writer.isOpened():
        raise SyntheticOutputError(f"OpenCV cannot open {mp4_path} for writing with the mp4v codec; "
                                   "check the path is writable and ends in .mp4")
    try:
        for frame in tqdm(ws.frames(), total=ws.n_frames, desc=f"render {mp4_path.name}", unit="frame",
                          disable=not progress, leave=False):
            writer.write(frame)
    finally:
        writer.release()
    ws.ground_truth.save(json_path)


def write_tracks(ws, npz_path: str | os.PathLike, grid: int = 20, window: int = 16) -> Path:
    """Save the exact tracks of a grid x grid lattice seeded at frame 0 and re-seeded every
    `window` frames (see `SyntheticWorkstation.grid_tracks`).

    npz keys: positions (T, N, 2) float32 (x, y) px; visible (T, N) bool; fps (float);
    window (int); seed_frames (n_windows,) int, the frame each lattice was seeded at (row t
    belongs to the lattice seeded at window * (t // window), so velocities are only meaningful
    within a window); size (width, height).
    """
    npz_path = Path(npz_path)
    positions, visible, seeds = ws.grid_tracks(grid=grid, window=window)
    np.savez_compressed(npz_path, positions=positions, visible=visible, fps=np.float64(ws.fps),
                        window=np.int64(window), seed_frames=seeds.astype(np.int64),
                        size=np.asarray(ws.size, np.int64))
    return npz_path
