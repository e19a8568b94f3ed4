"""Tracks for training, from any frame source through any tracker backend, cached on disk.

`cached_tracks(spec, conventions, tracker)` returns a `TrackRecord` at the model fps and input
size. The first call runs the source through the tracker (progress bar) and saves
`<cache_dir>/<key>.npz`; the key is a sha256 over the source spec, the tracker's full
configuration and the model conventions, so any change re-tracks and nothing stale is reused.

Sources: a frame-source spec (`edge.sources.factory.open_source`: file path, URL,
`synthetic://assembly?seed=..&minutes=..&nuisances=..`) or a saved-tracks `.npz`
(positions (T, N, 2), visibility (T, N), fps), which needs no tracker.
Trackers: "lk" (OpenCV Lucas-Kanade, the device's CPU backend) and "exact" (the synthetic
workstation's exact trajectories, `synthetic://` specs only; the grid is re-seeded every T-1
frames, as the paper re-seeds CoTracker at each window start).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from edge.errors import ConfigError
from export.tokenizer.windows import DataConventions, TrackDataError, TrackRecord, load_saved_tracks

log = logging.getLogger(__name__)

#: Bump when the cached arrays' meaning changes; old entries are then never read.
CACHE_FORMAT = 1
TRACKERS = ("lk", "exact")
DEFAULT_CACHE_DIR = Path(".cache") / "tracks"


def synthetic_spec(seed: int, minutes: float, nuisances: str = "all") -> str:
    """The source spec of one synthetic workstation recording."""
    return f"synthetic://assembly?seed={int(seed)}&minutes={minutes:g}&nuisances={nuisances}"


def parse_seed_range(text: str) -> list[int]:
    """'100-109' -> [100, ..., 109]; '100,105,107' -> those; '100' -> [100]."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                a, b = (int(v) for v in part.split("-", 1))
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            elif part:
                seeds.append(int(part))
    except ValueError:
        raise ConfigError(f"seed list {text!r} is malformed; write e.g. 100-109 or 100,102,105") from None
    if not seeds:
        raise ConfigError(f"seed list {text!r} is empty; write e.g. 100-109")
    return seeds


def tracker_config(tracker: str, conventions: DataConventions) -> dict:
    """The full configuration of a tracker backend (part of the cache key)."""
    if tracker == "lk":
        from edge.tracking.lk import LucasKanadeTracker

        trk = LucasKanadeTracker(grid=conventions.grid, margin=conventions.grid_margin)
        return {
            "backend": "lk", "grid": trk.grid, "margin": trk.margin, "win_size": trk.win_size,
            "max_level": trk.max_level, "fb_threshold_px": trk.fb_threshold_px,
            "min_eig_threshold": trk.min_eig_threshold, "criteria": list(trk.criteria),
        }
    if tracker == "exact":
        return {"backend": "exact", "grid": conventions.grid, "margin": conventions.grid_margin,
                "reseed_every": conventions.steps}
    raise ConfigError(f"tracker {tracker!r} is unknown; use one of {', '.join(TRACKERS)}")


