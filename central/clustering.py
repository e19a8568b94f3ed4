"""Clustering segment embeddings into primitives: z-score -> L2 -> k-means, k given or chosen
by cosine silhouette; an in-memory path and a mini-batch path for data that does not fit.

docs/method.md#clustering: z-score every feature over the segments, L2-normalise every row,
then k-means with 10 initialisations (Euclidean k-means on unit rows is cosine k-means). k is
the operator's, or the k in a range with the best cosine silhouette (the curve is returned
for the report).

Two paths, same arithmetic:
- in memory (`X` an ndarray): scikit-learn `KMeans(n_init=10)` on all rows;
- mini-batch (`X` a disk-backed `np.memmap`, more than `mini_batch_above` rows, or
  `mini_batch=True`): feature statistics in
  one pass over chunks; k chosen on a random sample; centres seeded by `KMeans(n_init=10)` on
  that sample and refined by `MiniBatchKMeans.partial_fit` over shuffled chunks for a few
  epochs; labels assigned chunk by chunk. Memory stays O(chunk x dim + sample x dim).
The unsupervised scores of a large run are computed on a random sample (stated in the result).

Both paths assign every row with `edge.primitive_library.nearest_centre` on rows normalised by
`edge.primitive_library.normalize_rows`: the arithmetic a device runs to label its own segments
with the exported library, so a run's assignment and the device's label are one computation.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from edge import evaluation
from edge.primitive_library import nearest_centre as _nearest
from edge.primitive_library import normalize_rows

log = logging.getLogger(__name__)

#: below this many rows k-means runs single-threaded
SMALL_ROWS = 20000


@dataclass(frozen=True)
class ClusterOptions:
    """k: clusters (None = choose by cosine silhouette over [k_min, k_max]). n_init: k-means
    initialisations. seed: every random choice. silhouette_sample: rows used for silhouette
    (it is O(n^2)). mini_batch: None = when `X` is a memmap or has more than
    `mini_batch_above` rows (10 full k-means restarts over every row grow slow there, while
    the mini-batch path costs a few passes over the rows); True/False force a path.
    chunk_rows: rows per chunk on the mini-batch path. epochs: passes of partial_fit.
    metrics_sample: rows for Calinski-Harabasz / Davies-Bouldin on the mini-batch path."""

    k: int | None = None
    k_min: int = 2
    k_max: int = 12
    n_init: int = 10
    seed: int = 0
    silhouette_sample: int = 10000
    mini_batch: bool | None = None
    mini_batch_above: int = 200000
    chunk_rows: int = 65536
    epochs: int = 3
    metrics_sample: int = 100000
    #: the operator asked for [k_min, k_max] (a range beyond what the segments allow is then an
    #: error); False: the default range, narrowed quietly to what the segments allow
    k_range_given: bool = False

    def __post_init__(self) -> None:
        if self.k is not None and self.k < 2:
            raise ValueError(f"k must be >= 2, got {self.k}")
        if not 2 <= self.k_min <= self.k_max:
            raise ValueError(f"k range {self.k_min}-{self.k_max} must satisfy 2 <= k_min <= k_max")


@dataclass
class Clustering:
    """labels: (n,) int32 cluster per row. centers: (k, dim) in the normalised space.
    distances: (n,) float32 Euclidean distance of each normalised row to its centre.
    k_curve: [(k, cosine silhouette)] when k was chosen, else []. mean/std: the z-score
    statistics. mini_batch: which path ran. seconds: wall time of clustering."""

    labels: np.ndarray
    centers: np.ndarray
    distances: np.ndarray
    k: int
    k_curve: list[tuple[int, float]] = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    mini_batch: bool = False
    seconds: float = 0.0


def max_k(n_segments: int) -> int:
    """The largest k worth searching for `n_segments` segments: two segments per cluster on
    average (a "cluster" of one segment is that segment, and silhouette needs k < n)."""
    return n_segments // 2


def zscore_stats(x: np.ndarray, chunk_rows: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (float64), computed chunk by chunk. A constant
    feature gets std 1 (it carries no information; dividing by 0 would make NaN)."""
    n, d = x.shape
    s = np.zeros(d, np.float64)
    ss = np.zeros(d, np.float64)
    for a in range(0, n, chunk_rows):
        block = np.asarray(x[a:a + chunk_rows], np.float64)
        s += block.sum(axis=0)
        ss += np.einsum("ij,ij->j", block, block)
    mean = s / max(n, 1)
    var = np.maximum(ss / max(n, 1) - mean * mean, 0.0)
    std = np.sqrt(var)
    std[std < 1e-12] = 1.0
    return mean, std


