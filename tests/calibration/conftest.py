"""Fixtures of the calibration tests: a tiny real tokenizer model directory."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A real exported model directory of a tiny tokenizer: 10 fps, T = 6, 4x4 points, 64x48."""
    import torch

    from export.tokenizer.model import MotionTokenizer, TokenizerConfig
    from export.tokenizer.onnx import write_model_directory
    from export.tokenizer.windows import DataConventions

    conv = DataConventions(fps=10.0, window=6, grid=4, input_size=(64, 48), velocity_scale_px=4.0,
                           max_displacement_px=3)
    torch.manual_seed(0)
    cfg = TokenizerConfig.from_preset("small", steps=conv.steps, n_points=conv.n_points,
                                      max_displacement_px=conv.max_displacement_px, d_model=32, n_heads=2,
                                      n_layers=2, point_embed_dim=8, decoder_hidden=16)
    model = MotionTokenizer(cfg)
    with torch.no_grad():
        # Spread the latent so motion visits many codes (a fresh init maps all to one code).
        model.fsq.project_in.weight.mul_(40.0)
    out = tmp_path_factory.mktemp("models") / "tiny"
    write_model_directory(model.eval(), conv, out, model_version="tiny-cal-test")
    return out
