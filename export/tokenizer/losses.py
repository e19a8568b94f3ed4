"""Training loss of the tokenizer decoder and the figures reported per epoch.

Two target schemes (`TokenizerConfig.decoder_targets`):
- "joint" (the paper): each visible point's velocity (px per step) rounded to integers and
  clamped to [-m, m] per axis; class = (dy + m) * (2m + 1) + (dx + m) (x is the fast axis,
  "xy" convention). Loss: cross-entropy over the (2m+1)^2 classes, optionally focal (gamma,
  alpha) and with radial class weights 1 + k * r^2, r = |(dx, dy)| / (m * sqrt 2) in [0, 1], so
  rare large motions count more than the many static points. Sub-pixel motion is class 0.
- "axis_bins" (ours): per axis, the nearest of the non-uniform bin centres `AXIS_BINS` (px per
  step, finer near 0, so 0.25-0.5 px of real, slow motion has classes of its own); loss = the sum
  of the two axes' cross-entropies, each weighted 1 + k * (c / 7)^2 by its target centre c.
Figures pair the two axes into one joint class, so accuracy means both axes right in both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

DECODER_TARGETS = ("joint", "axis_bins")
#: Bin centres per axis for "axis_bins" targets, px per step (19 classes; beyond +-7 clamps).
AXIS_BINS = (-7.0, -5.5, -4.0, -3.0, -2.0, -1.5, -1.0, -0.5, -0.25, 0.0,
             0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.5, 7.0)
_AXIS_EDGES = torch.tensor([(a + b) / 2 for a, b in zip(AXIS_BINS[:-1], AXIS_BINS[1:])])


@dataclass(frozen=True)
class LossConfig:
    """focal_gamma: 0 = plain cross-entropy. focal_alpha scales the focal term. radial_k: weight
    1 + radial_k * r^2 per target class (0 = unweighted)."""

    focal_gamma: float = 0.0
    focal_alpha: float = 0.5
    radial_k: float = 0.0


def displacement_classes(velocity_px: torch.Tensor, max_disp: int) -> torch.Tensor:
    """(..., 2) px per step (x, y) -> class indices (...,) int64."""
    d = torch.clamp(torch.round(velocity_px), -max_disp, max_disp).long() + max_disp
    return d[..., 1] * (2 * max_disp + 1) + d[..., 0]


def axis_bin_classes(velocity_px: torch.Tensor) -> torch.Tensor:
    """(..., 2) px per step (x, y) -> per-axis bin indices (..., 2) int64 into AXIS_BINS."""
    return torch.bucketize(velocity_px.contiguous(), _AXIS_EDGES.to(velocity_px.dtype))


def target_classes(velocity_px: torch.Tensor, scheme: str, max_disp: int) -> torch.Tensor:
    """Targets of `scheme`: (...,) joint classes, or (..., 2) per-axis bins for "axis_bins"."""
    if scheme == "axis_bins":
        return axis_bin_classes(velocity_px)
    return displacement_classes(velocity_px, max_disp)


def class_weights_for(scheme: str, max_disp: int, k: float) -> torch.Tensor | None:
    """Radial class weights of `scheme` (None when k = 0): (K,) joint, or (A,) per axis bin."""
    if k <= 0:
        return None
    if scheme == "axis_bins":
        c = torch.tensor(AXIS_BINS, dtype=torch.float32)
        return 1.0 + k * (c / max(abs(AXIS_BINS[0]), 1e-9)) ** 2
    return radial_weights(max_disp, k)


def static_class(scheme: str, max_disp: int) -> int:
    """The joint class of zero motion (what "moving" accuracy excludes)."""
    if scheme == "axis_bins":
        zero = AXIS_BINS.index(0.0)
        return zero * len(AXIS_BINS) + zero
    return max_disp * (2 * max_disp + 1) + max_disp


def joint_classes(classes: torch.Tensor, scheme: str) -> torch.Tensor:
    """Per-axis bins (..., 2) -> one joint class (...,) (y major); joint targets pass through."""
    if scheme == "axis_bins":
        return classes[..., 1] * len(AXIS_BINS) + classes[..., 0]
    return classes


def predicted_classes(logits: torch.Tensor, scheme: str) -> torch.Tensor:
    """Argmax classes (...,) in the joint numbering of `joint_classes`."""
    return joint_classes(logits.argmax(dim=-1), scheme)


def radial_weights(max_disp: int, k: float) -> torch.Tensor:
    """(K,) class weights 1 + k * r^2 with r the class's displacement length over m*sqrt(2)."""
    r = torch.arange(-max_disp, max_disp + 1, dtype=torch.float32)
    dy, dx = torch.meshgrid(r, r, indexing="ij")
    rad2 = (dx ** 2 + dy ** 2).reshape(-1) / (2.0 * max_disp ** 2)
    return 1.0 + k * rad2


def tokenizer_loss(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, cfg: LossConfig, class_weights: torch.Tensor | None
) -> torch.Tensor:
    """Mean loss over valid (visible) points. logits (B,S,N,K), targets/valid (B,S,N); for axis
    bins logits (B,S,N,2,A), targets (B,S,N,2): each axis is a class of its own (summed)."""
    if targets.dim() == valid.dim() + 1:  # axis bins: the two axes as two classification terms
        valid = valid[..., None].expand_as(targets)
    k = logits.shape[-1]
    flat_logits = logits.reshape(-1, k)
    flat_t = targets.reshape(-1)
    mask = valid.reshape(-1).to(logits.dtype)
    logp = F.log_softmax(flat_logits, dim=-1).gather(1, flat_t[:, None])[:, 0]
    loss = -logp
    if cfg.focal_gamma > 0:
        loss = cfg.focal_alpha * (1.0 - logp.exp()).clamp_min(0.0) ** cfg.focal_gamma * loss
    if class_weights is not None:
        loss = loss * class_weights[flat_t]
    # Normalised per point (not per axis term), so both schemes' losses read per point.
    per_point = 2.0 if logits.dim() == 5 else 1.0
    return per_point * (loss * mask).sum() / mask.sum().clamp_min(1.0)


@dataclass
class EpochFigures:
    """Accumulates validation figures over batches."""

    codebook_size: int
    loss_sum: float = 0.0
    batches: int = 0
    correct: int = 0
    total: int = 0
    correct_moving: int = 0
    total_moving: int = 0

    def __post_init__(self) -> None:
        self.hist = np.zeros(self.codebook_size, dtype=np.int64)

    def add(self, loss: float, pred: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor,
            codes: torch.Tensor, static_class: int) -> None:
        """pred, targets: (B, S, N) joint classes (`predicted_classes`, `joint_classes`)."""
        self.loss_sum += loss
        self.batches += 1
        hit = (pred == targets) & valid
        moving = valid & (targets != static_class)
        self.correct += int(hit.sum())
        self.total += int(valid.sum())
        self.correct_moving += int((hit & moving).sum())
        self.total_moving += int(moving.sum())
        self.hist += np.bincount(codes.reshape(-1).cpu().numpy(), minlength=self.codebook_size)

    def summary(self) -> dict[str, float]:
        p = self.hist / max(1, self.hist.sum())
        nz = p[p > 0]
        return {
            "val_loss": self.loss_sum / max(1, self.batches),
            "displacement_accuracy": self.correct / max(1, self.total),
            "moving_displacement_accuracy": self.correct_moving / max(1, self.total_moving),
            "codebook_usage": float((self.hist > 0).sum()) / self.codebook_size,
            "codes_used": int((self.hist > 0).sum()),
            "perplexity": float(math.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0,
        }
