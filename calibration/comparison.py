"""New thresholds against the model's current ones, on the same recordings.

A calibration is only worth deploying when it does better than what the devices run now, so
the report and the command line put both through the same figures:

    ON share       fraction of steps the thresholds mark active (the pseudo-labels' share beside it)
    segments       kept segments, and their median length in seconds
    F1, J          frame-wise agreement with the Otsu pseudo-labels of the velocity proxy
    F1@2s          boundary F1 (tau 2 s, `edge.evaluation.boundary_f1`) against real boundaries, when
                   the recordings have them: the --labels given, or the ground truth of a
                   `synthetic://` recording

"Current" is the calibration in the model directory (what a device running that model uses),
or the built-in velocity-energy default for `--model none`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from edge import evaluation
from edge.energy import HysteresisParams, run_series, run_series_latent

#: chosen thresholds whose ON share is more than this factor above or below the pseudo-labels'
#: active share are flagged (46.8 % against 23.7 % in issue 21 is a factor 2): they call much
#: more (or less) of the recordings activity than the reference they were fitted to
ACTIVITY_RATIO_LIMIT = 1.5


@dataclass(frozen=True)
class ThresholdFigures:
    """One parameter set's figures over all recordings (see the module docstring)."""

    name: str
    params: HysteresisParams
    on_fraction: float
    segments: int
    median_segment_s: float
    f1_pseudo: float
    youden_j: float
    f1_at_2s: float | None
    truth: str  # what F1@2s is measured against ("" when nothing)


def current_params(model) -> tuple[HysteresisParams, str] | None:
    """The thresholds a device runs with `model` (a `calibration.recordings.ModelConventions`)
    today, and where they come from; None when the model directory has no calibration."""
    if model.model_dir is None:
        from edge.pipeline import DEFAULT_VELOCITY_THETA_ON

        return HysteresisParams(theta_on=DEFAULT_VELOCITY_THETA_ON), "the built-in velocity-energy default"
    from edge.model import load_model_directory

    cal = load_model_directory(model.model_dir).calibration
    if cal is None:
        return None
    return cal.params, f"{model.model_dir}/calibration.json"


def truth_spans(recording, labels: Mapping | None = None) -> tuple[np.ndarray | None, str]:
    """(K, 2) [start_s, end_s) real segments of a recording and what they are: its labels
    (`calibration.labelled.RecordingLabels`) when given, else the generator's ground truth for a
    `synthetic://` recording; (None, "") when it has none."""
    lab = (labels or {}).get(recording.name)
    if lab is not None:
        return np.asarray(lab.segments, np.float64).reshape(-1, 2), "the labels"
    if str(recording.source).startswith("synthetic://"):
        from edge.sources.synthetic import parse_spec
        from edge.synthetic import SyntheticWorkstation

        gt = SyntheticWorkstation(**parse_spec(recording.source)).ground_truth
        return np.asarray([(s, e) for s, e, _ in gt.segments], np.float64).reshape(-1, 2), "the synthetic ground truth"
    return None, ""


def compare_thresholds(recordings: Sequence, pseudo: Sequence[np.ndarray], candidates: Mapping[str, HysteresisParams],
                       labels: Mapping | None = None, latents: Sequence[np.ndarray] | None = None
                       ) -> list[ThresholdFigures]:
    """The figures of each named parameter set over the same recordings (in the order given).

    pseudo: per recording (T,) bool pseudo-labels; latents: per recording (T, D) z_q, so the
    split step runs as on the device (None: energy only)."""
    truths = [truth_spans(r, labels) for r in recordings]
    with_truth = [i for i, (t, _) in enumerate(truths) if t is not None]
    what = sorted({w for t, w in truths if t is not None})
    out = []
    for name, params in candidates.items():
        on_steps = steps = tp = fp = fn = tn = 0
        lengths: list[float] = []
        preds: dict[int, np.ndarray] = {}
        for i, (rec, ref) in enumerate(zip(recordings, pseudo)):
            run = (run_series_latent(latents[i], params) if latents is not None and latents[i] is not None
                   else run_series(rec.energy, params))
            on = np.asarray(run.on, bool)
            ref = np.asarray(ref, bool)[: on.shape[0]]
            on = on[: ref.shape[0]]
            tp += int(np.sum(on & ref))
            fp += int(np.sum(on & ~ref))
            fn += int(np.sum(~on & ref))
            tn += int(np.sum(~on & ~ref))
            on_steps += int(on.sum())
            steps += int(on.shape[0])
            segs = np.asarray(run.segments, np.float64).reshape(-1, 2)
            lengths.extend(((segs[:, 1] - segs[:, 0]) / rec.fps).tolist())
            preds[i] = segs / rec.fps
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        j = (tp / (tp + fn) if tp + fn else 0.0) + (tn / (tn + fp) if tn + fp else 0.0) - 1.0
        f1_2s = None
        if with_truth:
            f1_2s = float(evaluation.boundary_f1([preds[i] for i in with_truth], [truths[i][0] for i in with_truth],
                                                 2.0, [recordings[i].duration_s for i in with_truth]))
        out.append(ThresholdFigures(name, params, on_steps / steps if steps else 0.0, len(lengths),
                                    float(np.median(lengths)) if lengths else 0.0, float(f1), float(j), f1_2s,
                                    " and ".join(what)))
    return out


def activity_mismatch_warning(on_fraction: float, active_fraction: float) -> str | None:
    """A one-line warning when the chosen thresholds mark a very different share of the steps
    active than the pseudo-labels do (beyond ACTIVITY_RATIO_LIMIT either way); else None."""
    if active_fraction <= 0 or on_fraction <= 0:
        return None
    ratio = on_fraction / active_fraction
    if 1 / ACTIVITY_RATIO_LIMIT <= ratio <= ACTIVITY_RATIO_LIMIT:
        return None
    more = "more" if ratio > 1 else "less"
    return (f"the chosen thresholds mark {100 * on_fraction:.1f} % of the steps active against {100 * active_fraction:.1f} % "
            f"in the pseudo-labels ({ratio:.1f}x {more}), so they segment differently from the reference they were "
            f"fitted to; look at the energy plots, compare with the current thresholds, or label a few minutes "
            f"(--labels)")
