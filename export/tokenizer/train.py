"""Training loop of the motion tokenizer: seeded, deterministic on CPU, checkpoints, resume.

Determinism: fixed seeds for torch and for the shuffling generator (re-derived per epoch from
the seed, so a resumed run shuffles exactly like an uninterrupted one), the torch RNG state
saved in each checkpoint, `torch.use_deterministic_algorithms(True)`, no data-loader workers.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from edge.errors import ConfigError
from export.tokenizer.losses import (
    EpochFigures,
    LossConfig,
    class_weights_for,
    joint_classes,
    predicted_classes,
    static_class,
    target_classes,
    tokenizer_loss,
)
from export.tokenizer.model import MotionTokenizer, TokenizerConfig
from export.tokenizer.windows import DataConventions, normalise_velocity
from export.training import CHECKPOINT_LAST, deterministic_setup, resume_from, save_checkpoint

log = logging.getLogger(__name__)



@dataclass
class TrainConfig:
    """Hyper-parameters of one run (all recorded in the checkpoint)."""

    preset: str = "small"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    dropout: float = 0.1
    seed: int = 0
    focal_gamma: float = 0.0
    focal_alpha: float = 0.5
    radial_k: float = 4.0  # chosen by measurement (edge/shipped_models/README.md)
    latent_noise: float = 0.0
    max_batches_per_epoch: int = 0  # 0 = the whole training set each epoch
    #: points per batch whose displacement the decoder predicts in training (a random subset,
    #: new each batch; 0 = all N). The encoder always sees every point; validation scores all.
    loss_points: int = 0
    device: str = "auto"
    threads: int = 2
    model_overrides: dict = field(default_factory=dict)

    def loss_config(self) -> LossConfig:
        return LossConfig(focal_gamma=self.focal_gamma, focal_alpha=self.focal_alpha, radial_k=self.radial_k)


@dataclass
class WindowData:
    """Windows in raw px: velocity (W, S, N, 2) float32, valid (W, S, N) bool."""

    velocity: np.ndarray
    valid: np.ndarray

    def __len__(self) -> int:
        return int(self.velocity.shape[0])


def data_hash(parts: list[str]) -> str:
    """sha256 over the training data's identity (cache keys, window stride, split)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def build_model(cfg: TrainConfig, conventions: DataConventions) -> MotionTokenizer:
    model_cfg = TokenizerConfig.from_preset(
        cfg.preset, steps=conventions.steps, n_points=conventions.n_points, dropout=cfg.dropout,
        max_displacement_px=conventions.max_displacement_px, **cfg.model_overrides,
    )
    return MotionTokenizer(model_cfg)


def _batch(data: WindowData, idx: np.ndarray, conv: DataConventions, device: torch.device, scheme: str,
           points: np.ndarray | None = None):
    """(encoder input (B,S,N,2), decoder targets, valid) for windows `idx`; targets and valid
    only at `points` (P,) when given."""
    vel = data.velocity[idx]
    valid = data.valid[idx]
    x = torch.from_numpy(normalise_velocity(vel, valid, conv.velocity_scale_px)).to(device)
    if points is not None:
        vel, valid = vel[:, :, points], valid[:, :, points]
    targets = target_classes(torch.from_numpy(vel), scheme, conv.max_displacement_px).to(device)
    return x, targets, torch.from_numpy(valid).to(device)


def evaluate(model: MotionTokenizer, data: WindowData, conv: DataConventions, cfg: TrainConfig,
             device: torch.device, class_weights: torch.Tensor | None) -> dict[str, float]:
    """Validation figures: loss, displacement accuracy (all / moving points), codebook usage, perplexity."""
    model.eval()
    scheme = model.cfg.decoder_targets
    static = static_class(scheme, conv.max_displacement_px)
    figs = EpochFigures(codebook_size=model.fsq.codebook_size)
    with torch.no_grad():
        for start in range(0, len(data), cfg.batch_size):
            idx = np.arange(start, min(start + cfg.batch_size, len(data)))
            x, t, v = _batch(data, idx, conv, device, scheme)
            out = model(x)
            loss = tokenizer_loss(out["logits"], t, v, cfg.loss_config(), class_weights)
            figs.add(float(loss), predicted_classes(out["logits"], scheme), joint_classes(t, scheme), v,
                     out["codes"], static)
    return figs.summary()


