"""The distilled ONNX student tracker (backend "onnx"): the same contract as Lucas-Kanade.

The exported graph (`laps-export distill-tracker` + `laps-export onnx`, see export/tracker) is
stateless: everything that persists between frames goes in and comes out as tensors, and this
class keeps them between calls:

    inputs   image (1, 1, H, W) float32 grey 0..255; prev_feat0..K (the previous call's feat0..K,
             opaque to this class: in the current export flat tables of the feature pyramid,
             and with an image-based sub-pixel step of the blurred standardised frame; the
             first bundles carried (1, C, h, w) maps. Zeros of the graph's own shapes seed them);
             points (N, 2), velocity (N, 2) px; hidden (N, Hs); anchor (N, A);
             fresh (N, 1) 1.0 where the point was (re-)seeded on the previous frame
    outputs  points_out, velocity_out, hidden_out, anchor_out, visibility_logit (N,), feat0..K,
             and where the graph has a sub-pixel stage match_residual (N,) (how well the matched
             patch explains the previous frame's; absent from the first bundles)

Contract (edge.tracking.base, as `LucasKanadeTracker`): the first call after construction or
`reset()` seeds the grid (velocity 0, visible True); later, a point is visible when the
student's visibility logit is >= `visibility_threshold` (the student was trained to say "within
2 px of the truth"), its match residual is < `residual_threshold` (0: no such check; the
student's counterpart of LK's forward-backward check) - or < `moving_residual_threshold` when
the point moved more than `moving_px` px this step (0: the same cut for every point) - and its
estimate is finite and inside the frame. The thresholds come from the model's metadata (chosen
on validation seeds, `laps-export tracker-keep-rule`, and written at export).
An invisible point is re-seeded at its grid position: velocity 0, visible False, and `fresh`
on the next call (its anchor is taken again and its hidden state restarts). A frame whose size
differs from the model's is refused (the graph's shapes are fixed; the pipeline resizes frames).

With a region of interest (`edge.tracking.roi`), the grid points outside it are invisible on
every step (so re-seeded every step: grid position, velocity 0, fresh state). The graph's shapes
are fixed at N points, so it still computes them: unlike LK, a region saves no time here.

The graph runs through `edge.inference.create_backend` (TensorRT -> CUDA -> CPU).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ConfigError, ModelError
from edge.tracking.base import PointTracker, TrackStep, grid_points
from edge.tracking.lk import to_grey
from edge.tracking.roi import RegionOfInterest

if TYPE_CHECKING:
    from edge.model import ModelDirectory

log = logging.getLogger(__name__)

#: file name of the tracker inside a model directory (optional; docs/formats.md#model-bundle)
TRACKER_NAME = "tracker.onnx"
#: key of the tracker's metadata JSON in the ONNX file's metadata_props
TRACKER_METADATA_KEY = "laps.tracker"
TRACKER_SCHEMA = "laps.tracker-metadata/1"
#: per-point state tensors, in graph order after the maps
STATE_NAMES = ("points", "velocity", "hidden", "anchor", "fresh")


def input_names(n_maps: int) -> tuple[str, ...]:
    """The graph's inputs: image, prev_feat0..prev_feat{n_maps-1}, then STATE_NAMES."""
    return ("image", *(f"prev_feat{i}" for i in range(n_maps)), *STATE_NAMES)


#: the optional last output: the sub-pixel stage's match residual per point (N,)
RESIDUAL_OUTPUT = "match_residual"


def output_names(n_maps: int, residual: bool = False) -> tuple[str, ...]:
    """The graph's outputs: points_out, velocity_out, hidden_out, anchor_out, visibility_logit,
    feat0..., and with `residual` (a graph with a sub-pixel stage) RESIDUAL_OUTPUT last."""
    return ("points_out", "velocity_out", "hidden_out", "anchor_out", "visibility_logit",
            *(f"feat{i}" for i in range(n_maps)), *((RESIDUAL_OUTPUT,) if residual else ()))