def cache_key(spec: str, tracker: str, conventions: DataConventions) -> str:
    """sha256 identifying one clip's tracks under one tracker and one set of conventions."""
    if _is_saved_tracks(spec):
        p = Path(spec)
        ident: dict = {"saved_tracks": str(p.resolve()), "sha256": _sha256(p)}
    else:
        ident = {"spec": spec, "tracker": tracker_config(tracker, conventions)}
        local = Path(spec)
        if local.is_file():
            # A replaced video under the same name must not reuse the old tracks.
            st = local.stat()
            ident["file"] = {"path": str(local.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        if spec.startswith("synthetic:"):
            # A changed generator renders other pixels for the same spec: never reuse its tracks.
            from edge.synthetic import GENERATOR_VERSION

            ident["generator"] = GENERATOR_VERSION
    ident.update(
        format=CACHE_FORMAT, fps=conventions.fps, input_size=list(conventions.input_size),
        grid=conventions.grid, grid_margin=conventions.grid_margin, convention=conventions.convention,
    )
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


def cached_tracks(
    spec: str,
    conventions: DataConventions,
    tracker: str = "lk",
    cache_dir: str | os.PathLike = DEFAULT_CACHE_DIR,
    progress: bool = True,
) -> tuple[TrackRecord, str]:
    """(tracks of `spec`, cache key), tracking only when the cache has no entry for the key."""
    if _is_saved_tracks(spec):
        return load_saved_tracks(spec, conventions), cache_key(spec, tracker, conventions)
    key = cache_key(spec, tracker, conventions)
    path = Path(cache_dir) / f"{key}.npz"
    if path.is_file():
        try:
            with np.load(path) as data:
                return TrackRecord(velocity=data["velocity"], valid=data["valid"], fps=float(data["fps"]),
                                   source=spec), key
        except (OSError, ValueError, KeyError) as err:
            log.warning("track cache entry %s is unreadable (%s); re-tracking", path, err)
    record = track_source(spec, conventions, tracker, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, velocity=record.velocity, valid=record.valid, fps=record.fps)
    os.replace(tmp, path)  # atomic: an interrupted run never leaves a half-written entry
    return record, key


def track_source(spec: str, conventions: DataConventions, tracker: str = "lk", progress: bool = True) -> TrackRecord:
    """Run a frame source through a tracker at the model fps and size (no cache)."""
    if tracker == "exact":
        return _exact_tracks(spec, conventions, progress)
    if tracker != "lk":
        raise ConfigError(f"tracker {tracker!r} is unknown; use one of {', '.join(TRACKERS)}")
    from tqdm import tqdm

    from edge.sources.factory import open_source
    from edge.tracking.lk import LucasKanadeTracker

    trk = LucasKanadeTracker(grid=conventions.grid, margin=conventions.grid_margin)
    velocity, valid = [], []
    with open_source(spec, fps=conventions.fps, size=tuple(conventions.input_size)) as src:
        total = src.frame_count
        for i, frame in enumerate(tqdm(src, total=total, desc=f"tracking {_short(spec)}", disable=not progress,
                                       unit="frame", leave=False)):
            step = trk.step(frame.image)
            velocity.append(step.velocity.astype(np.float32))
            # The seeding frame has no step; re-seeded points carry no displacement either.
            ok = step.visible.astype(bool) & (i > 0)
            reseeded = getattr(trk, "last_reseeded", None)
            if reseeded is not None:
                ok &= ~np.asarray(reseeded, dtype=bool)
            valid.append(ok)
    if not velocity:
        raise TrackDataError(f"source {spec} delivered no frames; check the spec")
    vel = np.stack(velocity)
    val = np.stack(valid)
    vel[~val] = 0.0
    return TrackRecord(velocity=vel, valid=val, fps=float(conventions.fps), source=spec)


def _exact_tracks(spec: str, conventions: DataConventions, progress: bool) -> TrackRecord:
    """Exact grid trajectories of a synthetic recording, re-seeded every T-1 frames."""
    from tqdm import tqdm

    from edge.sources.synthetic import SyntheticSource
    from edge.tracking.base import grid_points

    if not str(spec).startswith("synthetic://"):
        raise ConfigError(f"tracker 'exact' needs a synthetic:// source, got {spec!r}; use --tracker lk")
    source = SyntheticSource.from_uri(spec)
    ws = source.workstation
    w, h = ws.size
    sx, sy = conventions.input_size[0] / w, conventions.input_size[1] / h
    n_src = ws.n_frames
    # Model-fps frame k shows the source frame nearest in time (as FpsResampler picks).
    picks = np.round(np.arange(int(np.floor((n_src - 1) / ws.fps * conventions.fps)) + 1)
                     * ws.fps / conventions.fps).astype(np.int64)
    picks = np.minimum(picks, n_src - 1)
    grid_xy = grid_points(conventions.input_size[0], conventions.input_size[1], conventions.grid,
                          conventions.grid_margin)
    seeds_src = grid_xy / np.array([sx, sy], np.float32)
    velocity = np.zeros((len(picks), conventions.n_points, 2), np.float32)
    valid = np.zeros((len(picks), conventions.n_points), bool)
    chunk = conventions.steps
    for k0 in tqdm(range(0, len(picks) - 1, chunk), desc=f"exact tracks {_short(spec)}", disable=not progress,
                   leave=False):
        idx = picks[k0:k0 + chunk + 1]
        pos, vis = ws.trajectories(seeds_src, int(idx[0]), idx)
        pos = np.asarray(pos, np.float32) * np.array([sx, sy], np.float32)
        vis = np.asarray(vis, bool)
        velocity[k0 + 1:k0 + len(idx)] = pos[1:] - pos[:-1]
        valid[k0 + 1:k0 + len(idx)] = vis[1:] & vis[:-1]
    velocity[~valid] = 0.0
    return TrackRecord(velocity=velocity, valid=valid, fps=float(conventions.fps), source=spec)


def _is_saved_tracks(spec: str) -> bool:
    return str(spec).lower().endswith(".npz")


def _sha256(path: Path) -> str:
    if not path.is_file():
        raise TrackDataError(f"saved tracks {path} do not exist; give an .npz with positions, visibility and fps")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _short(spec: str) -> str:
    return spec if len(spec) <= 48 else "…" + spec[-47:]
