"""Distillation loop of the student tracker: seeded, deterministic on CPU, checkpoints, resume.

Each iteration takes a batch of windows (`export.tracker.dataset`), runs the pyramid on all of
their frames at once, then unrolls the tracker online over the S steps exactly as the device
runs it (step 1 starts from the query points with `fresh` = 1; every later step starts from
the previous step's own estimate). Loss per step: Huber (delta 1 px) between every refinement
pass's estimate and the teacher's position, passes weighted 0.8^(passes-1-k), over points the
teacher vouches for; plus binary cross-entropy of the visibility logit against "the teacher
vouches for the point and the final estimate is within 2 px" (the tracker's visibility means
"reliably tracked", as LK's forward-backward check does), over the points that entered the step.

Determinism: the batch of iteration i is drawn from `np.random.default_rng([seed, i])`, the
learning rate is a pure function of i (linear warm-up, cosine decay), and the torch RNG state is
saved with the checkpoint, so a resumed run is bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from edge.errors import ConfigError
from export.tracker.dataset import WindowSet, WindowSpec
from export.tracker.model import StudentConfig, StudentTracker
from export.training import CHECKPOINT_LAST, deterministic_setup, resume_from, save_checkpoint

log = logging.getLogger(__name__)

#: checkpoint kind marker (laps-export onnx tells a tracker checkpoint from a tokenizer's by it)
CHECKPOINT_KIND = "laps.tracker-student/1"
#: visibility target: within this many px of the teacher
VISIBLE_WITHIN_PX = 2.0
#: validation errors are clipped here for the mean (one lost point must not dominate)
EPE_CLIP_PX = 8.0


@dataclass
class TrainConfig:
    """Hyper-parameters of one run (all recorded in the checkpoint)."""

    iterations: int = 3000
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 1e-4
    pass_decay: float = 0.8
    visibility_weight: float = 0.2
    seed: int = 0
    eval_every: int = 250
    device: str = "auto"
    threads: int = 2
    model: dict = field(default_factory=dict)

    def student_config(self) -> StudentConfig:
        return StudentConfig.from_dict({**StudentConfig().to_dict(), **self.model})

    def learning_rate(self, it: int) -> float:
        warm = min(1.0, (it + 1) / max(1, self.warmup))
        return self.lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(it, self.iterations) / self.iterations))


def unroll(model: StudentTracker, frames: torch.Tensor, positions: torch.Tensor, valid: torch.Tensor,
           cfg: TrainConfig | None = None) -> tuple[torch.Tensor, dict]:
    """Run the tracker online over a batch of windows; returns (loss, figures).

    frames (B, S+1, h, w) float32 grey 0..255; positions (B, S+1, P, 2); valid (B, S+1, P) bool.
    figures: per-step final errors (B, S, P) and masks, visibility logits (B, S, P).
    """
    cfg = cfg or TrainConfig()
    b, s1, h, w = frames.shape
    feats = model.features(frames.reshape(b * s1, 1, h, w))
    feats = [f.reshape(b, s1, *f.shape[1:]) for f in feats]
    p = positions.shape[2]
    state = model.initial_state(b, p, h, w, device=frames.device)
    points = positions[:, 0]
    velocity, hidden, anchor = state["velocity"], state["hidden"], state["anchor"]
    fresh = torch.ones(b, p, 1, device=frames.device)
    loss = frames.new_zeros(())
    errors, logits = [], []
    prev = [f[:, 0] for f in feats]
    for t in range(1, s1):
        out = model.track([f[:, t] for f in feats], prev, points, velocity, hidden, anchor, fresh)
        prev = out["maps"]  # this frame's maps, already flattened: the next step's previous ones
        target, mask, entered = positions[:, t], valid[:, t], valid[:, t - 1]
        n_mask = mask.sum().clamp(min=1)
        k_passes = len(out["estimates"])
        for k, est in enumerate(out["estimates"]):
            huber = F.huber_loss(est, target, reduction="none", delta=1.0).sum(-1)
            loss = loss + cfg.pass_decay ** (k_passes - 1 - k) * (huber * mask).sum() / n_mask
        err = (out["points"] - target).norm(dim=-1).detach()
        vis_target = (mask & (err < VISIBLE_WITHIN_PX)).float()
        bce = F.binary_cross_entropy_with_logits(out["visibility_logit"], vis_target, reduction="none")
        loss = loss + cfg.visibility_weight * (bce * entered).sum() / entered.sum().clamp(min=1)
        errors.append(err)
        logits.append(out["visibility_logit"].detach())
        points, velocity = out["points"].detach(), out["velocity"].detach()
        hidden, anchor = out["hidden"], out["anchor"]
        fresh = torch.zeros_like(fresh)
    figures = {"errors": torch.stack(errors, 1), "mask": valid[:, 1:], "entered": valid[:, :-1],
               "logits": torch.stack(logits, 1)}
    return loss / (s1 - 1), figures


def _batch(data: WindowSet, idx: np.ndarray, device: torch.device):
    # uint8 over the bus, float on the device (4x less to copy; the values are the same)
    frames = torch.from_numpy(data.frames[idx]).to(device).float()
    return frames, torch.from_numpy(data.positions[idx]).to(device), torch.from_numpy(data.valid[idx]).to(device)


def evaluate(model: StudentTracker, data: WindowSet, cfg: TrainConfig, device: torch.device,
             batch: int = 32) -> dict[str, float]:
    """Validation figures over every step of every window, points the teacher vouches for:
    end-point error median / mean (clipped at EPE_CLIP_PX) / p90 in px, share within 1 px,
    visibility accuracy (logit > 0 vs "within 2 px"), loss."""
    model.eval()
    errs, vis_ok, losses = [], [], []
    with torch.no_grad():
        for start in range(0, len(data), batch):
            idx = np.arange(start, min(start + batch, len(data)))
            loss, fig = unroll(model, *_batch(data, idx, device), cfg)
            losses.append(float(loss) * len(idx))
            m = fig["mask"]
            errs.append(fig["errors"][m].cpu().numpy())
            target = m & (fig["errors"] < VISIBLE_WITHIN_PX)
            entered = fig["entered"]
            vis_ok.append(((fig["logits"] > 0) == target)[entered].cpu().numpy())
    e = np.concatenate(errs)
    model.train()
    return {
        "val_loss": float(np.sum(losses) / len(data)),
        "val_epe_median_px": float(np.median(e)),
        "val_epe_mean_px": float(np.mean(np.minimum(e, EPE_CLIP_PX))),
        "val_epe_p90_px": float(np.percentile(e, 90)),
        "val_within_1px": float(np.mean(e < 1.0)),
        "val_visibility_accuracy": float(np.mean(np.concatenate(vis_ok))),
    }


def train(
    train_data: WindowSet,
    val_data: WindowSet,
    spec: WindowSpec,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    provenance: dict | None = None,
    progress: bool = True,
    on_eval: Callable[[dict], None] | None = None,
    stop_at: int | None = None,
    init_state: dict | None = None,
) -> list[dict]:
    """Distil, writing `last.pt` every `eval_every` iterations and `best.pt` at the lowest
    validation mean EPE. Returns the validation history (also in `history.json`).

    stop_at: end after this many iterations as if interrupted (the schedule still spans
    `cfg.iterations`; `resume=True` continues the run exactly).
    init_state: a fine-tune's starting weights, a state dict of a student built from
    `cfg.student_config()` (`init_from_checkpoint`); the optimiser and schedule start afresh.
    Ignored on resume (the run's own checkpoint holds the weights by then).
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = deterministic_setup(cfg.device, cfg.threads, cfg.seed)
    model = StudentTracker(cfg.student_config()).to(device)
    if init_state is not None and not resume:
        model.load_state_dict(init_state)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history: list[dict] = []
    start, best, running = 0, float("inf"), 0.0
    if resume:
        ckpt = resume_from(out, model, opt, device, "has a different student shape; resume with the same options")
        start, history, best = ckpt["iteration"], ckpt["history"], ckpt["best_val_epe_mean_px"]
        running = ckpt["running_loss"]
        log.info("resumed from %s at iteration %d", out / CHECKPOINT_LAST, start)
    if len(train_data) < cfg.batch_size:
        raise ConfigError(f"{len(train_data)} training windows are fewer than one batch of {cfg.batch_size}; "
                          "add data or lower --batch-size")
    model.train()
    end = cfg.iterations if stop_at is None else min(stop_at, cfg.iterations)
    bar = tqdm(range(start, end), desc="distil", disable=not progress, initial=start, total=cfg.iterations)
    for it in bar:
        for group in opt.param_groups:
            group["lr"] = cfg.learning_rate(it)
        idx = np.sort(np.random.default_rng([cfg.seed, it]).choice(len(train_data), cfg.batch_size, replace=False))
        loss, _ = unroll(model, *_batch(train_data, idx, device), cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        # An exponential average of the training loss (saved, so a resumed run reports the same).
        running = 0.98 * running + 0.02 * loss.item() if it > 0 else loss.item()
        bar.set_postfix(loss=f"{running:.4f}")
        done = it + 1
        if done % cfg.eval_every == 0 or done == cfg.iterations:
            row = {"iteration": done, "train_loss": running, **evaluate(model, val_data, cfg, device)}
            history.append(row)
            if on_eval:
                on_eval(row)
            improved = row["val_epe_mean_px"] < best
            best = min(best, row["val_epe_mean_px"])
            ckpt = {
                "kind": CHECKPOINT_KIND, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "torch_rng": torch.get_rng_state(), "iteration": done, "history": history,
                "best_val_epe_mean_px": best, "running_loss": running, "model_config": model.cfg.to_dict(),
                "train_config": asdict(cfg),
                "window_spec": spec.to_dict(), "provenance": provenance or {},
            }
            save_checkpoint(out, ckpt, improved, history)
    return history


def load_checkpoint(path: str | os.PathLike) -> tuple[StudentTracker, dict]:
    """A trained student (eval mode, CPU) and the raw checkpoint dict."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint {p} does not exist; train with `laps-export distill-tracker` first")
    ckpt = torch.load(p, map_location="cpu", weights_only=False)
    if ckpt.get("kind") != CHECKPOINT_KIND:
        raise ConfigError(f"checkpoint {p} is not a tracker student (kind {ckpt.get('kind')!r}); "
                          "give one written by `laps-export distill-tracker`")
    model = StudentTracker(StudentConfig.from_dict(ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def init_from_checkpoint(path: str | os.PathLike, finest_stride: int | None = None
                         ) -> tuple[StudentConfig, dict, dict]:
    """A fine-tune's start: the student of a distill-tracker checkpoint with its passes trimmed to
    `finest_stride` (`trim_passes`; None: as trained). Returns (its config, its state dict,
    provenance: path, sha256, iteration, finest stride, the window spec it was trained with).

    Why trim before training: the shipped export runs the passes down to stride 2 only, and the
    visibility head then reads scores of the stride-2 pass it was never trained on; training with
    that layout fits both the head and the last pass to what the device runs."""
    from edge.model import sha256_file
    from export.tracker.model import trim_passes

    model, ckpt = load_checkpoint(path)
    if finest_stride is not None:
        try:
            trim_passes(model, finest_stride=finest_stride)
        except ValueError as e:
            raise ConfigError(f"cannot fine-tune {path} at finest stride {finest_stride}: {e}") from None
    provenance = {"checkpoint": str(path), "sha256": sha256_file(path), "iteration": int(ckpt.get("iteration", 0)),
                  "finest_stride": model.cfg.finest_stride, "window_spec": ckpt.get("window_spec", {})}
    return model.cfg, model.state_dict(), provenance


def is_tracker_checkpoint(path: str | os.PathLike) -> bool:
    """True when `path` is a checkpoint written by the tracker distillation."""
    try:
        ckpt = torch.load(Path(path), map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not a tracker checkpoint
        return False
    return isinstance(ckpt, dict) and ckpt.get("kind") == CHECKPOINT_KIND
