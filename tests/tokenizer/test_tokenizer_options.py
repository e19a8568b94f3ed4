"""Tokenizer options for sub-pixel motion: the signed-square-root input (inside the exported
graph), per-axis bin targets, and a decoder loss on a subset of points."""

import numpy as np
import pytest
import torch

from edge.calibration_file import CalibrationFile
from edge.energy import HysteresisParams
from edge.errors import ConfigError
from edge.inference import create_backend
from edge.model import load_model_directory
from export.tokenizer.losses import AXIS_BINS, axis_bin_classes, joint_classes, static_class
from export.tokenizer.model import MotionTokenizer, TokenizerConfig
from export.tokenizer.onnx import write_model_directory
from export.tokenizer.train import TrainConfig, WindowData, train
from export.tokenizer.windows import TrackRecord, make_windows
from export.verify import ort_latents, torch_latents

from .conftest import TINY, bursty_tracks


def _model(conventions, **options) -> MotionTokenizer:
    torch.manual_seed(0)
    cfg = TokenizerConfig.from_preset("small", steps=conventions.steps, n_points=conventions.n_points,
                                      max_displacement_px=conventions.max_displacement_px, **TINY, **options)
    model = MotionTokenizer(cfg)
    with torch.no_grad():
        model.fsq.project_in.weight.mul_(40.0)
    return model.eval()


def test_signed_sqrt_input_separates_sub_pixel_motion_more_than_linear(conventions):
    lin, sq = _model(conventions), _model(conventions, input_transform="signed_sqrt")
    still = torch.zeros(1, conventions.steps, conventions.n_points, 2)
    slow = torch.full_like(still, 0.3 / conventions.velocity_scale_px)  # 0.3 px per step
    with torch.no_grad():
        d_lin = (lin.encode(slow) - lin.encode(still)).abs().max()
        d_sq = (sq.encode(slow) - sq.encode(still)).abs().max()
    # Same weights (same seed), only the transform differs: sqrt(0.075) ~ 3.6x the linear input.
    assert d_sq > 2.0 * d_lin


def test_signed_sqrt_is_part_of_the_exported_graph(conventions, tmp_path):
    model = _model(conventions, input_transform="signed_sqrt")
    directory = write_model_directory(model, conventions, tmp_path / "m", model_version="sqrt-test",
                                      calibration=CalibrationFile(HysteresisParams(theta_on=0.05)))
    x = np.random.default_rng(2).normal(0, 0.3, (32, conventions.steps, conventions.n_points, 2)).astype(np.float32)
    ref = torch_latents(model, x)
    got = ort_latents(create_backend(load_model_directory(directory.path).tokenizer_path, providers="cpu"), x)
    assert np.abs(ref - got).max() < 1e-4


def test_axis_bins_target_the_nearest_centre_per_axis():
    v = torch.tensor([[0.0, 0.0], [0.3, -0.2], [0.74, 1.26], [-9.0, 12.0]])
    got = axis_bin_classes(v)
    centres = torch.tensor(AXIS_BINS)[got]
    assert centres.tolist() == [[0.0, 0.0], [0.25, -0.25], [0.5, 1.5], [-7.0, 7.0]]
    zero = AXIS_BINS.index(0.0)
    assert joint_classes(got, "axis_bins")[0] == static_class("axis_bins", 7) == zero * len(AXIS_BINS) + zero


def test_axis_bin_decoder_gives_two_axes_of_bins(conventions):
    model = _model(conventions, decoder_targets="axis_bins")
    out = model(torch.zeros(2, conventions.steps, conventions.n_points, 2), points=torch.tensor([0, 3, 5]))
    assert out["logits"].shape == (2, conventions.steps, 3, 2, len(AXIS_BINS))


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="input_transform"):
        TokenizerConfig(input_transform="log")
    with pytest.raises(ValueError, match="decoder_targets"):
        TokenizerConfig(decoder_targets="regression")


@pytest.fixture(scope="module")
def data(conventions):
    vel, vis = bursty_tracks(300, conventions.n_points, seed=4)
    vel[::3] *= 0.15  # some slow, sub-pixel steps
    tv, tm = make_windows([TrackRecord(vel[:240], vis[:240], 10.0)], conventions.window, 2)
    vv, vm = make_windows([TrackRecord(vel[240:], vis[240:], 10.0)], conventions.window, conventions.steps)
    return WindowData(tv, tm), WindowData(vv, vm)


def test_axis_bins_with_signed_sqrt_and_a_point_subset_learn(data, conventions, tmp_path):
    cfg = TrainConfig(epochs=4, batch_size=16, lr=3e-3, seed=7, device="cpu", loss_points=6,
                      model_overrides={**TINY, "input_transform": "signed_sqrt", "decoder_targets": "axis_bins"})
    history = train(*data, conventions, cfg, tmp_path, progress=False)
    assert history[-1]["val_loss"] < history[0]["val_loss"] * 0.9
    assert 0.0 <= history[-1]["moving_displacement_accuracy"] <= 1.0


def test_more_loss_points_than_the_grid_is_a_config_error(data, conventions, tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=16, seed=7, device="cpu", loss_points=conventions.n_points + 1,
                      model_overrides=dict(TINY))
    with pytest.raises(ConfigError, match="loss_points"):
        train(*data, conventions, cfg, tmp_path, progress=False)
