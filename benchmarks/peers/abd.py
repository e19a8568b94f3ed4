"""ABD: training-free action boundary detection (Du, Wang, Zhou, Wang, CVPR 2022), in NumPy.

Re-implemented from the paper's description, four steps:
1. smoothing: every frame's feature is replaced by the mean of a centred window of
   w = alpha * T / K frames (the paper's average filter; near the ends, of the frames there are);
2. adjacent similarity: s_t = cos(g_t, g_{t+1}) of the smoothed features;
3. boundaries: non-maximum suppression of the dissimilarity, i.e. t + 1 is a boundary when s_t is
   the smallest similarity within +-w/2 steps; this over-segments (M >= K segments, usually);
4. refinement: bottom-up clustering of the M segments by the cosine similarity of their mean
   (unsmoothed) features, merging the most similar pair of clusters until K remain; the merged
   cluster's feature is the mean over all its frames. Frames take their cluster's id and the
   output segments are the runs of one id (two clusters may interleave, so there can be more
   segments than K).

K comes from outside (here: the leave-one-video-out mean of true segments). alpha = 0.4, one of
the paper's reported settings, is kept fixed: it is not tuned on any data here.
"""

from __future__ import annotations

import numpy as np

from benchmarks.peers.inputs import frame_matrix
from benchmarks.real_labelled.corpus import label_runs_to_segments

#: Window fraction of the smoothing filter and the NMS (the paper's alpha).
ALPHA = 0.4
_EPS = 1e-12


def abd_segments(features: np.ndarray, fps: float, k: int, alpha: float = ALPHA) -> np.ndarray:
    """(S, 2) [start, end) seconds of ABD on (T, D) features with K clusters."""
    return label_runs_to_segments(abd_labels(features, k, alpha), fps)


def abd_labels(features: np.ndarray, k: int, alpha: float = ALPHA) -> np.ndarray:
    """(T,) int64 cluster id per frame (ids 0..K'-1, K' = min(K, initial segments))."""
    x = frame_matrix(features, k)
    n = x.shape[0]
    window = max(1, int(round(alpha * n / k)))
    bounds = detect_boundaries(smooth(x, window), window)
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [n]])
    cluster_of_segment = merge_segments(x, starts, ends, k)
    labels = np.empty(n, dtype=np.int64)
    for s, e, c in zip(starts, ends, cluster_of_segment):
        labels[s:e] = c
    return labels


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """(T, D) centred moving average over `window` frames (fewer at the ends)."""
    n = x.shape[0]
    half = window // 2
    csum = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) + (window - half), 0, n)
    return (csum[hi] - csum[lo]) / (hi - lo)[:, None]


def adjacent_similarity(g: np.ndarray) -> np.ndarray:
    """(T-1,) cosine similarity of consecutive rows."""
    a, b = g[:-1], g[1:]
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.maximum(den, _EPS)


def detect_boundaries(g: np.ndarray, window: int) -> np.ndarray:
    """Sorted frame indices in (0, T) where a new segment starts: local minima of the adjacent
    similarity of `g` within +-window/2 (NMS; the first index of a tied minimum wins)."""
    s = adjacent_similarity(g)
    if s.size == 0:
        return np.zeros(0, dtype=np.int64)
    half = max(1, window // 2)
    out = []
    for t in range(s.size):
        lo, hi = max(0, t - half), min(s.size, t + half + 1)
        if lo + int(np.argmin(s[lo:hi])) == t:
            out.append(t + 1)
    return np.asarray(out, dtype=np.int64)


def merge_segments(x: np.ndarray, starts: np.ndarray, ends: np.ndarray, k: int) -> np.ndarray:
    """(M,) cluster id of each segment after merging the most similar clusters until K remain."""
    m = starts.size
    sums = np.stack([x[s:e].sum(axis=0) for s, e in zip(starts, ends)])
    counts = (ends - starts).astype(np.float64)
    members = [[i] for i in range(m)]
    alive = list(range(m))
    while len(alive) > k:
        means = sums[alive] / counts[alive][:, None]
        unit = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), _EPS)
        sim = unit @ unit.T
        np.fill_diagonal(sim, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        a, b = alive[min(i, j)], alive[max(i, j)]
        sums[a] += sums[b]
        counts[a] += counts[b]
        members[a].extend(members[b])
        alive.remove(b)
    cluster = np.empty(m, dtype=np.int64)
    for cid, root in enumerate(alive):
        cluster[members[root]] = cid
    return cluster
