"""Segmentation and clustering metrics as plain functions over plain lists and arrays.

Segments are given as (start, end) pairs (a list of pairs, a (K, 2) array, or objects with
`start_s`/`end_s` such as `edge.segments.Segment`), `end` exclusive, all in one unit (seconds
for the boundary metrics, which take `tau` and `duration` in seconds; any consistent unit for
the IoU-based ones).

Scores are fractions in [0, 1], except `edit_score`, which follows MS-TCN's 0-100 scale.

Empty cases (one rule everywhere): a ratio whose numerator and denominator are both 0 is 1.0
when BOTH sides are empty (nothing to find and nothing claimed: a perfect answer) and 0.0
otherwise. So with no ground-truth boundaries, an empty prediction scores P = R = F1 = 1 and any
predicted boundary scores P = R = F1 = 0; an empty prediction against a non-empty ground truth
scores 0.

The clustering wrappers (`silhouette_cosine`, `calinski_harabasz`, `davies_bouldin`, `nmi`,
`ari`) and the Hungarian accuracies need scikit-learn / SciPy, which the device runtime does not
install: they import them when called and need the `[central]` or `[dev]` extras.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

Spans = Any  # list of (start, end) pairs, a (K, 2) array, or objects with start_s/end_s


# --- boundary F1 at tau seconds (docs/method.md#evaluation) ----------------------------------

def boundaries(segments: Spans, duration: float) -> np.ndarray:
    """Boundary times of `segments`: every start > 0 and every end < duration, sorted.

    Starts and ends are counted separately, so two touching segments give two equal times.
    """
    spans = as_spans(segments)
    starts = spans[:, 0][spans[:, 0] > 0]
    ends = spans[:, 1][spans[:, 1] < duration]
    return np.sort(np.concatenate([starts, ends]), kind="stable")


def boundary_counts(pred: Spans, gt: Spans, tau: float, duration: float) -> tuple[int, int, int]:
    """(hits, n_pred, n_gt) of the greedy boundary matching.

    Each ground-truth boundary, in time order, takes the nearest unused predicted boundary
    (the earlier one on a tie); it is a hit, and that predicted boundary is used up, when
    |dt| <= tau. A ground-truth boundary without a predicted one within tau uses nothing.
    """
    if tau < 0:
        raise ValueError(f"tau must be >= 0 seconds, got {tau}")
    p = boundaries(pred, duration)
    g = boundaries(gt, duration)
    used = np.zeros(p.shape[0], dtype=bool)
    hits = 0
    for b in g:
        if used.all():
            break
        dist = np.where(used, np.inf, np.abs(p - b))
        j = int(np.argmin(dist))  # first minimum = the earlier predicted boundary on a tie
        if dist[j] <= tau:
            used[j] = True
            hits += 1
    return hits, int(p.shape[0]), int(g.shape[0])


def boundary_prf(pred: Spans, gt: Spans, tau: float, duration: float) -> tuple[float, float, float]:
    """Boundary precision, recall and F1 of one video at tolerance `tau` seconds."""
    return _prf(*boundary_counts(pred, gt, tau, duration))


def boundary_f1(preds: Sequence[Spans], gts: Sequence[Spans], tau: float,
                durations: Sequence[float]) -> float:
    """Mean over videos of the per-video boundary F1 (the paper's F1@tau)."""
    _same_length(preds, gts, durations)
    if len(preds) == 0:
        raise ValueError("boundary_f1 needs at least one video")
    return float(np.mean([boundary_prf(p, g, tau, d)[2] for p, g, d in zip(preds, gts, durations)]))


def boundary_f1_micro(preds: Sequence[Spans], gts: Sequence[Spans], tau: float,
                      durations: Sequence[float]) -> float:
    """Boundary F1 from hits and counts pooled over all videos (long videos weigh more)."""
    _same_length(preds, gts, durations)
    hits = n_pred = n_gt = 0
    for p, g, d in zip(preds, gts, durations):
        h, np_, ng = boundary_counts(p, g, tau, d)
        hits, n_pred, n_gt = hits + h, n_pred + np_, n_gt + ng
    return _prf(hits, n_pred, n_gt)[2]


# --- segmental F1 at IoU, edit score (MS-TCN conventions) ------------------------------------

def segmental_f1(pred: Spans, gt: Spans, iou_threshold: float,
                 pred_labels: Sequence[int] | None = None,
                 gt_labels: Sequence[int] | None = None) -> float:
    """Segmental F1 at an IoU threshold (0.10, 0.25, 0.50 for F1@{10,25,50}).

    As MS-TCN: each predicted segment, in order, takes the ground-truth segment of the same
    label with the highest IoU (the first on a tie); a true positive when IoU >= iou_threshold
    and that ground-truth segment is not yet taken, else a false positive; untaken ground-truth
    segments are false negatives. Without labels (either list None) matching is class-agnostic:
    every segment has the same label.
    """
    p = as_spans(pred)
    g = as_spans(gt)
    pl, gl = _labels(p, pred_labels, g, gt_labels)
    taken = np.zeros(g.shape[0], dtype=bool)
    tp = fp = 0
    for k in range(p.shape[0]):
        iou = _iou(p[k], g) * (gl == pl[k])
        if g.shape[0] == 0:
            fp += 1
            continue
        j = int(np.argmax(iou))
        if iou[j] >= iou_threshold and not taken[j]:
            taken[j] = True
            tp += 1
        else:
            fp += 1
    fn = int(g.shape[0] - taken.sum())
    return _prf(tp, tp + fp, tp + fn)[2]


def segmental_f1_at(pred: Spans, gt: Spans, pred_labels: Sequence[int] | None = None,
                    gt_labels: Sequence[int] | None = None,
                    thresholds: Sequence[float] = (0.10, 0.25, 0.50)) -> dict[str, float]:
    """{'f1_at_10': ..., 'f1_at_25': ..., 'f1_at_50': ...} (keys follow the thresholds in %)."""
    return {f"f1_at_{round(th * 100)}": segmental_f1(pred, gt, th, pred_labels, gt_labels)
            for th in thresholds}


def edit_score(pred_labels: Sequence[int], gt_labels: Sequence[int]) -> float:
    """MS-TCN edit score: 100 * (1 - Levenshtein(pred, gt) / max(len(pred), len(gt))).

    Arguments are the label sequences of the segments in time order (one label per segment;
    for class-agnostic scoring pass the same label for every segment). Two empty sequences
    score 100.
    """
    a = list(pred_labels)
    b = list(gt_labels)
    if not a and not b:
        return 100.0
    return 100.0 * (1.0 - levenshtein(a, b) / max(len(a), len(b)))


def levenshtein(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Edit distance (insertions, deletions, substitutions, each cost 1)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


# --- frame labels and Hungarian-matched accuracy ---------------------------------------------

def frame_labels_from_segments(segments: Spans, n_frames: int,
                               labels: Sequence[int] | None = None,
                               background: int = -1) -> np.ndarray:
    """(n_frames,) int64 label per frame: segment k's label on frames [start, end), else
    `background`. Spans are in frames (rounded to the nearest integer, clipped to [0, n_frames]);
    without labels every segment is labelled 0. Later segments overwrite earlier ones.
    """
    spans = as_spans(segments)
    if labels is None:
        lab = np.zeros(spans.shape[0], dtype=np.int64)
    else:
        lab = np.asarray(labels, dtype=np.int64)
    if lab.shape[0] != spans.shape[0]:
        raise ValueError(f"{lab.shape[0]} labels for {spans.shape[0]} segments")
    out = np.full(int(n_frames), background, dtype=np.int64)
    for (s, e), k in zip(spans, lab):
        lo = int(np.clip(round(s), 0, n_frames))
        hi = int(np.clip(round(e), 0, n_frames))
        out[lo:hi] = k
    return out


def hungarian_accuracy_per_video(pred: np.ndarray, gt: np.ndarray,
                                 ignore_label: int | None = None) -> float:
    """Frame accuracy of one video after the one-to-one prediction->ground-truth label mapping
    that maximises agreement (Hungarian, SciPy). Frames whose ground truth is `ignore_label`
    are left out. Predicted labels left unmapped (more clusters than classes) count as wrong.
    NaN when no frame is left to score.
    """
    return _hungarian([np.asarray(pred)], [np.asarray(gt)], ignore_label)


def hungarian_accuracy_pooled(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                              ignore_label: int | None = None) -> float:
    """As `hungarian_accuracy_per_video` with ONE mapping over the frames of all videos."""
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground truths")
    return _hungarian([np.asarray(p) for p in preds], [np.asarray(g) for g in gts], ignore_label)


# --- clustering quality (scikit-learn, imported on call) -------------------------------------

def silhouette_cosine(x: np.ndarray, labels: Sequence[int]) -> float:
    """Mean silhouette with cosine distance, in [-1, 1]; NaN unless 2 <= clusters < samples."""
    if not _clusters_ok(labels):
        return math.nan
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(np.asarray(x), np.asarray(labels), metric="cosine"))


def calinski_harabasz(x: np.ndarray, labels: Sequence[int]) -> float:
    """Calinski-Harabasz index (higher is better); NaN unless 2 <= clusters < samples."""
    if not _clusters_ok(labels):
        return math.nan
    from sklearn.metrics import calinski_harabasz_score

    return float(calinski_harabasz_score(np.asarray(x), np.asarray(labels)))


def davies_bouldin(x: np.ndarray, labels: Sequence[int]) -> float:
    """Davies-Bouldin index (lower is better); NaN unless 2 <= clusters < samples."""
    if not _clusters_ok(labels):
        return math.nan
    from sklearn.metrics import davies_bouldin_score

    return float(davies_bouldin_score(np.asarray(x), np.asarray(labels)))


def nmi(labels_true: Sequence[int], labels_pred: Sequence[int]) -> float:
    """Normalised mutual information (arithmetic mean normalisation), in [0, 1]."""
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(np.asarray(labels_true), np.asarray(labels_pred)))


