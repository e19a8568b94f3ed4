"""Choosing the student's keep rule on VALIDATION seeds: the visibility-logit and match-residual
cuts that `laps-export onnx --visibility-threshold/--residual-threshold` writes into the metadata.

The device keeps a point while the graph's estimate is inside the frame, its visibility logit is
>= v and its match residual < r, or < m where the point moved more than the model's `moving_px`
this step (`edge.tracking.onnx_student.keep_mask`; m = 0: r for every point). One run of the
student with no cut (every step's logit, residual and motion recorded) and of Lucas-Kanade on
the same recordings (`export.tracker.evaluation`) gives every rule's figures exactly: points are
tracked independently, so a point's track up to its first drop does not depend on the rule, and
the rule's kept mask is the running AND of "inside and passes the cuts".

Criterion (the one bundle versions 8 and 9 were chosen by): a rule qualifies when on every subset its
end-point error median is below LK's and its 16-frame survival at least LK's; among qualifying
rules the one with the lowest fast-motion median is chosen. When none qualifies, none is
recommended (the table marks the failing cells).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Sequence

import numpy as np

from edge.tracking.onnx_student import keep_mask
from export.tracker.evaluation import accuracy_figures, subsets

#: default grids (logit cuts, residual cuts, moving-point residual cuts; residual 0 = no residual
#: check, moving 0 = the residual cut for moving points too)
DEFAULT_VISIBILITY = (-2.0, -2.5, -3.0, -3.5, -4.0)
DEFAULT_RESIDUAL = (0.6, 0.62, 0.64, 0.66, 0.68)
DEFAULT_MOVING_RESIDUAL = (0.0, 0.5, 0.55, 0.6)


@dataclass(frozen=True)
class RuleResult:
    """One keep rule's figures: per subset label (median px, survival), LK's, and whether it qualifies."""

    visibility_threshold: float
    residual_threshold: float
    figures: dict[str, tuple[float, float]]
    lk: dict[str, tuple[float, float]]
    moving_residual_threshold: float = 0.0

    @property
    def cuts(self) -> tuple[float, float, float]:
        """(visibility, residual, moving residual) thresholds."""
        return self.visibility_threshold, self.residual_threshold, self.moving_residual_threshold

    def cell_ok(self, label: str) -> bool:
        (m, s), (lm, ls) = self.figures[label], self.lk[label]
        return bool(m < lm and s >= ls)

    @property
    def qualifies(self) -> bool:
        return all(self.cell_ok(label) for label in self.figures)

    def to_dict(self) -> dict:
        return {"visibility_threshold": self.visibility_threshold, "residual_threshold": self.residual_threshold,
                "moving_residual_threshold": self.moving_residual_threshold, "qualifies": self.qualifies,
                **{f"{label} epe_median_px": m for label, (m, _) in self.figures.items()},
                **{f"{label} survival_16": s for label, (_, s) in self.figures.items()}}


def rule_kept(inside: np.ndarray, logit: np.ndarray, residual: np.ndarray, keeps,
              motion: np.ndarray | None = None) -> np.ndarray:
    """Kept mask (W, S, N) of one rule: running AND over the steps of inside & keeps(logit, residual, motion).

    inside: the thresholds-off run's own kept mask (already a running AND); motion: px moved per
    step (W, S, N) or None; keeps: the device's rule with the rule's thresholds (`keep_mask`, or
    `OnnxStudentTracker.keeps`), on flattened arrays."""
    flat = None if motion is None else motion.reshape(-1)
    ok = keeps(logit.reshape(-1), residual.reshape(-1), flat).reshape(inside.shape)
    return np.logical_and.accumulate(inside & ok, axis=1)


def evaluate_rules(merged: dict, visibility: Sequence[float], residual: Sequence[float],
                   moving_residual: Sequence[float] = (0.0,), moving_px: float = 2.0) -> list[RuleResult]:
    """Figures of every (visibility, residual, moving residual) rule on the thresholds-off run
    `merged` (`evaluation.synthetic_runs` with trackers "lk" and "student"), each rule applied by
    the device's own `keep_mask`, with the moving cut switching at `moving_px` px per step (the
    tracker's own `moving_px`)."""
    subs = subsets(merged)
    lk = {}
    for label, key, select in subs:
        m = merged[key]
        f = accuracy_figures(m["lk"]["err"], m["lk"]["kept"], m["gt_vis"], select)
        lk[label] = (f["epe_median_px"], f["survival_16"])
    results = []
    for v in visibility:
        for r in residual:
            for mr in moving_residual:
                keeps = partial(_keeps, v=float(v), r=float(r), mr=float(mr), moving_px=float(moving_px))
                figs = {}
                for label, key, select in subs:
                    s = merged[key]["student"]
                    kept = rule_kept(s["kept"], s["logit"], s["residual"], keeps, s.get("motion"))
                    f = accuracy_figures(s["err"], kept, merged[key]["gt_vis"], select)
                    figs[label] = (f["epe_median_px"], f["survival_16"])
                results.append(RuleResult(float(v), float(r), figs, lk, float(mr)))
    return results


def _keeps(logit, residual, motion, *, v: float, r: float, mr: float, moving_px: float) -> np.ndarray:
    # keep_mask's motion comes after the two cuts, so a partial of keep_mask could not take it positionally.
    return keep_mask(logit, residual, v, r, motion, mr, moving_px)


def choose(results: list[RuleResult]) -> RuleResult | None:
    """The qualifying rule with the lowest fast-motion median (ties: the looser rule, which holds
    more points), or None when no rule qualifies."""
    ok = [r for r in results if r.qualifies]
    if not ok:
        return None
    fast = next(label for label in ok[0].figures if label.startswith("fast motion"))
    return min(ok, key=lambda r: (r.figures[fast][0], -r.figures[fast][1]))
