"""Training: the loss goes down, runs are deterministic on CPU, and --resume continues exactly."""

import json

import numpy as np
import pytest

from edge.errors import ConfigError
from export.tokenizer.train import TrainConfig, WindowData, load_checkpoint, train
from export.training import CHECKPOINT_BEST, CHECKPOINT_LAST
from export.tokenizer.windows import TrackRecord, make_windows

from .conftest import TINY, bursty_tracks


@pytest.fixture(scope="module")
def data(conventions):
    vel, vis = bursty_tracks(400, conventions.n_points, seed=21)
    tv, tm = make_windows([TrackRecord(vel[:320], vis[:320], 10.0)], conventions.window, 2)
    vv, vm = make_windows([TrackRecord(vel[320:], vis[320:], 10.0)], conventions.window, conventions.steps)
    return WindowData(tv, tm), WindowData(vv, vm)


def _cfg(epochs: int, **kw) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, seed=7, device="cpu", model_overrides=dict(TINY), **kw)


def test_a_short_run_lowers_the_validation_loss(data, conventions, tmp_path):
    history = train(*data, conventions, _cfg(4), tmp_path, progress=False)
    assert history[-1]["val_loss"] < history[0]["val_loss"] * 0.9
    for key in ("displacement_accuracy", "moving_displacement_accuracy", "codebook_usage", "perplexity"):
        assert key in history[-1]
    assert (tmp_path / CHECKPOINT_LAST).is_file() and (tmp_path / CHECKPOINT_BEST).is_file()
    assert json.loads((tmp_path / "history.json").read_text()) == history


def test_two_runs_with_one_seed_are_identical(data, conventions, tmp_path):
    a = train(*data, conventions, _cfg(1), tmp_path / "a", progress=False)
    b = train(*data, conventions, _cfg(1), tmp_path / "b", progress=False)
    assert a == b


def test_resume_continues_exactly_like_an_uninterrupted_run(data, conventions, tmp_path):
    full = train(*data, conventions, _cfg(2), tmp_path / "full", progress=False)
    train(*data, conventions, _cfg(1), tmp_path / "part", progress=False)
    resumed = train(*data, conventions, _cfg(2), tmp_path / "part", resume=True, progress=False)
    assert resumed == full
    m1, _, _ = load_checkpoint(tmp_path / "full" / CHECKPOINT_LAST)
    m2, _, _ = load_checkpoint(tmp_path / "part" / CHECKPOINT_LAST)
    for (k, v1), v2 in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert np.array_equal(v1.numpy(), v2.numpy()), k


def test_focal_radial_and_latent_noise_options_train(data, conventions, tmp_path):
    history = train(*data, conventions, _cfg(1, focal_gamma=4.0, radial_k=4.0, latent_noise=0.01), tmp_path,
                    progress=False)
    assert np.isfinite(history[0]["val_loss"])


def test_resume_without_a_checkpoint_is_refused(data, conventions, tmp_path):
    with pytest.raises(ConfigError, match="--resume given but .*last.pt does not exist"):
        train(*data, conventions, _cfg(1), tmp_path, resume=True, progress=False)
