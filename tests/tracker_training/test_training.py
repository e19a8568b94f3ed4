"""Distillation: the loss falls, checkpoints resume bit-identically, windows mean what they say."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edge.errors import ConfigError
from export.tracker.dataset import WindowSpec
from export.tracker.model import StudentConfig, StudentTracker, count_parameters, flops_per_frame
from export.tracker.train import init_from_checkpoint, load_checkpoint, train, unroll
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


def test_a_fine_tune_starts_from_the_checkpoint_with_its_passes_trimmed(tmp_path, tiny_windows, tiny_val_windows):
    first = tmp_path / "first"
    train(tiny_windows, tiny_val_windows, TINY_SPEC, tiny_train_config(), first, progress=False)
    cfg, state, init = init_from_checkpoint(first / CHECKPOINT_LAST, finest_stride=2)
    assert (cfg.finest_stride, cfg.fine_iterations) == (2, 0) and init["iteration"] == 6
    # Trained passes at strides 8, 4, 2, 1 and one more at 1: the stride-2 prefix is kept.
    full, _ = load_checkpoint(first / CHECKPOINT_LAST)
    assert len(full.refiners) == 5 and sum(k.startswith("refiners.") for k in state) \
        == sum(k.startswith("refiners.") and int(k.split(".")[1]) < 3 for k in full.state_dict())
    # At learning rate 0 the run keeps exactly the weights it started from...
    still = tmp_path / "still"
    train(tiny_windows, tiny_val_windows, TINY_SPEC, tiny_train_config(lr=0.0, model=cfg.to_dict()), still,
          progress=False, init_state=state)
    kept, ckpt = load_checkpoint(still / CHECKPOINT_LAST)
    assert kept.cfg.finest_stride == 2 and len(kept.refiners) == 3
    for key, value in state.items():
        assert torch.equal(value, kept.state_dict()[key]), key
    # ...and at a real one it moves from them (an untrained start would differ everywhere).
    moved = tmp_path / "moved"
    train(tiny_windows, tiny_val_windows, TINY_SPEC, tiny_train_config(lr=1e-4, model=cfg.to_dict()), moved,
          progress=False, init_state=state)
    tuned, _ = load_checkpoint(moved / CHECKPOINT_LAST)
    delta = max(float((tuned.state_dict()[k] - v).abs().max()) for k, v in state.items())
    assert 0 < delta < 0.05


def test_a_fine_tune_cannot_add_passes_that_were_never_trained(tmp_path, tiny_windows, tiny_val_windows):
    coarse = tmp_path / "coarse"
    train(tiny_windows, tiny_val_windows, TINY_SPEC,
          tiny_train_config(iterations=3, model={**tiny_train_config().model, "finest_stride": 2,
                                                 "fine_iterations": 0}), coarse, progress=False)
    with pytest.raises(ConfigError, match="out of range"):
        init_from_checkpoint(coarse / CHECKPOINT_LAST, finest_stride=1)
