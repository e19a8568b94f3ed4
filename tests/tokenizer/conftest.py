"""Tiny tokenizers and model directories shared by the tokenizer tests (kept small: 2 cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.calibration_file import CalibrationFile
from edge.energy import HysteresisParams
from export.tokenizer.model import MotionTokenizer, TokenizerConfig
from export.tokenizer.onnx import write_model_directory
from export.tokenizer.windows import DataConventions
from export.verify import make_golden

TINY = {"d_model": 32, "n_heads": 2, "n_layers": 2, "point_embed_dim": 8, "decoder_hidden": 16}


def tiny_conventions() -> DataConventions:
    """T = 6 (5 steps), a 4x4 grid (N = 16) at 10 fps, 64x48 frames."""
    return DataConventions(fps=10.0, window=6, grid=4, input_size=(64, 48), velocity_scale_px=4.0,
                           max_displacement_px=3)


def tiny_model(seed: int = 0, conventions: DataConventions | None = None) -> MotionTokenizer:
    conv = conventions or tiny_conventions()
    torch.manual_seed(seed)
    cfg = TokenizerConfig.from_preset("small", steps=conv.steps, n_points=conv.n_points,
                                      max_displacement_px=conv.max_displacement_px, **TINY)
    model = MotionTokenizer(cfg)
    # Spread the pre-quantisation latent so random inputs visit many codes (a fresh init
    # maps everything near one code, which would make parity tests trivially true).
    with torch.no_grad():
        model.fsq.project_in.weight.mul_(40.0)
    return model.eval()


def bursty_tracks(frames: int, n_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Velocity (F, N, 2) px/step with rest and motion bursts, and visibility (F, N)."""
    rng = np.random.default_rng(seed)
    vel = np.zeros((frames, n_points, 2), np.float32)
    t = 5
    while t < frames:
        length = int(rng.integers(8, 20))
        direction = rng.normal(0, 2.0, size=2).astype(np.float32)
        vel[t:t + length] = direction + rng.normal(0, 0.4, size=(min(length, frames - t), n_points, 2))
        t += length + int(rng.integers(8, 20))
    visible = rng.random((frames, n_points)) > 0.03
    vel[~visible] = 0.0
    return vel, visible


@pytest.fixture(scope="session")
def conventions() -> DataConventions:
    return tiny_conventions()


@pytest.fixture(scope="session")
def model() -> MotionTokenizer:
    return tiny_model()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, model, conventions):
    """A complete model directory of the tiny model (ONNX, calibration, golden)."""
    vel, vis = bursty_tracks(120, conventions.n_points, seed=3)
    windows_v = np.stack([vel[i + 1:i + conventions.window] for i in range(0, 40, 8)])
    windows_m = np.stack([vis[i + 1:i + conventions.window] for i in range(0, 40, 8)])
    params = HysteresisParams(theta_on=0.05)
    golden = make_golden(model, conventions, windows_v, windows_m, vel, vis, params)
    out = tmp_path_factory.mktemp("models") / "tiny"
    return write_model_directory(
        model, conventions, out, model_version="tiny-test", calibration=CalibrationFile(params, model_version="tiny-test"),
        golden=golden,
    )