def train(
    train_data: WindowData,
    val_data: WindowData,
    conventions: DataConventions,
    cfg: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    provenance: dict | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train, writing `last.pt` every epoch and `best.pt` at the lowest validation loss.

    Returns the per-epoch history (also in `history.json`). With `resume`, continues from
    `out_dir/last.pt` (its configuration must match `cfg`'s model shape).
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = deterministic_setup(cfg.device, cfg.threads, cfg.seed)
    model = build_model(cfg, conventions).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    scheme = model.cfg.decoder_targets
    class_weights = class_weights_for(scheme, conventions.max_displacement_px, cfg.radial_k)
    class_weights = None if class_weights is None else class_weights.to(device)
    n_points = conventions.n_points
    if not 0 <= cfg.loss_points <= n_points:
        raise ConfigError(f"loss_points {cfg.loss_points} is out of range; give 0 (all) to {n_points}")
    history: list[dict] = []
    start_epoch = 0
    best = float("inf")
    if resume:
        ckpt = resume_from(out, model, opt, device, "has a model of a different shape; resume with the same "
                           "preset and conventions or use a new --out")
        start_epoch, history, best = ckpt["epoch"], ckpt["history"], ckpt["best_val_loss"]
        log.info("resumed from %s at epoch %d", out / CHECKPOINT_LAST, start_epoch)

    n = len(train_data)
    batches = n // cfg.batch_size
    if cfg.max_batches_per_epoch:
        batches = min(batches, cfg.max_batches_per_epoch)
    if batches < 1:
        raise ConfigError(f"{n} training windows are fewer than one batch of {cfg.batch_size}; add data or lower --batch-size")
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        order = rng.permutation(n)
        running = 0.0
        bar = tqdm(range(batches), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress, leave=False)
        for b in bar:
            idx = np.sort(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            points = None
            if cfg.loss_points and cfg.loss_points < n_points:
                points = np.sort(rng.choice(n_points, cfg.loss_points, replace=False))
            x, t, v = _batch(train_data, idx, conventions, device, scheme, points)
            out_ = model(x, latent_noise=cfg.latent_noise,
                         points=None if points is None else torch.from_numpy(points).to(device))
            loss = tokenizer_loss(out_["logits"], t, v, cfg.loss_config(), class_weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item()
            bar.set_postfix(loss=f"{running / (b + 1):.4f}")
        figures = evaluate(model, val_data, conventions, cfg, device, class_weights)
        row = {"epoch": epoch + 1, "train_loss": running / batches, **figures}
        history.append(row)
        log.debug(
            "epoch %d: train %.4f val %.4f acc %.3f moving-acc %.3f codes %d (%.1f%%) perplexity %.1f",
            row["epoch"], row["train_loss"], row["val_loss"], row["displacement_accuracy"],
            row["moving_displacement_accuracy"], row["codes_used"], 100 * row["codebook_usage"], row["perplexity"],
        )
        if on_epoch:
            on_epoch(row)
        improved = row["val_loss"] < best
        best = min(best, row["val_loss"])
        ckpt = {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state(),
            "epoch": epoch + 1, "history": history, "best_val_loss": best,
            "model_config": model.cfg.to_dict(), "train_config": asdict(cfg),
            "conventions": conventions.to_dict(), "provenance": provenance or {},
        }
        save_checkpoint(out, ckpt, improved, history)
    return history


def load_checkpoint(path: str | os.PathLike) -> tuple[MotionTokenizer, DataConventions, dict]:
    """A trained model (eval mode, CPU), its conventions and the raw checkpoint dict."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint {p} does not exist; train with `laps-export train-tokenizer` first")
    ckpt = torch.load(p, map_location="cpu", weights_only=False)
    model = MotionTokenizer(TokenizerConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, DataConventions.from_dict(ckpt["conventions"]), ckpt
