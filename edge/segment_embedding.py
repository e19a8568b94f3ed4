"""Segment embeddings: a frozen, randomly initialised Transformer encoder over z_q (LAPS), and
the two pooling baselines. NumPy only (no torch on the fleet side or on the device).

Why in `edge`: central clusters these embeddings, and a device that carries the resulting
primitive library (`edge.primitive_library`) labels its own segments with the SAME embedding,
so there is one copy of the arithmetic. `central.embedding` re-exports every name here.

docs/method.md#clustering: per segment its sequence of z_q tokens (S, D) -> Linear(D, 256)
-> + sinusoidal positions -> 4 encoder layers (d = 256, 4 heads, feed-forward 512, GELU) ->
mean pooling over the S tokens. The network is never trained: a fixed random non-linear map
that mixes each token with its context. The paper's code leaves dropout on and draws weights
without a seed, so its embeddings change from run to run; here the weights come from one
seeded generator, there is no dropout (eval mode), and the arithmetic is plain float32
NumPy, so the same seed and the same input give the same output.

Ours, beyond the paper: tokens are standardised per dimension with the model's codebook
statistics before the input projection (why: see `FrozenTransformerEmbedder`), and GELU uses
its tanh form (within ~1e-3 of erf; 4x cheaper in NumPy; no trained weight can depend on it).

Layer layout and initialisation follow PyTorch's `nn.TransformerEncoderLayer` defaults
(post-norm: x = LN(x + SelfAttn(x)); x = LN(x + FF(x)); LayerNorm eps 1e-5, gain 1, bias 0;
attention in/out projections Xavier-uniform / U(+-1/sqrt(fan_in)) with zero biases; other
Linear layers U(+-1/sqrt(fan_in)) for weight and bias), so it behaves like the paper's.

Baselines (same downstream normalisation and k-means): `mean_pool` (plain mean of z_q over
tokens) and `norm_weighted_pool` (tokens weighted by ||z_q,t||, the paper's comparison).

Ours, a cheap alternative: `statistics_pool` (per-dimension mean, spread, beginning, end and
rate of change of the sequence, and its length) — no network, > 10k segments/s on 2 cores.
Ours, from the device's point tracks: "motion" takes each segment's motion summary
(`edge.motion_summary`: `statistics_pool` of a 4x4 grid of cell velocities, speeds, divergence and speed spread per step,
computed on the device from its tracker) as the embedding. It sees where in the image the
motion happens, which the FSQ codes mostly lose; it needs segments that carry a summary.
Which method clusters real primitives best, and on what data, is measured in
`benchmarks/clustering.py` (README, "Central: ingest, primitive library, dataset").
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

#: embedding methods, by the names the CLI, reports and benchmarks use
METHODS = ("transformer", "mean", "norm_weighted", "statistics", "motion")
#: methods whose input is the segment's motion summary (`edge.motion_summary`), not its z_q
MOTION_METHODS = ("motion",)
#: what a clustering run compares unless told otherwise: the paper's method and its two baselines
DEFAULT_METHODS = ("transformer", "mean", "norm_weighted")


@dataclass(frozen=True)
class EmbeddingConfig:
    """Shape and seed of the frozen encoder (docs/method.md#clustering defaults)."""

    d_model: int = 256
    n_heads: int = 4
    n_layers: int = 4
    d_ff: int = 512
    seed: int = 0

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")


class FrozenTransformerEmbedder:
    """The frozen random Transformer encoder with mean pooling.

    input_dim: D of the z_q tokens. input_mean/input_std: (D,) per-dimension statistics the
    tokens are standardised with before the input projection (use the model's codebook
    statistics, `ModelRegistry.codebook_stats`); None = tokens as given.
    `embed(sequences)` -> (n, d_model) float32.

    Why standardise: the sinusoidal positions have unit amplitude whatever the tokenizer, while
    z_q's scale is whatever the tokenizer's output projection learnt (0.02 RMS for a fresh one).
    Unscaled, a small z_q drowns under the positions and mean pooling then encodes little but
    the segment's LENGTH. Standardising with the codebook's statistics (a property of the
    model, identical for every run and chunk) keeps content and position on one scale.
    """

    def __init__(self, input_dim: int, config: EmbeddingConfig = EmbeddingConfig(),
                 input_mean: np.ndarray | None = None, input_std: np.ndarray | None = None) -> None:
        self.input_dim = int(input_dim)
        self.config = config
        self.input_mean = None if input_mean is None else np.asarray(input_mean, np.float32).reshape(-1)
        self.input_scale = None if input_std is None else (1.0 / np.asarray(input_std, np.float32)).reshape(-1)
        rng = np.random.default_rng(config.seed)
        d, ff = config.d_model, config.d_ff
        self.w_in, self.b_in = _linear(rng, self.input_dim, d)
        self.layers = []
        for _ in range(config.n_layers):
            bound = math.sqrt(6.0 / (d + 3 * d))  # Xavier-uniform over the packed (3d, d) in-projection
            w_qkv = rng.uniform(-bound, bound, size=(3 * d, d)).astype(np.float32)
            w_o, _ = _linear(rng, d, d)
            w1, b1 = _linear(rng, d, ff)
            w2, b2 = _linear(rng, ff, d)
            self.layers.append({
                "w_qkv_t": np.ascontiguousarray(w_qkv.T), "b_qkv": np.zeros(3 * d, np.float32),
                "w_o_t": np.ascontiguousarray(w_o.T), "b_o": np.zeros(d, np.float32),
                "w1_t": np.ascontiguousarray(w1.T), "b1": b1, "w2_t": np.ascontiguousarray(w2.T), "b2": b2,
            })
        self.w_in_t = np.ascontiguousarray(self.w_in.T)
        self._pe = sinusoidal_positions(256, d)

    @property
    def dim(self) -> int:
        return self.config.d_model

    def embed(self, sequences: Sequence[np.ndarray], batch_tokens: int = 8192, progress: bool = False) -> np.ndarray:
        """Embed each (S_i, D) sequence (S_i >= 1) -> (n, d_model) float32, in input order.

        Sequences are grouped by length into batches of at most `batch_tokens` padded tokens
        (padding is masked out of attention and pooling), a deterministic grouping, so the
        same input always runs the same arithmetic.
        """
        n = len(sequences)
        out = np.empty((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        lengths = np.array([np.shape(s)[0] for s in sequences], dtype=np.int64)
        if lengths.min() < 1:
            raise ValueError(f"sequence {int(np.argmin(lengths))} is empty; every segment needs at least one token")
        order = np.argsort(lengths, kind="stable")
        batches = list(_length_batches(order, lengths, batch_tokens))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="embedding", unit="seq", file=sys.stderr, leave=False)
        for idx in batches:
            out[idx] = self._forward([sequences[i] for i in idx])
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out

    # -- the network ---------------------------------------------------------------------------------
    def _forward(self, seqs: list[np.ndarray]) -> np.ndarray:
        b = len(seqs)
        L = max(int(np.shape(s)[0]) for s in seqs)
        d, h = self.config.d_model, self.config.n_heads
        dh = d // h
        x = np.zeros((b, L, self.input_dim), np.float32)
        mask = np.zeros((b, L), bool)
        for i, s in enumerate(seqs):
            arr = np.asarray(s, np.float32)
            if arr.ndim != 2 or arr.shape[1] != self.input_dim:
                raise ValueError(f"sequence has shape {arr.shape}, expected (S, {self.input_dim})")
            x[i, : arr.shape[0]] = arr
            mask[i, : arr.shape[0]] = True
        if self.input_mean is not None:
            x -= self.input_mean
        if self.input_scale is not None:
            x *= self.input_scale
        if L > self._pe.shape[0]:
            self._pe = sinusoidal_positions(max(L, 2 * self._pe.shape[0]), d)
        hid = (x.reshape(b * L, -1) @ self.w_in_t + self.b_in).reshape(b, L, d)
        hid += self._pe[:L]
        key_bias = np.where(mask, 0.0, -1e30).astype(np.float32)[:, None, None, :]  # (b, 1, 1, L)
        scale = np.float32(1.0 / math.sqrt(dh))
        for p in self.layers:
            flat = hid.reshape(b * L, d)
            qkv = (flat @ p["w_qkv_t"] + p["b_qkv"]).reshape(b, L, 3, h, dh)
            q = qkv[:, :, 0].transpose(0, 2, 1, 3)  # (b, h, L, dh)
            k = qkv[:, :, 1].transpose(0, 2, 3, 1)  # (b, h, dh, L)
            v = qkv[:, :, 2].transpose(0, 2, 1, 3)
            scores = (q @ k) * scale + key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            att = (scores @ v).transpose(0, 2, 1, 3).reshape(b * L, d)
            flat = _layer_norm(flat + (att @ p["w_o_t"] + p["b_o"]))
            ff = _gelu(flat @ p["w1_t"] + p["b1"]) @ p["w2_t"] + p["b2"]
            flat = _layer_norm(flat + ff)
            hid = flat.reshape(b, L, d)
        weights = mask.astype(np.float32)
        pooled = (hid * weights[:, :, None]).sum(axis=1) / weights.sum(axis=1, keepdims=True)
        return pooled.astype(np.float32)


def mean_pool(sequences: Iterable[np.ndarray]) -> np.ndarray:
    """Baseline: the plain mean of each (S, D) z_q sequence -> (n, D) float32."""
    return np.stack([np.asarray(s, np.float32).mean(axis=0) for s in sequences]).astype(np.float32)


def norm_weighted_pool(sequences: Iterable[np.ndarray]) -> np.ndarray:
    """Baseline: sum_t w_t z_q,t with w_t = ||z_q,t|| / sum_t ||z_q,t|| -> (n, D) float32.
    (Plain mean when every token is zero.)"""
    out = []
    for s in sequences:
        z = np.asarray(s, np.float32)
        w = np.linalg.norm(z, axis=1)
        total = w.sum()
        out.append(z.mean(axis=0) if total <= 0 else (w[:, None] * z).sum(axis=0) / total)
    return np.stack(out).astype(np.float32)


def statistics_pool(sequences: Iterable[np.ndarray]) -> np.ndarray:
    """Per (S, D) sequence, the concatenation (5 D + 1 values, float32) of: the mean over the S
    steps; the standard deviation; the mean of the first third and of the last third (where
    the motion starts and ends; the whole sequence when S < 3); the mean absolute step-to-step
    change (how fast it changes: oscillation against a steady sweep); and log S (duration in
    steps). -> (n, 5 D + 1).

    Why these: a primitive is told apart by where and how the motion goes, not only by its
    average, and the downstream z-score puts every statistic on one scale. It needs no weights,
    so it cannot be fitted to any one generator.
    """
    seqs = [np.asarray(s, np.float32) for s in sequences]
    if not seqs:
        raise ValueError("no sequences to pool; embed_sequences handles an empty list")
    dim = seqs[0].shape[1] if seqs[0].ndim == 2 else -1
    for s in seqs:
        if s.ndim != 2 or s.shape[0] < 1 or s.shape[1] != dim:
            raise ValueError(f"sequence has shape {s.shape}; expected (S >= 1, {dim})")
    out = np.empty((len(seqs), 5 * dim + 1), np.float32)
    lengths = np.array([s.shape[0] for s in seqs])
    # Sequences of one length are pooled together as one (b, S, D) array: the same arithmetic
    # per row as one at a time, many times faster than a Python loop over short sequences.
    for n in np.unique(lengths):
        idx = np.flatnonzero(lengths == n)
        z = np.stack([seqs[i] for i in idx])  # (b, n, D)
        third = max(n // 3, 1) if n >= 3 else n
        row = out[idx]
        row[:, 0:dim] = z.mean(axis=1)
        row[:, dim:2 * dim] = z.std(axis=1)
        row[:, 2 * dim:3 * dim] = z[:, :third].mean(axis=1)
        row[:, 3 * dim:4 * dim] = z[:, n - third:].mean(axis=1)
        row[:, 4 * dim:5 * dim] = np.abs(np.diff(z, axis=1)).mean(axis=1) if n > 1 else 0.0
        row[:, 5 * dim] = math.log(n)
        out[idx] = row
    return out


class MethodEmbedder:
    """One embedding method with its settings, ready for many calls: `embed(sequences)` ->
    (n, dim) float32. The frozen Transformer's weights are drawn once here, not per call (the
    clustering engines and a device's primitive library embed chunk after chunk).
    input_stats: (mean, std) the Transformer standardises tokens with (the poolings take z_q
    as it is, as in the paper). A method in MOTION_METHODS embeds motion summaries instead: each
    item of `embed`'s argument is one segment's (MOTION_DIM,) summary."""

    def __init__(self, method: str, input_dim: int, config: EmbeddingConfig = EmbeddingConfig(),
                 input_stats: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"embedding method {method!r} is not one of {', '.join(METHODS)}")
        self.method, self.input_dim = method, int(input_dim)
        mean, std = input_stats if input_stats is not None else (None, None)
        self.transformer = FrozenTransformerEmbedder(self.input_dim, config, mean, std) if method == "transformer" else None
        self.dim = embedding_dim(method, self.input_dim, config)

    def embed(self, sequences: Sequence[np.ndarray], progress: bool = False) -> np.ndarray:
        if self.transformer is not None:
            return self.transformer.embed(sequences, progress=progress)
        if not len(sequences):
            return np.zeros((0, self.dim), np.float32)
        if self.method in MOTION_METHODS:
            rows = [np.asarray(s, np.float32).reshape(-1) for s in sequences]
            for r in rows:
                if r.shape != (self.dim,):
                    raise ValueError(f"a motion summary has {r.size} values; expected {self.dim}")
            return np.stack(rows)
        pool = {"mean": mean_pool, "norm_weighted": norm_weighted_pool, "statistics": statistics_pool}[self.method]
        return pool(sequences)


def embed_sequences(sequences: Sequence[np.ndarray], method: str, input_dim: int,
                    config: EmbeddingConfig = EmbeddingConfig(), progress: bool = False,
                    input_stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Embed z_q sequences with `method` (one of METHODS) once -> (n, dim) float32; for many
    calls keep a `MethodEmbedder`."""
    return MethodEmbedder(method, input_dim, config, input_stats).embed(sequences, progress=progress)


def embedding_dim(method: str, input_dim: int, config: EmbeddingConfig = EmbeddingConfig()) -> int:
    """Width of the embeddings `method` produces for z_q of width `input_dim` (a motion
    method's width is the summary's, whatever `input_dim`)."""
    if method in MOTION_METHODS:
        from edge.motion_summary import MOTION_DIM  # that module pools with this one's statistics_pool

        return MOTION_DIM
    if method == "statistics":
        return 5 * int(input_dim) + 1
    return config.d_model if method == "transformer" else int(input_dim)


def sinusoidal_positions(length: int, d: int) -> np.ndarray:
    """(length, d) float32: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same)."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    div = np.exp(np.arange(0, d, 2, dtype=np.float64) * (-math.log(10000.0) / d))
    pe = np.zeros((length, d), np.float64)
    pe[:, 0::2] = np.sin(pos * div)
    pe[:, 1::2] = np.cos(pos * div)[:, : d // 2]
    return pe.astype(np.float32)


# -- helpers ----------------------------------------------------------------------------------------------
def _linear(rng: np.random.Generator, fan_in: int, fan_out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's nn.Linear default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)); weight (out, in)."""
    bound = 1.0 / math.sqrt(fan_in)
    w = rng.uniform(-bound, bound, size=(fan_out, fan_in)).astype(np.float32)
    b = rng.uniform(-bound, bound, size=fan_out).astype(np.float32)
    return w, b


def _layer_norm(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm over the last axis of a (rows, d) float32 array, in place. Gain 1 and bias 0:
    PyTorch's initial values, and the network is never trained."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / np.float32(x.shape[-1])
    x *= (1.0 / np.sqrt(var + np.float32(eps))).astype(np.float32)[:, None]
    return x


def _gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), float32, in place.
    (Within ~1e-3 of the erf form; four times cheaper in NumPy, and a frozen random network
    has no trained weights that could depend on the difference.)"""
    y = x * x
    y *= x
    y *= np.float32(0.044715)
    y += x
    y *= np.float32(math.sqrt(2.0 / math.pi))
    np.tanh(y, out=y)
    y += np.float32(1.0)
    y *= x
    y *= np.float32(0.5)
    return y


def _length_batches(order: np.ndarray, lengths: np.ndarray, batch_tokens: int) -> Iterable[np.ndarray]:
    """Consecutive runs of `order` (sorted by length) whose padded size stays <= batch_tokens."""
    start = 0
    n = order.size
    while start < n:
        end = start + 1
        while end < n and (end + 1 - start) * int(lengths[order[end]]) <= batch_tokens:
            end += 1
        yield order[start:end]
        start = end
