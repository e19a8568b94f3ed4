"""The one scorer of the segmentation benchmarks: predicted vs true segments, per video, then pooled.

Every figure comes from `edge.evaluation` (docs/method.md#evaluation): boundary F1 at 2 s and 5 s
(mean over videos), class-agnostic segmental F1 at IoU 0.10 / 0.25 / 0.50 and the edit score
(means over videos), plus how many segments were predicted and are true, and the median length
of each (seconds, over all segments of all videos).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def segmentation_scores(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                        durations: Sequence[float]) -> dict:
    """Figures of one method over a set of videos; preds[i], gts[i]: (K, 2) [start, end) seconds
    of video i, which lasts durations[i] seconds."""
    from edge import evaluation

    seg = [evaluation.segmental_f1_at(p, g) for p, g in zip(preds, gts)]
    pred_len = np.concatenate([evaluation.as_spans(p)[:, 1] - evaluation.as_spans(p)[:, 0] for p in preds])
    true_len = np.concatenate([evaluation.as_spans(g)[:, 1] - evaluation.as_spans(g)[:, 0] for g in gts])
    return {
        "f1_at_2s": evaluation.boundary_f1(preds, gts, 2.0, durations),
        "f1_at_5s": evaluation.boundary_f1(preds, gts, 5.0, durations),
        "seg_f1_at_10": float(np.mean([s["f1_at_10"] for s in seg])),
        "seg_f1_at_25": float(np.mean([s["f1_at_25"] for s in seg])),
        "seg_f1_at_50": float(np.mean([s["f1_at_50"] for s in seg])),
        "edit": float(np.mean([evaluation.edit_score([0] * len(p), [0] * len(g))
                               for p, g in zip(preds, gts)])),
        "pred_segments": int(sum(len(p) for p in preds)),
        "true_segments": int(sum(len(g) for g in gts)),
        "median_pred_s": float(np.median(pred_len)) if pred_len.size else float("nan"),
        "median_true_s": float(np.median(true_len)) if true_len.size else float("nan"),
    }
