"""TW-FINCH: temporally-weighted first-neighbour clustering (Sarfraz et al., CVPR 2021), in NumPy.

Re-implemented from the paper: PyPI `finch-clust` (0.2.3, the only version the registry offers
here) installs, but its `FINCH` has no `tw_finch` option any more, and plain FINCH ignores time.

1. every frame i gets a time stamp t_i = (i + 1) / T;
2. the distance between two items is their cosine feature distance multiplied by |t_i - t_j|, so
   a frame's first neighbour is similar AND close in time;
3. each item links to its first neighbour; the connected components of those links (FINCH's
   rule: i ~ j when j is i's neighbour, i is j's, or both share one) are the clusters of the
   first partition;
4. clusters become items (mean feature, mean time stamp) and steps 2-3 repeat, giving coarser
   partitions until nothing merges;
5. for a required K: start from the coarsest partition that still has at least K clusters and
   merge the closest pair (same distance) one at a time until K remain.
Frames take their cluster's id; output segments are the runs of one id.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from benchmarks.peers.inputs import frame_matrix
from benchmarks.real_labelled.corpus import label_runs_to_segments

_EPS = 1e-12


def twfinch_segments(features: np.ndarray, fps: float, k: int) -> np.ndarray:
    """(S, 2) [start, end) seconds of TW-FINCH on (T, D) features with K clusters."""
    return label_runs_to_segments(twfinch_labels(features, k), fps)


def twfinch_labels(features: np.ndarray, k: int) -> np.ndarray:
    """(T,) int64 cluster id per frame; K clusters, or fewer when even the first partition has
    fewer (the first-neighbour graph cannot be split further)."""
    x = frame_matrix(features, k)
    n = x.shape[0]
    t = (np.arange(n, dtype=np.float64) + 1.0) / n
    partitions = [np.zeros(n, dtype=np.int64)] if n == 1 else []
    labels = np.arange(n, dtype=np.int64)
    while True:
        feats, times = _cluster_means(x, t, labels)
        if feats.shape[0] <= 1:
            break
        merged = _first_neighbour_components(feats, times)
        if merged.max() + 1 == feats.shape[0]:  # nothing merged: the hierarchy is complete
            break
        labels = merged[labels]
        partitions.append(labels)
        if merged.max() == 0:
            break
    if not partitions:
        return np.zeros(n, dtype=np.int64)
    sizes = [int(p.max()) + 1 for p in partitions]
    at_least = [i for i, s in enumerate(sizes) if s >= k]
    if not at_least:
        return partitions[0]  # the finest partition already has fewer than K clusters
    labels = partitions[at_least[-1]]
    while int(labels.max()) + 1 > k:
        labels = _merge_closest_pair(x, t, labels)
    return labels


def tw_distances(feats: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(M, M) cosine distance of the rows times their time-stamp distance; diagonal = inf."""
    unit = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), _EPS)
    d = (1.0 - unit @ unit.T) * np.abs(times[:, None] - times[None, :])
    np.fill_diagonal(d, np.inf)
    return d


def _cluster_means(x: np.ndarray, t: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    m = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=m).astype(np.float64)
    feats = np.zeros((m, x.shape[1]))
    np.add.at(feats, labels, x)
    times = np.bincount(labels, weights=t, minlength=m)
    return feats / counts[:, None], times / counts


def _first_neighbour_components(feats: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(M,) component id of each item in the graph linking every item to its first neighbour,
    numbered in order of first appearance (so ids follow time for contiguous clusters)."""
    m = feats.shape[0]
    nn = np.argmin(tw_distances(feats, times), axis=1)
    graph = coo_matrix((np.ones(m), (np.arange(m), nn)), shape=(m, m))
    _, comp = connected_components(graph, directed=True, connection="weak")
    _, first = np.unique(comp, return_index=True)
    order = np.argsort(np.argsort(first))
    return order[comp].astype(np.int64)


def _merge_closest_pair(x: np.ndarray, t: np.ndarray, labels: np.ndarray) -> np.ndarray:
    feats, times = _cluster_means(x, t, labels)
    d = tw_distances(feats, times)
    i, j = np.unravel_index(int(np.argmin(d)), d.shape)
    keep, drop = min(i, j), max(i, j)
    out = np.where(labels == drop, keep, labels)
    _, out = np.unique(out, return_inverse=True)  # ids 0..M-2 again
    return out.astype(np.int64)