@dataclass(frozen=True)
class TrackerMetadata:
    """What the device must agree on with an exported student (embedded in tracker.onnx).

    n_points, grid, grid_margin: the seed lattice (edge.tracking.base.grid_points).
    input_size: (width, height) px of the frames. fps: the rate it was trained at.
    convention: "xy". hidden, anchor_dim: state sizes. visibility_threshold: logit cut.
    residual_threshold: a point whose match residual reaches it is dropped (0: no check; bundles
    before it have none). moving_residual_threshold: the cut instead for a point that moved more
    than `moving_px` px this step (0: `residual_threshold` for every point; bundles before
    version 9 have none). The sub-pixel stage matches such points in a smaller window, whose
    normalised residual is not on the same scale, and they are where tracks fail.
    model_version, created, parameters, flops_per_frame, training, architecture: provenance.
    """

    n_points: int
    grid: int
    grid_margin: float
    input_size: tuple[int, int]
    fps: float
    hidden: int
    anchor_dim: int
    convention: str = "xy"
    visibility_threshold: float = 0.0
    residual_threshold: float = 0.0
    moving_residual_threshold: float = 0.0
    moving_px: float = 2.0
    model_version: str = ""
    created: str = ""
    parameters: int = 0
    flops_per_frame: int = 0
    training: dict = field(default_factory=dict)
    architecture: dict = field(default_factory=dict)
    schema: str = TRACKER_SCHEMA

    def to_json(self) -> str:
        d = dict(self.__dict__)
        d["input_size"] = list(self.input_size)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, where: str) -> "TrackerMetadata":
        try:
            d: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelError(f"{where}: tracker metadata is not JSON ({err}); re-export the tracker") from None
        if not isinstance(d, dict) or d.get("schema") != TRACKER_SCHEMA:
            found = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise ModelError(f"{where}: tracker metadata schema {found!r}, expected {TRACKER_SCHEMA!r}; "
                             "re-export the tracker with this version of laps-export")
        known = set(cls.__dataclass_fields__)
        try:
            d = {k: v for k, v in d.items() if k in known}
            d["input_size"] = tuple(int(v) for v in d["input_size"])
            return cls(**d)
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{where}: tracker metadata is incomplete ({err}); re-export the tracker") from None


def find_tracker_model(model: "str | os.PathLike | ModelDirectory") -> Path:
    """tracker.onnx itself, or the one inside a model directory (a path, verified via its
    manifest, or an already verified `ModelDirectory`, which is not hashed again)."""
    from edge.model import ModelDirectory, load_model_directory

    if isinstance(model, ModelDirectory):
        md = model
    else:
        p = Path(model)
        if p.is_file():
            return p
        if not p.is_dir():
            raise ModelError(f"tracker model {p} does not exist; give tracker.onnx or a model directory that holds one")
        md = load_model_directory(p)  # verifies every listed file's sha256
    if TRACKER_NAME not in md.manifest.get("files", {}):
        raise ConfigError(
            f"model directory {md.path} has no {TRACKER_NAME}; use --tracker lk, or add a distilled tracker with "
            "`laps-export onnx --checkpoint TRACKER.pt --out DIR`"
        )
    return md.path / TRACKER_NAME


def keep_mask(logit: np.ndarray, residual: np.ndarray | None, visibility_threshold: float,
              residual_threshold: float, motion: np.ndarray | None = None,
              moving_residual_threshold: float = 0.0, moving_px: float = 2.0) -> np.ndarray:
    """The student's keep rule on raw outputs, flattened to (K,) bool: logit >= `visibility_threshold`
    and residual below its cut (a NaN residual fails): `moving_residual_threshold` where `motion`
    (px the point moved this step, same shape) exceeds `moving_px` and that cut is > 0, else
    `residual_threshold` (0: no residual check there). residual None: a graph without one. One
    definition for the device and for choosing the thresholds (`export.tracker.keep_rule`)."""
    keep = logit.reshape(-1) >= visibility_threshold
    if residual is None:
        return keep
    r = residual.reshape(-1)
    ok = r < residual_threshold if residual_threshold > 0 else np.ones(r.shape, bool)
    if moving_residual_threshold > 0 and motion is not None:
        ok = np.where(motion.reshape(-1) > moving_px, r < moving_residual_threshold, ok)
    return keep & ok


