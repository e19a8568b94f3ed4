"""FSQ in torch for training: linear d -> L, bounded rounding with a straight-through gradient,
linear L -> d. Uses the same float32 constants as `edge.tokenizer.fsq` so codes agree exactly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from edge.tokenizer.fsq import fsq_constants


class FSQ(nn.Module):
    """Finite scalar quantiser with input and output projections.

    latent(h (..., d)) -> z (..., L) pre-quantisation; quantize(z) -> (z_q (..., d), codes (...,)).
    """

    def __init__(self, d_model: int, levels: Sequence[int]) -> None:
        super().__init__()
        self.levels = [int(v) for v in levels]
        c = fsq_constants(self.levels)
        for name in ("half_l", "offset", "shift", "half_width"):
            self.register_buffer(name, torch.from_numpy(c[name].copy()), persistent=False)
        self.register_buffer("basis", torch.from_numpy(c["basis"].copy()), persistent=False)
        self.project_in = nn.Linear(d_model, len(self.levels))
        self.project_out = nn.Linear(len(self.levels), d_model)

    @property
    def codebook_size(self) -> int:
        return int(np.prod(self.levels))

    def latent(self, h: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation latent (..., L): what the exported encoder outputs."""
        return self.project_in(h)

    def quantize_int(self, z: torch.Tensor) -> torch.Tensor:
        """Bounded, rounded integer values (..., L) with a straight-through gradient."""
        bounded = torch.tanh(z + self.shift) * self.half_l - self.offset
        return bounded + (torch.round(bounded) - bounded).detach()

    def codes_from_int(self, q_int: torch.Tensor) -> torch.Tensor:
        digits = (q_int.detach() + self.half_width).round().long()
        return (digits * self.basis).sum(dim=-1)

    def quantize(self, z: torch.Tensor, latent_noise: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-quantisation latent (..., L) -> (z_q (..., d), codes (...,) int64).

        `latent_noise` (training only): Gaussian jitter of that std added before rounding,
        the paper code's guard against codebook collapse.
        """
        if latent_noise > 0 and self.training:
            z = z + latent_noise * torch.randn_like(z)
        q_int = self.quantize_int(z)
        return self.project_out(q_int / self.half_width), self.codes_from_int(q_int)

    def z_q_from_latent(self, z: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.quantize_int(z) / self.half_width)
