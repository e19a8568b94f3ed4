"""The AMPLIFY-style motion tokenizer in torch: causal Transformer encoder, FSQ, training decoder.

Shapes (B batch, S = T-1 velocity steps, N points, L = len(fsq_levels), d model width,
K = (2m+1)^2 displacement classes with m = max_displacement_px for "joint" targets, or
2 axes x A bins for "axis_bins" targets, see `export.tokenizer.losses`):
    velocity (B, S, N, 2) normalised (px / velocity_scale_px, zero where invisible)
    -> [signed square root, `input_transform`] -> tokens (B, S, d) -> causal encoder
    -> latent (B, S, L) pre-quantisation -> FSQ -> z_q (B, S, d), codes (B, S)
    -> decoder (training only) -> logits (B, S, N, K) or (B, S, N, 2, A)

The attention blocks are written out (no fused kernels) so the ONNX export is plain MatMul /
Softmax, the causal mask is explicit, and FP16 conversion is safe (the mask uses -1e4, not -inf).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from export.tokenizer.fsq import FSQ
from export.tokenizer.losses import AXIS_BINS, DECODER_TARGETS

#: Named encoder shapes. "small" is the edge default; "base" is the paper's width.
PRESETS: dict[str, dict[str, int]] = {
    "small": {"d_model": 256, "n_heads": 4, "n_layers": 2},
    "base": {"d_model": 768, "n_heads": 8, "n_layers": 2},
}

_MASK_VALUE = -1e4  # finite so an FP16 engine cannot turn a masked row into NaN
#: Encoder input transforms (inside the exported graph, so the device feeds v / scale either way).
INPUT_TRANSFORMS = ("linear", "signed_sqrt")
_SQRT_EPS = 1e-4  # keeps the derivative of the signed square root finite at 0


@dataclass
class TokenizerConfig:
    """Architecture of one tokenizer. `steps` = T-1, `n_points` = N."""

    preset: str = "small"
    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 2
    dropout: float = 0.1
    steps: int = 15
    n_points: int = 400
    fsq_levels: list[int] = field(default_factory=lambda: [8, 8, 6, 5])
    max_displacement_px: int = 7
    point_embed_dim: int = 64
    decoder_hidden: int = 128
    #: "linear" feeds v/scale as it is (the paper); "signed_sqrt" feeds sign(x)*sqrt(|x|), which
    #: spreads sub-pixel motion over more of the input range (edge/shipped_models/README.md).
    input_transform: str = "linear"
    #: "joint": one class per integer (dx, dy) in [-m, m]^2 (the paper); "axis_bins": per axis,
    #: the nearest of the non-uniform bins `AXIS_BINS` (sub-pixel motion has classes of its own).
    decoder_targets: str = "joint"

    def __post_init__(self) -> None:
        if self.input_transform not in INPUT_TRANSFORMS:
            raise ValueError(f"input_transform {self.input_transform!r}: use one of {', '.join(INPUT_TRANSFORMS)}")
        if self.decoder_targets not in DECODER_TARGETS:
            raise ValueError(f"decoder_targets {self.decoder_targets!r}: use one of {', '.join(DECODER_TARGETS)}")

    @classmethod
    def from_preset(cls, preset: str, **overrides: object) -> "TokenizerConfig":
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
        return cls(preset=preset, **{**PRESETS[preset], **overrides})  # type: ignore[arg-type]

    @property
    def n_classes(self) -> int:
        """Logits per point and step: (2m+1)^2 joint classes, or 2 axes x len(AXIS_BINS) bins."""
        if self.decoder_targets == "axis_bins":
            return 2 * len(AXIS_BINS)
        return (2 * self.max_displacement_px + 1) ** 2

    def to_dict(self) -> dict:
        return asdict(self)


class Attention(nn.Module):
    """Multi-head attention; `causal` masks keys after the query position."""

    def __init__(self, d: int, heads: int, dropout: float, causal: bool, max_len: int) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by {heads} heads")
        self.heads, self.dh = heads, d // heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.proj = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)
        mask = torch.triu(torch.ones(max_len, max_len, dtype=torch.bool), diagonal=1) if causal else None
        self.register_buffer(
            "mask", None if mask is None else torch.zeros(max_len, max_len).masked_fill(mask, _MASK_VALUE),
            persistent=False,
        )

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        b, s, d = x.shape
        ctx = x if context is None else context
        q = self.q(x).view(b, s, self.heads, self.dh).transpose(1, 2)
        k, v = self.kv(ctx).view(b, ctx.shape[1], 2, self.heads, self.dh).permute(2, 0, 3, 1, 4)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.dh))
        if self.mask is not None:
            att = att + self.mask[:s, :s]
        att = self.drop(att.softmax(dim=-1))
        out = (att @ v).transpose(1, 2).reshape(b, s, d)
        return self.drop(self.proj(out))


class MLP(nn.Module):
    def __init__(self, d: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.out(F.gelu(self.fc(x))))


class EncoderBlock(nn.Module):
    """GPT-style pre-LayerNorm block with causal self-attention."""

    def __init__(self, d: int, heads: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, dropout, causal=True, max_len=max_len)
        self.mlp = MLP(d, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class DecoderBlock(nn.Module):
    """Self-attention over the step queries, cross-attention to the quantised tokens, MLP."""

    def __init__(self, d: int, heads: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.ln1, self.ln2, self.ln3, self.ln_ctx = (nn.LayerNorm(d) for _ in range(4))
        self.self_attn = Attention(d, heads, dropout, causal=False, max_len=max_len)
        self.cross_attn = Attention(d, heads, dropout, causal=False, max_len=max_len)
        self.mlp = MLP(d, dropout)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.ln1(x))
        x = x + self.cross_attn(self.ln2(x), self.ln_ctx(ctx))
        return x + self.mlp(self.ln3(x))


class MotionTokenizer(nn.Module):
    """Encoder + FSQ + decoder. `encode` is what gets exported; `forward` is for training."""

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, s = cfg.d_model, cfg.steps
        self.embed = nn.Linear(cfg.n_points * 2, d)
        self.pos = nn.Parameter(torch.zeros(1, s, d))
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(d, cfg.n_heads, cfg.dropout, s) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.fsq = FSQ(d, cfg.fsq_levels)
        # Decoder: zero queries + positional embedding attend to the quantised tokens; the step
        # output is broadcast to every point, joined with a learned point embedding, and an MLP
        # gives logits over the (2m+1)^2 integer displacements.
        self.dec_pos = nn.Parameter(torch.zeros(1, s, d))
        self.decoder = DecoderBlock(d, cfg.n_heads, cfg.dropout, s)
        self.dec_ln = nn.LayerNorm(d)
        self.point_embed = nn.Parameter(torch.zeros(cfg.n_points, cfg.point_embed_dim))
        # Linear(concat(step, point)) split into its two halves so the (B,S,N,·) tensor is
        # formed once, by broadcasting, instead of concatenating copies.
        self.head_step = nn.Linear(d, cfg.decoder_hidden)
        self.head_point = nn.Linear(cfg.point_embed_dim, cfg.decoder_hidden, bias=False)
        self.head_out = nn.Linear(cfg.decoder_hidden, cfg.n_classes)
        self.apply(self._init)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.dec_pos, std=0.02)
        nn.init.normal_(self.point_embed, std=0.02)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def encode(self, velocity: torch.Tensor) -> torch.Tensor:
        """velocity (B, S, N, 2) normalised -> pre-quantisation latent (B, S, L)."""
        b, s = velocity.shape[:2]
        if self.cfg.input_transform == "signed_sqrt":
            # sqrt(|x| + eps) - sqrt(eps): 0 at 0 with a finite slope, FP16-safe.
            velocity = torch.sign(velocity) * (torch.sqrt(velocity.abs() + _SQRT_EPS) - _SQRT_EPS ** 0.5)
        x = self.embed(velocity.reshape(b, s, -1)) + self.pos[:, :s]
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)
        return self.fsq.latent(self.ln_f(x))

    def decode(self, z_q: torch.Tensor, points: torch.Tensor | None = None) -> torch.Tensor:
        """z_q (B, S, d) -> displacement logits (B, S, P, K), or (B, S, P, 2, A) for axis bins;
        P = N, or the points at indices `points` (P,) only (training on a subset is cheaper)."""
        b, s, _ = z_q.shape
        q = self.dec_pos[:, :s].expand(b, -1, -1)
        h = self.dec_ln(self.decoder(q, z_q))
        embed = self.point_embed if points is None else self.point_embed[points]
        hidden = self.head_step(h)[:, :, None, :] + self.head_point(embed)[None, None]
        logits = self.head_out(F.gelu(hidden))
        if self.cfg.decoder_targets == "axis_bins":
            return logits.reshape(*logits.shape[:-1], 2, len(AXIS_BINS))
        return logits

    def forward(self, velocity: torch.Tensor, latent_noise: float = 0.0,
                points: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        latent = self.encode(velocity)
        z_q, codes = self.fsq.quantize(latent, latent_noise)
        return {"latent": latent, "codes": codes, "z_q": z_q, "logits": self.decode(z_q, points)}


class EncoderExport(nn.Module):
    """The exported graph: normalised velocity (1, S, N, 2) -> latent (1, S, L)."""

    def __init__(self, model: MotionTokenizer) -> None:
        super().__init__()
        self.model = model

    def forward(self, velocity: torch.Tensor) -> torch.Tensor:
        return self.model.encode(velocity)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