def ari(labels_true: Sequence[int], labels_pred: Sequence[int]) -> float:
    """Adjusted Rand index (1 = identical partitions, about 0 = chance)."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(labels_true), np.asarray(labels_pred)))


# --- helpers ---------------------------------------------------------------------------------

def as_spans(segments: Spans) -> np.ndarray:
    """(K, 2) float64 [start, end) from pairs, an array, or objects with start_s/end_s."""
    if isinstance(segments, np.ndarray):
        arr = segments.astype(np.float64, copy=False)
    else:
        items = list(segments)
        if items and hasattr(items[0], "start_s"):
            arr = np.array([(s.start_s, s.end_s) for s in items], dtype=np.float64)
        else:
            arr = np.asarray(items, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"segments must be (start, end) pairs, got shape {arr.shape}")
    return arr


def _prf(hits: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    both_empty = n_pred == 0 and n_true == 0
    p = hits / n_pred if n_pred else (1.0 if both_empty else 0.0)
    r = hits / n_true if n_true else (1.0 if both_empty else 0.0)
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return p, r, f1


def _iou(span: np.ndarray, spans: np.ndarray) -> np.ndarray:
    inter = np.clip(np.minimum(span[1], spans[:, 1]) - np.maximum(span[0], spans[:, 0]), 0, None)
    union = np.maximum(span[1], spans[:, 1]) - np.minimum(span[0], spans[:, 0])
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _labels(p, pred_labels, g, gt_labels):
    if pred_labels is None or gt_labels is None:
        return np.zeros(p.shape[0], np.int64), np.zeros(g.shape[0], np.int64)
    pl = np.asarray(pred_labels, dtype=np.int64)
    gl = np.asarray(gt_labels, dtype=np.int64)
    if pl.shape[0] != p.shape[0] or gl.shape[0] != g.shape[0]:
        raise ValueError("one label per segment is needed for both prediction and ground truth")
    return pl, gl


def _hungarian(preds: list[np.ndarray], gts: list[np.ndarray], ignore_label: int | None) -> float:
    from scipy.optimize import linear_sum_assignment

    for p, g in zip(preds, gts):
        if p.shape != g.shape:
            raise ValueError(f"prediction has {p.shape} frames but ground truth {g.shape}")
    pred = np.concatenate([p.ravel() for p in preds]) if preds else np.zeros(0, np.int64)
    gt = np.concatenate([g.ravel() for g in gts]) if gts else np.zeros(0, np.int64)
    if ignore_label is not None:
        keep = gt != ignore_label
        pred, gt = pred[keep], gt[keep]
    if gt.size == 0:
        return math.nan
    p_vals, p_idx = np.unique(pred, return_inverse=True)
    g_vals, g_idx = np.unique(gt, return_inverse=True)
    counts = np.zeros((p_vals.size, g_vals.size), dtype=np.int64)
    np.add.at(counts, (p_idx, g_idx), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / gt.size)


def _clusters_ok(labels: Sequence[int]) -> bool:
    lab = np.asarray(labels)
    k = np.unique(lab).size
    return 2 <= k < lab.size


def _same_length(preds: Sequence, gts: Sequence, durations: Sequence) -> None:
    if not (len(preds) == len(gts) == len(durations)):
        raise ValueError(
            f"{len(preds)} predictions, {len(gts)} ground truths and {len(durations)} durations; "
            f"give one of each per video"
        )
