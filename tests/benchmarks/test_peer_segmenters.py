"""The peers of the real-data benchmark find the boundaries of piecewise-constant features."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.peers.abd import abd_labels, abd_segments
from benchmarks.peers.baselines import equal_split, periodic
from benchmarks.peers.twfinch import twfinch_labels, twfinch_segments

FPS = 10.0


def piecewise(lengths, dim=8, noise=0.05, seed=0, means=None):
    """(T, dim) features: one mean per piece (random unit vectors unless given) plus Gaussian
    noise; and the true boundaries in frames."""
    rng = np.random.default_rng(seed)
    if means is None:
        means = rng.normal(size=(len(lengths), dim))
        means /= np.linalg.norm(means, axis=1, keepdims=True)  # normalised, as feature vectors usually are
    x = np.concatenate([m + noise * rng.normal(size=(n, dim)) for m, n in zip(means, lengths)])
    return x.astype(np.float32), np.cumsum(lengths)[:-1]


def inner_boundaries(segments, duration):
    """Sorted distinct boundary times strictly inside (0, duration)."""
    b = np.unique(np.round(segments.ravel(), 6))
    return b[(b > 0) & (b < duration)]


@pytest.mark.parametrize("segmenter", [abd_segments, twfinch_segments], ids=["ABD", "TW-FINCH"])
def test_finds_every_boundary_of_piecewise_constant_features(segmenter):
    x, cuts = piecewise([60, 90, 50, 100])
    segs = segmenter(x, FPS, 4)
    found = inner_boundaries(segs, x.shape[0] / FPS)
    assert found.size == cuts.size
    # within 5 frames: ABD smooths over alpha * T / K = 30 frames before it looks for minima
    np.testing.assert_allclose(found, cuts / FPS, atol=0.5)


@pytest.mark.parametrize("segmenter", [abd_segments, twfinch_segments], ids=["ABD", "TW-FINCH"])
def test_segments_tile_the_video(segmenter):
    x, _ = piecewise([40, 70, 30], seed=3)
    segs = segmenter(x, FPS, 3)
    assert segs[0, 0] == 0.0 and segs[-1, 1] == pytest.approx(x.shape[0] / FPS)
    np.testing.assert_allclose(segs[1:, 0], segs[:-1, 1])


def test_abd_refinement_gives_a_returning_action_its_first_cluster():
    # A, B, A again: with K = 2 clusters the third piece joins the first one's cluster.
    a, b = np.ones(8), -np.ones(8)
    b[:4] = 1.0
    x, _ = piecewise([50, 50, 50], means=[a, b, a], seed=1)
    labels = abd_labels(x, 2)
    assert len(np.unique(labels)) == 2
    assert labels[10] == labels[140] != labels[75]


def test_twfinch_keeps_a_returning_action_apart_in_time():
    # Time weighting: the same appearance far apart in time is not the first neighbour.
    a, b = np.ones(8), -np.ones(8)
    b[:4] = 1.0
    x, _ = piecewise([50, 50, 50], means=[a, b, a], seed=1)
    labels = twfinch_labels(x, 3)
    assert len({labels[10], labels[75], labels[140]}) == 3


def test_abd_and_twfinch_return_exactly_k_clusters_when_asked_for_fewer_than_the_pieces():
    x, _ = piecewise([40, 40, 40, 40, 40], seed=2)
    assert len(np.unique(abd_labels(x, 3))) == 3
    assert len(np.unique(twfinch_labels(x, 3))) == 3


def test_equal_split_cuts_k_equal_parts():
    np.testing.assert_allclose(equal_split(12.0, 3), [[0, 4], [4, 8], [8, 12]])


def test_periodic_cuts_back_to_back_parts_of_the_period():
    np.testing.assert_allclose(periodic(10.0, 4.0), [[0, 4], [4, 8], [8, 10]])


@pytest.mark.parametrize("bad", [0, -2])
def test_k_below_one_is_refused(bad):
    x, _ = piecewise([20, 20])
    with pytest.raises(ValueError, match="k must be >= 1"):
        abd_labels(x, bad)
    with pytest.raises(ValueError, match="k must be >= 1"):
        twfinch_labels(x, bad)
