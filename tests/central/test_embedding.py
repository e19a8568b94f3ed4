"""The frozen Transformer embedding and the pooling baselines."""

from __future__ import annotations

import numpy as np
import pytest

from central.embedding import (EmbeddingConfig, FrozenTransformerEmbedder, embed_sequences, mean_pool,
                               norm_weighted_pool, sinusoidal_positions)


def _sequences(n: int = 12, dim: int = 16, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(1, 30)), dim)).astype(np.float32) for _ in range(n)]


def test_two_runs_with_the_same_seed_give_identical_embeddings():
    seqs = _sequences()
    a = FrozenTransformerEmbedder(16, EmbeddingConfig(seed=3)).embed(seqs)
    b = FrozenTransformerEmbedder(16, EmbeddingConfig(seed=3)).embed(seqs)
    assert np.array_equal(a, b)


def test_another_seed_gives_another_network():
    seqs = _sequences()
    a = FrozenTransformerEmbedder(16, EmbeddingConfig(seed=0)).embed(seqs)
    b = FrozenTransformerEmbedder(16, EmbeddingConfig(seed=1)).embed(seqs)
    assert not np.allclose(a, b)


def test_the_default_shape_is_the_papers_256_wide_embedding():
    e = FrozenTransformerEmbedder(16)
    assert (e.config.d_model, e.config.n_layers, e.config.n_heads, e.config.d_ff) == (256, 4, 4, 512)
    out = e.embed(_sequences(5))
    assert out.shape == (5, 256) and out.dtype == np.float32 and np.all(np.isfinite(out))


def test_a_sequence_embeds_the_same_alone_or_padded_in_a_batch():
    seqs = _sequences(8)
    e = FrozenTransformerEmbedder(16)
    batch = e.embed(seqs)
    alone = np.stack([e.embed([s])[0] for s in seqs])
    np.testing.assert_allclose(batch, alone, atol=2e-5)


def test_embeddings_come_back_in_input_order_whatever_the_length_grouping():
    seqs = _sequences(10)
    e = FrozenTransformerEmbedder(16)
    forward = e.embed(seqs, batch_tokens=64)
    backward = e.embed(seqs[::-1], batch_tokens=64)
    np.testing.assert_allclose(forward, backward[::-1], atol=2e-5)


def test_token_order_matters_to_the_transformer_but_not_to_mean_pooling():
    s = _sequences(1)[0]
    while s.shape[0] < 3:
        s = np.concatenate([s, s])
    e = FrozenTransformerEmbedder(16)
    assert not np.allclose(e.embed([s]), e.embed([s[::-1]]), atol=1e-4)
    np.testing.assert_allclose(mean_pool([s]), mean_pool([s[::-1]]), atol=1e-6)


def test_standardising_with_the_codebook_statistics_removes_the_tokenizers_scale():
    seqs = _sequences(6)
    mean, std = np.full(16, 0.5, np.float32), np.full(16, 2.0, np.float32)
    a = FrozenTransformerEmbedder(16, input_mean=mean, input_std=std).embed(seqs)
    scaled = [100.0 * s for s in seqs]
    b = FrozenTransformerEmbedder(16, input_mean=100.0 * mean, input_std=100.0 * std).embed(scaled)
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_an_empty_sequence_is_refused_by_name():
    with pytest.raises(ValueError, match="sequence 1 is empty"):
        FrozenTransformerEmbedder(4).embed([np.ones((2, 4)), np.zeros((0, 4))])


def test_mean_pooling_is_the_mean_of_the_tokens():
    s = np.array([[1.0, 0.0], [3.0, 4.0]], np.float32)
    np.testing.assert_allclose(mean_pool([s])[0], [2.0, 2.0])


def test_norm_weighted_pooling_weights_tokens_by_their_norm():
    s = np.array([[1.0, 0.0], [3.0, 4.0]], np.float32)  # norms 1 and 5
    np.testing.assert_allclose(norm_weighted_pool([s])[0], [(1 * 1 + 5 * 3) / 6, (5 * 4) / 6], rtol=1e-6)


def test_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match="transformer, mean, norm_weighted"):
        embed_sequences(_sequences(2), "cls", 16)


def test_sinusoidal_positions_follow_the_transformer_formula():
    pe = sinusoidal_positions(5, 8)
    np.testing.assert_allclose(pe[0], [0, 1, 0, 1, 0, 1, 0, 1], atol=1e-7)
    np.testing.assert_allclose(pe[3, 0], np.sin(3.0), rtol=1e-6)
    np.testing.assert_allclose(pe[3, 3], np.cos(3.0 / 10000 ** (2 / 8)), rtol=1e-5)


def test_statistics_pooling_gives_mean_spread_ends_change_and_length():
    z = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0], [6.0, 3.0], [8.0, 1.0], [10.0, 1.0]], np.float32)
    out = embed_sequences([z], "statistics", 2)
    assert out.shape == (1, 11) and out.dtype == np.float32
    mean, std, first, last, change, log_len = out[0, 0:2], out[0, 2:4], out[0, 4:6], out[0, 6:8], out[0, 8:10], out[0, 10]
    assert np.allclose(mean, [5.0, 8 / 6]) and np.allclose(std, z.std(axis=0))
    assert np.allclose(first, [1.0, 1.0]) and np.allclose(last, [9.0, 1.0])  # thirds of 6 steps: 2 steps each
    assert np.allclose(change, [2.0, 4 / 5]) and np.isclose(log_len, np.log(6))


def test_statistics_pooling_tells_a_sweep_from_an_oscillation_with_the_same_mean():
    t = np.arange(12, dtype=np.float32)
    sweep = np.stack([t / 11 - 0.5, np.zeros(12, np.float32)], axis=1)
    wiggle = np.stack([np.where(t % 2 == 0, -0.5, 0.5).astype(np.float32), np.zeros(12, np.float32)], axis=1)
    a, b = embed_sequences([sweep, wiggle], "statistics", 2)
    assert np.allclose(mean_pool([sweep]), mean_pool([wiggle]), atol=1e-6)  # the mean cannot tell them apart
    assert b[8] > 5 * a[8]  # the wiggle changes every step
    assert a[4] < 0 < a[6] and abs(b[4] - b[6]) < 0.2  # the sweep starts low and ends high


def test_statistics_pooling_handles_one_and_two_step_segments():
    out = embed_sequences([np.ones((1, 3), np.float32), np.arange(6, dtype=np.float32).reshape(2, 3)], "statistics", 3)
    assert out.shape == (2, 16) and np.all(np.isfinite(out))
    assert np.allclose(out[0, 3:6], 0) and np.allclose(out[0, 12:15], 0) and out[0, 15] == 0.0
    assert np.allclose(out[1, 12:15], 3.0)
    assert embed_sequences([], "statistics", 3).shape == (0, 16)