class OnnxStudentTracker(PointTracker):
    """The distilled student through ONNX Runtime, meeting the `PointTracker` contract.

    model: tracker.onnx or a model directory holding one. grid, margin: the lattice the caller
    expects (None: the model's own); a mismatch is a ConfigError. providers: as
    `edge.inference.create_backend`. visibility_threshold: logit cut; residual_threshold: match
    residual cut (0: none); moving_residual_threshold: the cut for points that moved more than the
    model's `moving_px` this step (0: residual_threshold for all); None: the model's own, from its
    metadata. roi: a `RegionOfInterest`; grid points outside it are always invisible (None: none).

    After each `step`: `last_visibility_logit` (the raw logit the keep rule reads; its sigmoid is
    `last_visibility_prob`) and `last_match_residual` (N,) float32 (NaN on a seeding step, and the
    residual NaN for a graph without one) and `last_reseeded` (N,) bool, as LK's `last_reseeded`.
    """

    def __init__(self, model: "str | os.PathLike | ModelDirectory", grid: int | None = None, margin: float | None = None,
                 providers: str = "auto", visibility_threshold: float | None = None,
                 residual_threshold: float | None = None, moving_residual_threshold: float | None = None,
                 roi: RegionOfInterest | None = None, **backend_options: Any) -> None:
        from edge.inference import create_backend

        path = find_tracker_model(model)
        self.backend = create_backend(path, providers=providers, **backend_options)
        text = self.backend.custom_metadata.get(TRACKER_METADATA_KEY)
        if text is None:
            raise ModelError(f"{path} carries no {TRACKER_METADATA_KEY!r} metadata; it is not a tracker exported "
                             "by `laps-export onnx`")
        self.metadata = meta = TrackerMetadata.from_json(text, str(path))
        if grid is not None and int(grid) != meta.grid:
            raise ConfigError(f"tracker {path} tracks a {meta.grid}x{meta.grid} grid but the model expects "
                              f"{grid}x{grid}; export the tracker for that grid or use --tracker lk")
        if margin is not None and abs(float(margin) - meta.grid_margin) > 1e-6:
            raise ConfigError(f"tracker {path} seeds with margin {meta.grid_margin:g} but the model expects "
                              f"{float(margin):g}; export the tracker with that margin or use --tracker lk")
        self.n_maps = sum(1 for name in self.backend.input_shapes if name.startswith("prev_feat"))
        missing = [n for n in input_names(self.n_maps) if n not in self.backend.input_shapes]
        if missing:
            raise ModelError(f"{path} lacks input {missing[0]!r}; re-export the tracker")
        self.path = path
        self.grid = meta.grid
        self.margin = meta.grid_margin
        self.n_points = meta.n_points
        self.input_size = meta.input_size
        self.visibility_threshold = float(meta.visibility_threshold if visibility_threshold is None
                                          else visibility_threshold)
        self.residual_threshold = float(meta.residual_threshold if residual_threshold is None
                                        else residual_threshold)
        self.moving_residual_threshold = float(meta.moving_residual_threshold if moving_residual_threshold is None
                                               else moving_residual_threshold)
        self.moving_px = float(meta.moving_px)
        self.has_residual = RESIDUAL_OUTPUT in self.backend.output_names
        for name in ("residual_threshold", "moving_residual_threshold"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ConfigError(f"{name} {value:g} is not a number >= 0; use e.g. 0.6, or 0 for no such check")
            if value > 0 and not self.has_residual:
                raise ConfigError(f"tracker {path} has no {RESIDUAL_OUTPUT!r} output, so {name} {value:g} cannot "
                                  "apply; use 0 or re-export the tracker")
        self.providers_in_use = list(self.backend.providers_in_use)
        w, h = self.input_size
        self._seeds = grid_points(w, h, self.grid, self.margin)
        self.roi = roi
        #: (N,) bool: grid points inside the region (all without one)
        self.active = roi.mask(self._seeds, w, h) if roi is not None else np.ones(self.n_points, bool)
        self._zero_feats = {f"prev_feat{i}": np.zeros(self.backend.input_shapes[f"prev_feat{i}"], np.float32)
                            for i in range(self.n_maps)}
        self.last_visibility_logit = np.full(self.n_points, np.nan, np.float32)
        self.last_match_residual = np.full(self.n_points, np.nan, np.float32)
        self.last_reseeded = np.zeros(self.n_points, bool)
        self.reset()

    @property
    def last_visibility_prob(self) -> np.ndarray:
        """Sigmoid of `last_visibility_logit`, (N,) float32; computed on request, not every frame."""
        with np.errstate(over="ignore"):
            return (1.0 / (1.0 + np.exp(-self.last_visibility_logit))).astype(np.float32)

    def reset(self) -> None:
        self._state: dict[str, np.ndarray] | None = None

    def step(self, image: np.ndarray) -> TrackStep:
        """Advance by one frame. `image`: (H, W, 3) uint8 BGR or (H, W) uint8 grey at the model size."""
        grey = to_grey(image)
        w, h = self.input_size
        if grey.shape != (h, w):
            raise ValueError(
                f"the ONNX tracker takes {w}x{h} frames, got {grey.shape[1]}x{grey.shape[0]}; resize frames to the "
                "model input size (the pipeline does) or export a tracker for this size"
            )
        frame = grey.astype(np.float32)[None, None]
        n = self.n_points
        if self._state is None:
            return self._seed(frame)
        s = self._state
        out = self.backend.run({"image": frame, **{f"prev_feat{i}": s[f"feat{i}"] for i in range(self.n_maps)},
                                "points": s["points"], "velocity": s["velocity"], "hidden": s["hidden"],
                                "anchor": s["anchor"], "fresh": s["fresh"]})
        p0 = s["points"]
        p1 = out["points_out"]
        logit = out["visibility_logit"].reshape(n)
        inside = (np.isfinite(p1).all(axis=1) & (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1)
                  & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1))
        residual = out[RESIDUAL_OUTPUT].reshape(n) if self.has_residual else np.full(n, np.nan, np.float32)
        moved = p1 - p0  # this step's displacement: the velocity of kept points, and the moving cut's motion
        motion = np.hypot(moved[:, 0], moved[:, 1]) if self.moving_residual_threshold > 0 else None
        visible = inside & self.keeps(logit, residual, motion) & self.active
        points = np.where(visible[:, None], p1, self._seeds).astype(np.float32)
        velocity = np.where(visible[:, None], moved, 0.0).astype(np.float32)
        self._state = {
            **{f"feat{i}": out[f"feat{i}"] for i in range(self.n_maps)},
            "points": points, "velocity": velocity,
            "hidden": np.where(visible[:, None], out["hidden_out"], 0.0).astype(np.float32),
            # No copy: the graph's output is already float32, and with the drift correction's seed
            # window this is the largest per-point state (N x anchor_dim).
            "anchor": np.asarray(out["anchor_out"], dtype=np.float32),
            "fresh": (~visible).astype(np.float32)[:, None],
        }
        self.last_visibility_logit = logit.astype(np.float32, copy=False)
        self.last_match_residual = residual.astype(np.float32)
        self.last_reseeded = ~visible & self.active
        return TrackStep(points=points.copy(), visible=visible, velocity=velocity)

    def keeps(self, logit: np.ndarray, residual: np.ndarray | None, motion: np.ndarray | None = None) -> np.ndarray:
        """The keep rule on a step's raw outputs (N,) -> (N,) bool, before the inside-the-frame
        test (`keep_mask` with this tracker's thresholds): logit >= `visibility_threshold` and the
        residual below its cut (a NaN residual, from a degenerate patch, fails), the moving cut
        where `motion` (px moved this step, (N,)) exceeds `moving_px`. residual None: a graph
        without one."""
        return keep_mask(logit, residual, self.visibility_threshold, self.residual_threshold, motion,
                         self.moving_residual_threshold, self.moving_px)

    def track_pair(self, previous: np.ndarray, current: np.ndarray, points: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """One step of arbitrary `points` (N, 2) px from `previous` to `current` (frames as for
        `step`) with fresh state: anchors taken on `previous`, no motion history. Returns the
        raw estimates (N, 2) float32 and visibility logits (N,). The stream state is untouched.
        For forward-backward checks (benchmarks/tracking.py)."""
        n = self.n_points
        pts = np.asarray(points, np.float32).reshape(n, 2)
        zeros = self._blank_point_state()
        first = self.backend.run({"image": to_grey(previous).astype(np.float32)[None, None], **self._zero_feats,
                                  "points": pts, **zeros})
        maps = {f"prev_feat{i}": first[f"feat{i}"] for i in range(self.n_maps)}
        out = self.backend.run({"image": to_grey(current).astype(np.float32)[None, None], **maps,
                                "points": pts, **zeros})
        return out["points_out"].astype(np.float32), out["visibility_logit"].reshape(n)

    def _seed(self, frame: np.ndarray) -> TrackStep:
        """Place the grid: one graph run only for this frame's features; every point visible, velocity 0."""
        n = self.n_points
        blank = self._blank_point_state()
        out = self.backend.run({"image": frame, **self._zero_feats, "points": self._seeds, **blank})
        self._state = {**{f"feat{i}": out[f"feat{i}"] for i in range(self.n_maps)},
                       "points": self._seeds.copy(), **blank}
        self.last_visibility_logit = np.full(n, np.nan, np.float32)
        self.last_match_residual = np.full(n, np.nan, np.float32)
        self.last_reseeded = self.active.copy()
        return TrackStep(points=self._seeds.copy(), visible=self.active.copy(),
                         velocity=np.zeros((n, 2), np.float32))

    def _blank_point_state(self) -> dict[str, np.ndarray]:
        """Per-point state of freshly seeded points: no motion, no history, anchors still to take."""
        n, meta = self.n_points, self.metadata
        return {"velocity": np.zeros((n, 2), np.float32), "hidden": np.zeros((n, meta.hidden), np.float32),
                "anchor": np.zeros((n, meta.anchor_dim), np.float32), "fresh": np.ones((n, 1), np.float32)}
