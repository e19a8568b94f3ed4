"""The per-frame tokenizer on the device: velocity ring -> encoder -> newest token -> code -> z_q.

How the runtime feeds the energy kernel (`edge.energy`), by `energy_mode`:

- "newest" (ours, the paper's formula, one value per frame): every frame's `energy_input` is
  the z_q vector (D,) float32 of the newest token of the causal window. The caller passes it
  to `latent_step(state, params, z)`, which computes E_t = ||z_q,t - z_q,t-1||_2 itself.
- "window_mean" (the paper's code): every `stride` frames the runtime quantises all T-1 tokens
  of the current window and computes the mean adjacent-token distance. `energy_input` is that
  float on those update frames and None on the frames between: the caller feeds the scalar
  `energy_step` once per stride, as the paper's code does, so in this mode the kernel's
  up/down/cooldown/min counts are strides, not frames. `held_energy` keeps the last value for
  a caller that wants a per-frame (held) series instead; `energy_updated` says whether this
  frame produced a new value.

Start of stream: the ring starts filled with zero velocity (no motion), so a token comes out
from the first frame on; the causal encoder never sees the future, only this padding.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from edge.errors import ConfigError, ModelError
from edge.inference import InferenceBackend, create_backend
from edge.model import ONNX_METADATA_KEY, ModelDirectory, ModelMetadata, load_model_directory
from edge.tokenizer.fsq import FSQ, window_mean_energy

#: Names of the exported encoder's input and output.
INPUT_NAME = "velocity"
OUTPUT_NAME = "latent"

ENERGY_MODES = ("newest", "window_mean")


class TokenStep(NamedTuple):
    """One frame's tokenizer output.

    code:         FSQ code of the newest token, int in [0, codebook_size).
    z_q:          (D,) float32 quantised latent of the newest token.
    energy_input: "newest": the same z_q (feed `latent_step`); "window_mean": the window's
                  float energy on update frames (feed `energy_step`), None between them.
    """

    code: int
    z_q: np.ndarray
    energy_input: np.ndarray | float | None

    @property
    def energy(self) -> float | None:
        """The scalar energy of the window-mean mode on update frames, else None."""
        return self.energy_input if isinstance(self.energy_input, float) else None


class TokenizerRuntime:
    """Per-frame motion tokenizer over an exported model directory.

    model_dir: a `ModelDirectory` (or a path to one; it is loaded and verified).
    providers: inference providers ("auto", "cpu", "cuda", "tensorrt" or a list); see
               `edge.inference.resolve_providers`. require_gpu: fail unless a GPU provider runs.
    energy_mode: "newest" or "window_mean" (see the module docstring). stride: frames between
               window-mean updates.
    """

    def __init__(
        self,
        model_dir: ModelDirectory | str | os.PathLike,
        providers: str | Sequence[str] = "auto",
        energy_mode: str = "newest",
        stride: int = 4,
        *,
        require_gpu: bool = False,
        backend: InferenceBackend | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        if energy_mode not in ENERGY_MODES:
            raise ConfigError(f"energy_mode {energy_mode!r} is unknown; use one of {', '.join(ENERGY_MODES)}")
        if int(stride) < 1:
            raise ConfigError(f"stride {stride} must be >= 1 frame")
        if not isinstance(model_dir, ModelDirectory):
            model_dir = load_model_directory(Path(model_dir))
        self.model_dir = model_dir
        self.metadata: ModelMetadata = model_dir.metadata
        self.energy_mode = energy_mode
        self.stride = int(stride)
        self.backend = backend or create_backend(
            model_dir.tokenizer_path, providers=providers, require_gpu=require_gpu,
            intra_op_threads=intra_op_threads,
        )
        self._check_backend(self.backend, self.metadata, model_dir.tokenizer_path)
        weight, bias = self.metadata.fsq_projection()
        self.fsq = FSQ(self.metadata.fsq_levels, weight, bias)
        self._inv_scale = np.float32(1.0 / self.metadata.velocity_scale_px)
        s, n = self.metadata.steps, self.metadata.n_points
        # Twice the ring length: each step is written at i and i + S, so the window
        # buf[i+1 : i+1+S] is always contiguous and in time order without copying.
        self._buf = np.zeros((2 * s, n, 2), dtype=np.float32)
        self.reset()

    # -- public ------------------------------------------------------------------------------

    @property
    def latent_dim(self) -> int:
        """D, the width of z_q (what `latent_step` receives in the "newest" mode)."""
        return self.fsq.dim

    @property
    def providers_in_use(self) -> list[str]:
        return list(self.backend.providers_in_use)

    def reset(self) -> None:
        """Forget the history: the ring is zero velocity again, the held window-mean energy 0."""
        self._buf[:] = 0.0
        self._pos = 0
        self.frames_seen = 0
        self.held_energy = 0.0
        self.energy_updated = False
        self.last_latents: np.ndarray | None = None

    def step(self, velocity: np.ndarray, visible: np.ndarray) -> TokenStep:
        """Push one frame's velocities and return the newest token.

        velocity: (N, 2) float32, px per step at the model fps, (x, y) (tracker convention).
        visible:  (N,) bool; invisible points enter the encoder as zero velocity.
        """
        s, n = self.metadata.steps, self.metadata.n_points
        v = np.asarray(velocity, dtype=np.float32)
        vis = np.asarray(visible)
        if v.shape != (n, 2) or vis.shape != (n,):
            raise ModelError(
                f"tokenizer got velocity {v.shape} and visibility {vis.shape} but the model expects ({n}, 2) and"
                f" ({n},); track {self.metadata.grid}x{self.metadata.grid} points as the model metadata says"
            )
        normalised = v * self._inv_scale
        normalised[~vis.astype(bool)] = 0.0
        self._buf[self._pos] = normalised
        self._buf[self._pos + s] = normalised
        window = self._buf[self._pos + 1: self._pos + 1 + s]
        self._pos = (self._pos + 1) % s
        latents = self.backend.run({INPUT_NAME: window[None]})[OUTPUT_NAME][0]  # (S, L)
        self.last_latents = latents
        code = int(self.fsq.codes(latents[-1]))
        z_q = self.fsq.z_q_from_codes(code)
        self.frames_seen += 1
        if self.energy_mode == "newest":
            self.energy_updated = True
            return TokenStep(code, z_q, z_q)
        self.energy_updated = (self.frames_seen - 1) % self.stride == 0
        if not self.energy_updated:
            return TokenStep(code, z_q, None)
        self.held_energy = window_mean_energy(self.fsq.z_q(latents))
        return TokenStep(code, z_q, self.held_energy)

    def encode_window(self, velocity: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """Pre-quantisation latents (S, L) of one whole window, without touching the ring.

        velocity: (S, N, 2) px per step; visible: (S, N) bool. For verification and offline use.
        """
        v = np.asarray(velocity, dtype=np.float32) * self._inv_scale
        v = np.where(np.asarray(visible, dtype=bool)[..., None], v, np.float32(0.0)).astype(np.float32)
        return self.backend.run({INPUT_NAME: v[None]})[OUTPUT_NAME][0]

    # -- checks ------------------------------------------------------------------------------

    @staticmethod
    def _check_backend(backend: InferenceBackend, meta: ModelMetadata, path: Path) -> None:
        expected = (1, meta.steps, meta.n_points, 2)
        shape = backend.input_shapes.get(INPUT_NAME)
        if shape != expected:
            raise ModelError(
                f"{path} takes input {INPUT_NAME!r} of shape {shape} but its metadata implies {expected};"
                " re-export the model"
            )
        embedded = backend.custom_metadata.get(ONNX_METADATA_KEY)
        if embedded is None:
            raise ModelError(f"{path} carries no {ONNX_METADATA_KEY!r} metadata; re-export it with `laps-export onnx`")
        if json.loads(embedded) != json.loads(meta.to_json()):
            raise ModelError(
                f"the metadata embedded in {path} differs from manifest.json; the directory mixes two models,"
                " re-export it"
            )
