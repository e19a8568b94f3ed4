"""Makers for the calibration tests: energy series, traces as `laps-edge run --record-energy`
writes them, and small video files (sizes kept small: the folder must run in under a minute)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

FPS = 10.0


def bursty_series(seed: int, n_steps: int = 600, separable: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energy, proxy, active) over n_steps: rest and activity blocks of 10-40 steps.

    separable: the energy and the proxy both follow the blocks (low at rest, high in activity);
    otherwise both are independent unimodal noise with no relation to each other or the blocks.
    """
    rng = np.random.default_rng(seed)
    active = np.zeros(n_steps, bool)
    t, on = 0, False
    while t < n_steps:
        length = int(rng.integers(10, 40))
        active[t:t + length] = on
        t += length
        on = not on
    if separable:
        proxy = np.where(active, 2.0, 0.3) + rng.normal(0, 0.15, n_steps)
        energy = np.where(active, 1.5, 0.2) + rng.normal(0, 0.1, n_steps)
    else:
        proxy = rng.gamma(4.0, 0.25, n_steps)
        energy = rng.gamma(4.0, 0.25, n_steps)
    return np.abs(energy), np.abs(proxy), active


def write_trace(path: Path, energy: np.ndarray, proxy: np.ndarray, fps: float = FPS,
                model_version: str = "velocity-energy", source: str = "test") -> Path:
    """An energy.npz with the keys `laps-edge run --record-energy` writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path, energy=np.asarray(energy, np.float64), smoothed=np.asarray(energy, np.float64),
        codes=np.full(len(energy), -1, np.int64), velocity_energy=np.asarray(proxy, np.float64), fps=fps,
        model_version=model_version, params=json.dumps({"theta_on": 0.5}), source=source,
    )
    return path


def active_segments_s(active: np.ndarray, fps: float = FPS) -> list[list[float]]:
    """[[start_s, end_s], ...] of the True runs of a per-step mask."""
    m = np.concatenate([[False], active, [False]]).astype(np.int8)
    d = np.diff(m)
    return [[s / fps, e / fps] for s, e in zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1))]


def write_video(path: Path, fps: float, size: tuple[int, int], frames: int, seed: int = 0) -> Path:
    """A small MP4 of a textured square that moves in bursts (enough for the tracker)."""
    w, h = size
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    x = 0.0
    for i in range(frames):
        if (i // 10) % 2:
            x += 2.0
        frame = np.roll(texture, int(x), axis=1)
        writer.write(frame)
    writer.release()
    return path
