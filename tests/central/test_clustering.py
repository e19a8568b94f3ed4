"""z-score -> L2 -> k-means, k chosen by cosine silhouette, the mini-batch path, the scores."""

from __future__ import annotations

import numpy as np
import pytest

from central.clustering import ClusterOptions, choose_k, cluster_embeddings, cluster_metrics, normalize
from central.embedding import FrozenTransformerEmbedder
from central.registry import ModelRegistry
from central_testkit import MODEL_VERSION
from edge import evaluation


def _blobs(k: int, n_per: int = 40, dim: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k well-separated groups of rows (different directions after normalisation)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, dim)) * 6.0
    x = np.concatenate([c + rng.normal(size=(n_per, dim)) for c in centres]).astype(np.float32)
    return x, np.repeat(np.arange(k), n_per)


def test_normalisation_z_scores_features_then_makes_rows_unit_length():
    x, _ = _blobs(3)
    xn = normalize(x * 50.0 + 7.0)
    np.testing.assert_allclose(np.linalg.norm(xn, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(xn, normalize(x), atol=1e-5)  # scale and offset of features are gone


def test_k_is_chosen_by_cosine_silhouette_on_well_separated_data():
    x, truth = _blobs(5)
    c = cluster_embeddings(x, ClusterOptions(k_min=2, k_max=9))
    assert c.k == 5
    assert [k for k, _ in c.k_curve] == list(range(2, 10))
    assert max(c.k_curve, key=lambda kv: kv[1])[0] == 5
    assert evaluation.nmi(truth, c.labels) == pytest.approx(1.0)


def test_a_given_k_is_used_and_no_curve_is_computed():
    x, _ = _blobs(4)
    c = cluster_embeddings(x, ClusterOptions(k=6))
    assert c.k == 6 and c.k_curve == [] and set(c.labels.tolist()) == set(range(6))


def test_the_mini_batch_path_on_disk_finds_the_same_partition(tmp_path):
    x, truth = _blobs(4, n_per=300)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    c = cluster_embeddings(mm, ClusterOptions(k_min=2, k_max=6, chunk_rows=256, silhouette_sample=400))
    assert c.mini_batch and c.k == 4
    assert evaluation.ari(truth, c.labels) == pytest.approx(1.0)
    assert c.distances.shape == (x.shape[0],) and np.all(c.distances >= 0)


def test_scores_are_computed_with_and_without_ground_truth():
    x, truth = _blobs(3)
    c = cluster_embeddings(x, ClusterOptions(k=3))
    unsupervised = cluster_metrics(x, c)
    assert {"silhouette_cosine", "calinski_harabasz", "davies_bouldin"} <= set(unsupervised)
    assert "nmi" not in unsupervised
    assert unsupervised["silhouette_cosine"] > 0.5 and unsupervised["davies_bouldin"] < 1.0
    scored = cluster_metrics(x, c, [str(t) for t in truth])
    assert scored["nmi"] == pytest.approx(1.0) and scored["ari"] == pytest.approx(1.0)
    assert scored["hungarian_accuracy"] == pytest.approx(1.0)


def test_segments_without_a_label_are_left_out_of_the_supervised_scores():
    x, truth = _blobs(3)
    c = cluster_embeddings(x, ClusterOptions(k=3))
    labels = [None if i % 2 else str(t) for i, t in enumerate(truth)]
    scored = cluster_metrics(x, c, labels)
    assert scored["n_labelled"] == len(truth) // 2 and scored["nmi"] == pytest.approx(1.0)


def test_choose_k_refuses_too_few_rows():
    with pytest.raises(ValueError, match="too few"):
        choose_k(np.eye(2, dtype=np.float32), 2, 5)


def test_code_sequences_of_distinct_motifs_cluster_into_their_motifs(registry_dir):
    registry = ModelRegistry(registry_dir)
    rng = np.random.default_rng(1)
    motifs = [rng.integers(0, 1920, size=3) for _ in range(4)]
    seqs, truth = [], []
    for i in range(120):
        codes = np.resize(motifs[i % 4], int(rng.integers(6, 15)))
        seqs.append(registry.z_q(codes, MODEL_VERSION))
        truth.append(i % 4)
    mean, std = registry.codebook_stats(MODEL_VERSION)
    x = FrozenTransformerEmbedder(registry.latent_dim(MODEL_VERSION), input_mean=mean, input_std=std).embed(seqs)
    c = cluster_embeddings(x, ClusterOptions(k=4))
    assert evaluation.nmi(truth, c.labels) > 0.8
