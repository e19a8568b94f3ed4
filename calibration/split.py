"""Calibration of the within-activity split step (`edge.energy.kernel`, `split_*` parameters).

The hysteresis separates activity from rest; the split step cuts an ON segment where the mean
latent moves (a two-window test, see the kernel's docstring). Its threshold belongs to one
tokenizer and one view, like theta_on, and is chosen the same two ways:

- unsupervised: run the kernel with the split window w but no split (threshold infinite), take
  the change score's local maxima inside ON segments that could be boundaries (at least m steps
  from either end), and split their log values with Otsu (256 bins). Inside an activity the
  score wobbles with the latent's own noise; where the motion changes character it jumps: the
  log scores of the peaks are two populations, and Otsu's threshold between them is the split
  threshold (the same method the activity pseudo-labels use, `calibration.proxy`).
- labelled: with labelled minutes, the (w, threshold) pair with the best mean boundary F1 at
  tau seconds on them (thresholds: quantiles of the peak scores). The search also tries
  "activity everywhere" (theta_on = 0: one ON segment over the whole recording, cut only by the
  split step), which is what work without rests (actions back to back) needs: there the
  hysteresis finds no valleys and only cuts blips out of the energy's noise.

The window w is a fixed length in seconds (`DEFAULT_WINDOW_S`) unless labels choose it: the
separability of the peaks did not pick the best window on the validation seeds (it preferred
the noisiest, shortest one), so it is not used to choose.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from calibration.proxy import CalibrationError, otsu_split
from edge import evaluation
from edge.energy import MAX_SPLIT_WINDOW, HysteresisParams, run_series_latent

#: Split window in seconds when no labels choose it: 0.8 s (8 steps at 10 fps) was the best of
#: 0.4 / 0.6 / 0.8 s on the synthetic VALIDATION seeds 500-504 (shipped tokenizer, thresholds
#: by Otsu and by F1), and its decision lag (about 2w steps, 1.5 s) stays under the 2 s budget.
DEFAULT_WINDOW_S = 0.8
#: Shortest piece a split may leave, seconds (0.5 s: the shortest synthetic primitive is 0.6 s).
DEFAULT_MIN_PIECE_S = 0.5
#: Windows (seconds) the labelled search tries.
LABELLED_WINDOWS_S = (0.4, 0.6, 0.8, 1.0, 1.6, 2.4, 3.2)
#: Longest decision lag the calibration accepts by default, seconds: a split is emitted
#: max(2w - 1, split_min_steps + down_steps - 1) steps after its boundary (edge.energy.kernel).
MAX_DECISION_LAG_S = 2.0
#: Quantiles of the peak scores the labelled search tries as thresholds.
LABELLED_QUANTILES = tuple(np.linspace(0.3, 0.95, 14))
#: Fewer peaks than this and the Otsu split is not trusted (the calibration warns).
MIN_PEAKS = 20


@dataclass
class SplitCalibration:
    """The outcome of a split calibration.

    params: the input parameters with split_window, split_theta and split_min_steps set.
    mode: "unsupervised" or "labelled". window_s: w in seconds. peaks: the candidate peak scores
    the choice was made from (for the report's histogram). separability: Otsu's eta of their
    logs (unsupervised). score: boundary F1 at tau on the labels (labelled), else None.
    curve: labelled mode, [(window, theta, F1)] of every pair tried. warnings: one-line warnings.
    everywhere: True when the labels chose "activity everywhere" (theta_on = 0, splits only).
    """

    params: HysteresisParams
    mode: str
    window_s: float
    peaks: np.ndarray
    separability: float | None = None
    score: float | None = None
    curve: list[tuple[int, float, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    everywhere: bool = False

    def to_dict(self) -> dict:
        """JSON-ready summary (the calibration file's "split" record)."""
        return {
            "mode": self.mode, "split_window": self.params.split_window,
            "split_theta": self.params.split_theta, "split_min_steps": self.params.split_min_steps,
            "window_s": self.window_s, "peaks": int(self.peaks.size),
            "peak_separability": self.separability, "boundary_f1": self.score,
            "activity": "everywhere" if self.everywhere else "hysteresis",
        }


def recording_latents(recordings: Sequence, model_dir: str) -> list[np.ndarray] | None:
    """z_q per step of each recording (T_i, D) float32, rebuilt from its FSQ codes with the
    model's own projection (what the device fed `latent_step`); NaN rows where a step had no
    code. None when a recording carries no codes (velocity energy, or an old trace)."""
    from edge.model import load_model_directory
    from edge.tokenizer.fsq import FSQ

    if any(getattr(r, "codes", None) is None for r in recordings):
        return None
    meta = load_model_directory(model_dir).metadata
    fsq = FSQ(meta.fsq_levels, *meta.fsq_projection())
    out = []
    for r in recordings:
        codes = np.asarray(r.codes, np.int64)
        z = np.full((codes.shape[0], fsq.dim), np.nan, np.float32)
        ok = codes >= 0
        if ok.any():
            z[ok] = fsq.z_q_from_codes(codes[ok])
        out.append(z)
    return out


def decision_lag_steps(params: HysteresisParams) -> int:
    """Steps between a boundary and the step that emits its split (0 when the split is off)."""
    if not params.splits:
        return 0
    return max(2 * params.split_window - 1, params.split_min_steps + params.down_steps - 1)


def steps_for(seconds: float, fps: float) -> int:
    """A duration in whole steps at `fps`, clamped to the kernel's 1..MAX_SPLIT_WINDOW."""
    return int(min(MAX_SPLIT_WINDOW, max(1, round(seconds * fps))))


def with_window(params: HysteresisParams, window: int, theta: float, min_piece: int) -> HysteresisParams:
    """`params` with the split step set (the piece minimum never below min_steps)."""
    return replace(params, split_window=int(window), split_theta=float(theta),
                   split_min_steps=max(int(min_piece), params.min_steps, 1))


def split_peaks(latents: Sequence[np.ndarray], params: HysteresisParams) -> np.ndarray:
    """Change-score peaks that could become splits, pooled over recordings, (P,) float64.

    latents: per recording (T_i, D). params: with split_window > 0 (its split_theta is ignored).
    A peak is a step whose score is the largest within +-w steps, inside a kept ON segment
    [s, e) of the unsplit run, with s + m <= b <= e - m for the boundary b it stands for.
    """
    if not params.splits:
        raise CalibrationError("split_peaks needs a split window; set split_window > 0")
    w, m = params.split_window, params.split_min_steps
    probe = replace(params, split_theta=1e300)  # never reached: scores without splits
    out: list[np.ndarray] = []
    for z in latents:
        run = run_series_latent(np.asarray(z), probe)
        score = run.score
        for s, e in run.segments.tolist():
            # The score of step t stands for boundary b = t - w + 1.
            lo, hi = s + m + w - 1, e - m + w - 1
            for t in range(lo, min(hi + 1, score.shape[0])):
                v = score[t]
                if not np.isfinite(v):
                    continue
                near = score[max(0, t - w): t + w + 1]
                if v >= np.nanmax(near):
                    out.append(np.array([v]))
    return np.concatenate(out) if out else np.zeros(0)


def calibrate_split_unsupervised(
    latents: Sequence[np.ndarray], params: HysteresisParams, fps: float,
    window_s: float = DEFAULT_WINDOW_S, min_piece_s: float = DEFAULT_MIN_PIECE_S,
) -> SplitCalibration:
    """Split threshold = Otsu's threshold of the log peak scores (module docstring)."""
    w = steps_for(window_s, fps)
    base = with_window(params, w, 0.0, steps_for(min_piece_s, fps))
    peaks = split_peaks(latents, base)
    warnings: list[str] = []
    positive = peaks[peaks > 0]
    if positive.size < 2:
        # No candidate: nothing inside activity could ever be split; keep the step off.
        warnings.append(
            f"the split step found {positive.size} candidate boundaries inside activity; it stays off "
            f"(record longer recordings with several actions, or calibrate with --labels)"
        )
        return SplitCalibration(replace(params, split_window=0), "unsupervised", window_s, peaks,
                                warnings=warnings)
    split = otsu_split(np.log(positive))
    theta = float(np.exp(split.threshold))
    lag = decision_lag_steps(base) / fps
    if lag > MAX_DECISION_LAG_S:
        warnings.append(
            f"split window {window_s:g} s: each split is published {lag:.1f} s after its boundary, over the "
            f"{MAX_DECISION_LAG_S:g} s budget; choose --split-window-s {MAX_DECISION_LAG_S / 2:g} or less for live use"
        )
    if positive.size < MIN_PEAKS:
        warnings.append(
            f"only {positive.size} candidate boundaries inside activity (< {MIN_PEAKS}): the split threshold "
            f"{theta:.3g} is a rough guess; record longer or calibrate with --labels"
        )
    return SplitCalibration(with_window(base, w, theta, base.split_min_steps), "unsupervised", window_s, peaks,
                            separability=split.separability, warnings=warnings)


def everywhere(params: HysteresisParams) -> HysteresisParams:
    """`params` with theta_on = 0: the smoothed energy is never below it, so the first ON segment
    lasts to the end of the stream (or the max_steps cap) and only the split step cuts it."""
    return replace(params, theta_on=0.0)


def calibrate_split_labelled(
    latents: Sequence[np.ndarray], ground_truth: Sequence[np.ndarray], fps: float, params: HysteresisParams,
    tau: float = 2.0, windows_s: Sequence[float] = LABELLED_WINDOWS_S,
    quantiles: Sequence[float] = LABELLED_QUANTILES, min_piece_s: float = DEFAULT_MIN_PIECE_S,
    try_everywhere: bool = True, max_lag_s: float | None = MAX_DECISION_LAG_S,
) -> SplitCalibration:
    """The (window, threshold) with the best mean boundary F1@tau against labelled segments.

    latents: per recording (T_i, D); ground_truth: per recording (K_i, 2) [start_s, end_s). The
    split-free parameters are scored too: a split that does not help on the labels stays off.
    try_everywhere: also score every pair with activity everywhere (`everywhere(params)`).
    max_lag_s: windows whose decision lag would exceed this many seconds are not tried (None: no
    limit, for offline use where a late split costs nothing).
    """
    durations = [np.asarray(z).shape[0] / fps for z in latents]
    gts = [np.asarray(g, np.float64).reshape(-1, 2) for g in ground_truth]

    def f1(p: HysteresisParams) -> float:
        preds = [run_series_latent(np.asarray(z), p).segments / fps for z in latents]
        return evaluation.boundary_f1(preds, gts, tau, durations)

    off = replace(params, split_window=0)
    best_params, best_f1, best_window_s = off, f1(off), 0.0
    best_peaks = np.zeros(0)
    curve: list[tuple[int, float, float]] = [(0, 0.0, best_f1)]
    best_everywhere = False
    activities = (params, everywhere(params)) if try_everywhere else (params,)
    for activity in activities:
        for window_s in windows_s:
            w = steps_for(window_s, fps)
            base = with_window(activity, w, 0.0, steps_for(min_piece_s, fps))
            if max_lag_s is not None and decision_lag_steps(base) > max_lag_s * fps:
                continue
            peaks = split_peaks(latents, base)
            if peaks.size == 0:
                continue
            for theta in np.unique(np.quantile(peaks, quantiles)):
                p = with_window(base, w, float(theta), base.split_min_steps)
                score = f1(p)
                curve.append((w, float(theta), score))
                if score > best_f1:
                    best_params, best_f1, best_window_s, best_peaks = p, score, window_s, peaks
                    best_everywhere = activity is not params
    return SplitCalibration(best_params, "labelled", best_window_s, best_peaks, score=best_f1, curve=curve,
                            everywhere=best_everywhere)
