"""Distillation: the loss falls, checkpoints resume bit-identically, windows mean what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.errors import ConfigError
from export.tracker.dataset import WindowSpec
from export.tracker.model import StudentConfig, StudentTracker, count_parameters, flops_per_frame
from export.tracker.train import load_checkpoint, train, unroll
from export.training import CHECKPOINT_BEST, CHECKPOINT_LAST

from .conftest import TINY_SPEC, tiny_student, tiny_train_config


def test_windows_hold_targets_inside_the_crop_from_their_first_frame(tiny_windows):
    w = tiny_windows
    cw, ch = TINY_SPEC.crop
    assert w.frames.shape[1:] == (TINY_SPEC.steps + 1, ch, cw)
    assert w.valid[:, 0].all()
    pos = w.positions[w.valid]
    assert (pos[:, 0] >= 0).all() and (pos[:, 0] <= cw - 1).all()
    assert (pos[:, 1] >= 0).all() and (pos[:, 1] <= ch - 1).all()
    # validity never comes back once lost (targets are cumulative)
    assert not (~w.valid[:, :-1] & w.valid[:, 1:]).any()


def test_windows_include_moving_points(tiny_windows):
    w = tiny_windows
    travel = np.linalg.norm(w.positions[:, -1] - w.positions[:, 0], axis=-1)[w.valid[:, -1]]
    assert (travel > 1.0).mean() > 0.15


def test_crop_must_align_with_the_coarsest_stride():
    with pytest.raises(ConfigError, match="multiples of 8"):
        WindowSpec(crop=(100, 64))


def test_default_student_is_far_below_two_million_parameters():
    model = StudentTracker(StudentConfig())
    assert count_parameters(model) < 2_000_000
    flops = flops_per_frame(model.cfg, 320, 240, 400)
    assert flops["total"] == flops["pyramid"] + flops["tracking"] > 0


def test_loss_goes_down_on_a_fixed_batch(tiny_windows):
    model = tiny_student().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    idx = np.arange(4)
    frames = torch.from_numpy(tiny_windows.frames[idx].astype(np.float32))
    pos = torch.from_numpy(tiny_windows.positions[idx])
    valid = torch.from_numpy(tiny_windows.valid[idx])
    losses = []
    for _ in range(15):
        loss, _ = unroll(model, frames, pos, valid)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:3])


def test_training_writes_checkpoints_and_history(tmp_path, tiny_windows, tiny_val_windows):
    history = train(tiny_windows, tiny_val_windows, TINY_SPEC, tiny_train_config(), tmp_path, progress=False)
    assert [row["iteration"] for row in history] == [3, 6]
    assert (tmp_path / CHECKPOINT_LAST).is_file() and (tmp_path / CHECKPOINT_BEST).is_file()
    assert np.isfinite(history[-1]["val_epe_median_px"])
    model, ckpt = load_checkpoint(tmp_path / CHECKPOINT_LAST)
    assert ckpt["iteration"] == 6 and not model.training


def test_resume_is_bit_identical_on_cpu(tmp_path, tiny_windows, tiny_val_windows):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(tiny_windows, tiny_val_windows, TINY_SPEC, tiny_train_config(), straight, progress=False)
    # The same run cut short after its first checkpoint, then resumed to the end.
    first = train(tiny_windows, tiny_val_windows, TINY_SPEC, tiny_train_config(), split, progress=False,
                  stop_at=3)
    assert [row["iteration"] for row in first] == [3]
    train(tiny_windows, tiny_val_windows, TINY_SPEC, tiny_train_config(), split, progress=False, resume=True)
    a = torch.load(straight / CHECKPOINT_LAST, weights_only=False)
    b = torch.load(split / CHECKPOINT_LAST, weights_only=False)
    assert a["history"] == b["history"]
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path, tiny_windows, tiny_val_windows):
    with pytest.raises(ConfigError, match="--resume"):
        train(tiny_windows, tiny_val_windows, TINY_SPEC, tiny_train_config(), tmp_path, progress=False, resume=True)


def test_a_tokenizer_checkpoint_is_not_taken_for_a_tracker(tmp_path):
    path = tmp_path / "tok.pt"
    torch.save({"model": {}, "model_config": {"preset": "small"}}, path)
    with pytest.raises(ConfigError, match="not a tracker student"):
        load_checkpoint(path)
