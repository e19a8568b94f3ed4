"""The one source of truth for a tokenizer's conventions: `ModelMetadata`.

Training, export, calibration and the device all read fps, window length, point count, input
size, coordinate convention and velocity normalisation from here (embedded in the ONNX file's
`metadata_props` under the key `laps.metadata` and in the model directory's `manifest.json`).
Nothing re-derives them.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

import numpy as np

from edge.errors import ModelError

#: Version of the metadata layout; a model written with a newer layout is refused.
METADATA_SCHEMA = "laps.tokenizer-metadata/1"

#: Key under which the metadata JSON is stored in the ONNX file's metadata_props.
ONNX_METADATA_KEY = "laps.metadata"

#: The only coordinate convention this project uses: (x, y) pixels, x right, y down.
CONVENTION_XY = "xy"


@dataclass(frozen=True)
class ModelMetadata:
    """Everything a consumer of a tokenizer must agree on.

    fps:               model frame rate (frames per second) the velocities are measured at.
    window:            T, frames per window; the encoder sees T-1 velocity steps.
    n_points:          N, tracked points (grid * grid).
    grid:              points per side of the query lattice (N = grid**2).
    grid_margin:       normalised border of the lattice (see `edge.tracking.base.grid_points`).
    input_size:        (width, height) in pixels of the frames given to the tracker.
    convention:        coordinate order of points and velocities; always "xy".
    velocity_scale_px: encoder input = velocity_px_per_step / velocity_scale_px (invisible
                       points contribute 0).
    max_displacement_px: decoder classes cover integer displacements in [-m, m] per axis.
    fsq_levels:        FSQ levels per latent dimension (product = codebook size).
    d_model, n_heads, n_layers, preset: encoder shape.
    fsq_out_weight:    (d_model, len(fsq_levels)) float32, FSQ output projection: z_q = W q + b
                       with q the normalised FSQ value in [-1, 1] per dimension.
    fsq_out_bias:      (d_model,) float32.
    model_version:     a human-readable version string.
    training_data_hash: sha256 over the training windows' cache keys (provenance).
    created:           ISO-8601 UTC time of export.
    """

    fps: float
    window: int
    n_points: int
    grid: int
    grid_margin: float
    input_size: tuple[int, int]
    convention: str
    velocity_scale_px: float
    max_displacement_px: int
    fsq_levels: tuple[int, ...]
    d_model: int
    n_heads: int
    n_layers: int
    preset: str
    fsq_out_weight: tuple[tuple[float, ...], ...] = field(repr=False)
    fsq_out_bias: tuple[float, ...] = field(repr=False)
    model_version: str = ""
    training_data_hash: str = ""
    created: str = ""
    schema: str = METADATA_SCHEMA

    def __post_init__(self) -> None:
        problems = []
        if self.convention != CONVENTION_XY:
            problems.append(f"convention is {self.convention!r}, only 'xy' is supported")
        if self.window < 2:
            problems.append(f"window is {self.window}, needs >= 2")
        if self.grid * self.grid != self.n_points:
            problems.append(f"n_points {self.n_points} != grid {self.grid} squared")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            problems.append(f"fps is {self.fps}, needs > 0")
        if self.velocity_scale_px <= 0:
            problems.append(f"velocity_scale_px is {self.velocity_scale_px}, needs > 0")
        if not self.fsq_levels or min(self.fsq_levels) < 2:
            problems.append(f"fsq_levels {list(self.fsq_levels)} need >= 2 each")
        w = np.asarray(self.fsq_out_weight, dtype=np.float32)
        if w.shape != (self.d_model, len(self.fsq_levels)):
            problems.append(
                f"fsq_out_weight shape {w.shape} != (d_model, levels) {(self.d_model, len(self.fsq_levels))}"
            )
        if len(self.fsq_out_bias) != self.d_model:
            problems.append(f"fsq_out_bias length {len(self.fsq_out_bias)} != d_model {self.d_model}")
        if self.schema != METADATA_SCHEMA:
            problems.append(f"schema {self.schema!r} is not {METADATA_SCHEMA!r}")
        if problems:
            raise ModelError(
                "invalid tokenizer metadata: " + "; ".join(problems)
                + "; re-export the model with `laps-export onnx`"
            )

    # -- derived -----------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Velocity steps per window (T - 1)."""
        return self.window - 1

    @property
    def codebook_size(self) -> int:
        return int(np.prod(self.fsq_levels))

    @property
    def latent_dim(self) -> int:
        """Dimension D of z_q (the FSQ output projection's width, = d_model)."""
        return self.d_model

    def fsq_projection(self) -> tuple[np.ndarray, np.ndarray]:
        """(weight (D, L) float32, bias (D,) float32) of the FSQ output projection."""
        return (np.asarray(self.fsq_out_weight, dtype=np.float32),
                np.asarray(self.fsq_out_bias, dtype=np.float32))

    # -- the pipeline check -------------------------------------------------------------------

    def check_matches(
        self,
        *,
        fps: float | None = None,
        window: int | None = None,
        n_points: int | None = None,
        input_size: tuple[int, int] | None = None,
        convention: str | None = "xy",
    ) -> None:
        """Raise `ModelError` (one line, naming both values) if the pipeline disagrees with the model.

        Arguments left as None are not checked. `input_size` is (width, height) in pixels.
        """
        mismatches = []
        if fps is not None and not math.isclose(float(fps), self.fps, rel_tol=1e-6):
            mismatches.append(f"fps: pipeline {fps:g} vs model {self.fps:g}")
        if window is not None and int(window) != self.window:
            mismatches.append(f"window T: pipeline {window} vs model {self.window}")
        if n_points is not None and int(n_points) != self.n_points:
            mismatches.append(f"points N: pipeline {n_points} vs model {self.n_points}")
        if input_size is not None and tuple(int(v) for v in input_size) != tuple(self.input_size):
            mismatches.append(
                f"input size: pipeline {input_size[0]}x{input_size[1]} vs model "
                f"{self.input_size[0]}x{self.input_size[1]}"
            )
        if convention is not None and convention != self.convention:
            mismatches.append(f"coordinate convention: pipeline {convention!r} vs model {self.convention!r}")
        if mismatches:
            raise ModelError(
                "model does not match the pipeline (" + "; ".join(mismatches) + "); "
                "configure the pipeline from the model's metadata or use a model trained for it"
            )

    # -- serialisation ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["fsq_levels"] = list(self.fsq_levels)
        data["fsq_out_weight"] = [list(row) for row in self.fsq_out_weight]
        data["fsq_out_bias"] = list(self.fsq_out_bias)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelMetadata":
        """Build from `to_dict()` output; a missing or unknown field is a one-line ModelError."""
        if not isinstance(data, dict):
            raise ModelError(f"model metadata is a {type(data).__name__}, expected a JSON object; re-export the model")
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise ModelError(f"model metadata lacks {', '.join(missing)}; re-export the model with `laps-export onnx`")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ModelError(
                f"model metadata has unknown fields {', '.join(unknown)} (newer exporter?); "
                "upgrade laps-edge or re-export the model"
            )
        try:
            kwargs = dict(data)
            kwargs["input_size"] = tuple(int(v) for v in data["input_size"])
            kwargs["fsq_levels"] = tuple(int(v) for v in data["fsq_levels"])
            kwargs["fsq_out_weight"] = tuple(tuple(float(v) for v in row) for row in data["fsq_out_weight"])
            kwargs["fsq_out_bias"] = tuple(float(v) for v in data["fsq_out_bias"])
            for key in ("window", "n_points", "grid", "max_displacement_px", "d_model", "n_heads", "n_layers"):
                kwargs[key] = int(data[key])
            for key in ("fps", "grid_margin", "velocity_scale_px"):
                kwargs[key] = float(data[key])
        except (TypeError, ValueError, KeyError) as err:
            raise ModelError(f"model metadata has a malformed field ({err}); re-export the model") from None
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> "ModelMetadata":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelError(f"model metadata is not valid JSON ({err.msg} at char {err.pos}); re-export the model") from None
        return cls.from_dict(data)