def normalize(x: np.ndarray) -> np.ndarray:
    """z-score over rows, then L2 per row (the in-memory form of the two steps)."""
    mean, std = zscore_stats(x)
    return normalize_rows(x, mean, std)


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn KMeans (Lloyd, k-means++ init, `n_init` runs) -> (labels int32, centers)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    # OpenMP start-up costs more than it saves on small inputs (10x slower on a busy 2-core box).
    with threadpool_limits(1 if x.shape[0] < SMALL_ROWS else None):
        km = KMeans(n_clusters=int(k), n_init=n_init, random_state=seed).fit(x)
    return km.labels_.astype(np.int32), km.cluster_centers_.astype(np.float32)


def choose_k(x: np.ndarray, k_min: int, k_max: int, seed: int = 0, n_init: int = 10,
             sample: int = 10000) -> tuple[int, list[tuple[int, float]]]:
    """The k in [k_min, k_max] whose k-means clustering of `x` (normalised rows) has the best
    cosine silhouette; fit and scored on at most `sample` random rows. Returns (k, curve)."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    rows = np.sort(rng.choice(n, size=min(n, sample), replace=False)) if n > sample else np.arange(n)
    xs = np.asarray(x[rows], np.float32)
    curve: list[tuple[int, float]] = []
    for k in range(k_min, min(k_max, xs.shape[0] - 1) + 1):
        labels, _ = kmeans(xs, k, seed=seed, n_init=n_init)
        curve.append((k, evaluation.silhouette_cosine(xs, labels)))
    if not curve:
        raise ValueError(f"{n} segments are too few to choose k in {k_min}-{k_max}; give k or more segments")
    best = max(curve, key=lambda kv: (-math.inf if math.isnan(kv[1]) else kv[1], -kv[0]))
    return best[0], curve


def cluster_embeddings(x: np.ndarray, options: ClusterOptions = ClusterOptions(), progress: bool = False) -> Clustering:
    """Cluster raw embeddings `x` (n, dim): z-score -> L2 -> k-means (either path)."""
    t0 = time.perf_counter()
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"{n} segment(s) cannot be clustered; need at least 2")
    mini = options.mini_batch
    if mini is None:
        mini = isinstance(x, np.memmap) or n > options.mini_batch_above
    if options.k is not None and options.k > n:
        raise ValueError(f"k = {options.k} is more than the {n} segments; choose a smaller k")
    mean, std = zscore_stats(x, options.chunk_rows)
    if not mini:
        xn = normalize_rows(x, mean, std)
        curve: list[tuple[int, float]] = []
        k = options.k
        if k is None:
            k, curve = choose_k(xn, options.k_min, options.k_max, options.seed, options.n_init, options.silhouette_sample)
        _, centers = kmeans(xn, k, options.seed, options.n_init)
        # Assign with the device's arithmetic (not k-means' own labels), so a device holding
        # these centres labels a segment exactly as the run did.
        labels, distances = _nearest(xn, centers)
        return Clustering(labels, centers, distances, k, curve, mean, std, False, time.perf_counter() - t0)
    return _cluster_mini_batch(x, mean, std, options, progress, t0)


def _cluster_mini_batch(x: np.ndarray, mean: np.ndarray, std: np.ndarray, options: ClusterOptions,
                        progress: bool, t0: float) -> Clustering:
    from sklearn.cluster import MiniBatchKMeans

    n = x.shape[0]
    rng = np.random.default_rng(options.seed)
    sample_rows = np.sort(rng.choice(n, size=min(n, max(options.silhouette_sample, 1)), replace=False))
    sample = normalize_rows(x[sample_rows], mean, std)
    curve: list[tuple[int, float]] = []
    k = options.k
    if k is None:
        k, curve = choose_k(sample, options.k_min, options.k_max, options.seed, options.n_init, sample.shape[0])
    # Seed the centres with the full n_init k-means on the sample, then refine on everything.
    _, init = kmeans(sample, k, options.seed, options.n_init)
    # reassignment_ratio=0: partial_fit would otherwise move "small" centres to random rows,
    # undoing the sample's well-initialised partition.
    mbk = MiniBatchKMeans(n_clusters=k, init=init, n_init=1, batch_size=min(options.chunk_rows, 4096),
                          random_state=options.seed, reassignment_ratio=0.0)
    starts = np.arange(0, n, options.chunk_rows)
    bar = progress_bar(progress, options.epochs * len(starts) + len(starts), "k-means (mini-batch)", "chunk")
    for _ in range(options.epochs):
        for a in rng.permutation(starts):
            mbk.partial_fit(normalize_rows(x[a:a + options.chunk_rows], mean, std))
            bar.update(1)
    centers = mbk.cluster_centers_.astype(np.float32)
    labels = np.empty(n, np.int32)
    distances = np.empty(n, np.float32)
    for a in starts:
        block = normalize_rows(x[a:a + options.chunk_rows], mean, std)
        lab, dist = _nearest(block, centers)
        labels[a:a + block.shape[0]] = lab
        distances[a:a + block.shape[0]] = dist
        bar.update(1)
    bar.close()
    return Clustering(labels, centers, distances, k, curve, mean, std, True, time.perf_counter() - t0)


def cluster_metrics(x: np.ndarray, clustering: Clustering, truth: Sequence[int] | None = None,
                    sample: int = 10000, big_sample: int = 100000, seed: int = 0) -> dict[str, float]:
    """Scores of a clustering of raw embeddings `x`, in the normalised space.

    Unsupervised: silhouette (cosine; on at most `sample` random rows), Calinski-Harabasz and
    Davies-Bouldin (on at most `big_sample` rows). With `truth` (one ground-truth label per
    row, None where unknown): NMI, ARI and Hungarian accuracy (one-to-one cluster -> label
    mapping) on the labelled rows.
    """
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    mean, std = clustering.mean, clustering.std
    if mean is None or std is None:
        mean, std = zscore_stats(x)
    out: dict[str, float] = {"n": float(n), "k": float(clustering.k)}
    rows = np.sort(rng.choice(n, size=min(n, big_sample), replace=False)) if n > big_sample else np.arange(n)
    xs = normalize_rows(x[rows], mean, std)
    ls = clustering.labels[rows]
    srows = np.sort(rng.choice(rows.size, size=min(rows.size, sample), replace=False)) if rows.size > sample else np.arange(rows.size)
    out["silhouette_cosine"] = evaluation.silhouette_cosine(xs[srows], ls[srows])
    out["calinski_harabasz"] = evaluation.calinski_harabasz(xs, ls)
    out["davies_bouldin"] = evaluation.davies_bouldin(xs, ls)
    out["scored_rows_silhouette"] = float(srows.size)
    out["scored_rows_ch_db"] = float(rows.size)
    if truth is not None:
        t = np.asarray(list(truth), dtype=object)
        if t.shape[0] != n:
            raise ValueError(f"{t.shape[0]} ground-truth labels for {n} segments")
        known = np.array([v is not None for v in t], bool)  # None = this segment has no label
        out["n_labelled"] = float(known.sum())
        if known.any():
            _, t_idx = np.unique(t[known].astype(str), return_inverse=True)
            pred = clustering.labels[known]
            out["nmi"] = evaluation.nmi(t_idx, pred)
            out["ari"] = evaluation.ari(t_idx, pred)
            out["hungarian_accuracy"] = evaluation.hungarian_accuracy_pooled([pred], [t_idx])
    return out


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int, desc: str, unit: str = "it"):
    """A tqdm bar on stderr, or a silent stand-in with the same `update`/`close`."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
