"""Finite Scalar Quantisation in float32 NumPy: latent -> code -> z_q, outside the network.

The exported encoder stops at the pre-quantisation latent z (one value per FSQ level). The
device bounds and rounds here, in float32, so an FP16 engine can only move z, never flip the
rounding itself; `export.tokenizer.fsq` does the same arithmetic in torch (a test pins parity).

Per dimension i with L_i levels (Mentzer et al. 2023, as in AMPLIFY / LAPS):
    half_i  = (L_i - 1) * (1 + eps) / 2
    off_i   = 0.5 if L_i is even else 0
    shift_i = atanh(off_i / half_i)
    bound   = tanh(z + shift_i) * half_i - off_i
    q_int   = round(bound)                      integer in [-(L_i // 2), (L_i - 1) // 2]
    q       = q_int / (L_i // 2)                normalised value in [-1, 1]
    digit_i = q_int + L_i // 2                  in [0, L_i - 1]
    code    = sum_i digit_i * prod_{j<i} L_j    in [0, prod L)
z_q = W q + b with the exported output projection (W: (D, L), b: (D,)).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: The bound's margin, as in the reference FSQ implementation.
FSQ_EPS = 1e-3


def fsq_constants(levels: Sequence[int]) -> dict[str, np.ndarray]:
    """float32 constants of the FSQ for `levels` (shared with the torch module so both agree)."""
    lv = np.asarray(levels, dtype=np.int64)
    half_l = ((lv - 1) * (1.0 + FSQ_EPS) / 2.0).astype(np.float32)
    offset = np.where(lv % 2 == 0, 0.5, 0.0).astype(np.float32)
    shift = np.arctanh(offset.astype(np.float64) / half_l.astype(np.float64)).astype(np.float32)
    half_width = (lv // 2).astype(np.float32)
    basis = np.cumprod(np.concatenate([[1], lv[:-1]])).astype(np.int64)
    return {"half_l": half_l, "offset": offset, "shift": shift, "half_width": half_width, "basis": basis,
            "levels": lv}


class FSQ:
    """FSQ rounding and codes <-> z_q for one model (levels + output projection)."""

    def __init__(self, levels: Sequence[int], out_weight: np.ndarray, out_bias: np.ndarray) -> None:
        c = fsq_constants(levels)
        self.levels = c["levels"]
        self._half_l, self._offset, self._shift = c["half_l"], c["offset"], c["shift"]
        self._half_width, self._basis = c["half_width"], c["basis"]
        self.codebook_size = int(np.prod(self.levels))
        self.out_weight = np.ascontiguousarray(out_weight, dtype=np.float32)  # (D, L)
        self.out_bias = np.ascontiguousarray(out_bias, dtype=np.float32)      # (D,)
        if self.out_weight.shape[1] != len(self.levels) or self.out_bias.shape != (self.out_weight.shape[0],):
            raise ValueError(
                f"projection shapes {self.out_weight.shape}, {self.out_bias.shape} do not fit {len(self.levels)} levels"
            )

    @property
    def dim(self) -> int:
        """D, the width of z_q."""
        return int(self.out_weight.shape[0])

    def quantize_int(self, latent: np.ndarray) -> np.ndarray:
        """Pre-quantisation latent (..., L) -> integer FSQ values (..., L) as float32."""
        z = np.asarray(latent, dtype=np.float32)
        bounded = np.tanh(z + self._shift) * self._half_l - self._offset
        return np.round(bounded).astype(np.float32)

    def codes(self, latent: np.ndarray) -> np.ndarray:
        """Pre-quantisation latent (..., L) -> codes (...,) int64 in [0, codebook_size)."""
        digits = (self.quantize_int(latent) + self._half_width).astype(np.int64)
        return digits @ self._basis

    def normalized_from_codes(self, codes: np.ndarray | int) -> np.ndarray:
        """Codes (...,) -> normalised FSQ values (..., L) float32 in [-1, 1]."""
        c = np.asarray(codes, dtype=np.int64)
        if np.any(c < 0) or np.any(c >= self.codebook_size):
            bad = c[(c < 0) | (c >= self.codebook_size)].ravel()[0]
            raise ValueError(f"code {bad} is outside [0, {self.codebook_size})")
        digits = (c[..., None] // self._basis) % self.levels
        return ((digits.astype(np.float32) - self._half_width) / self._half_width).astype(np.float32)

    def z_q_from_codes(self, codes: np.ndarray | int) -> np.ndarray:
        """Codes (...,) -> z_q (..., D) float32 through the output projection."""
        q = self.normalized_from_codes(codes)
        return (q @ self.out_weight.T + self.out_bias).astype(np.float32)

    def z_q(self, latent: np.ndarray) -> np.ndarray:
        """Pre-quantisation latent (..., L) -> z_q (..., D) float32 (same as via the codes)."""
        q = self.quantize_int(latent) / self._half_width
        return (q @ self.out_weight.T + self.out_bias).astype(np.float32)


def window_mean_energy(z_q_tokens: np.ndarray) -> float:
    """The paper code's energy for one window: mean over t of ||z_q[t+1] - z_q[t]||_2.

    z_q_tokens: (S, D) quantised latents of the S tokens of one window, oldest first.
    """
    z = np.asarray(z_q_tokens, dtype=np.float32)
    if z.shape[0] < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(z, axis=0), axis=1).mean())
