"""Unsupervised calibration (docs/method.md#calibration): thresholds that best reproduce the
Otsu pseudo-labels of the velocity-energy proxy, and how far to trust them.

    proxy (per step) --Otsu, 256 bins, pooled over recordings--> pseudo-labels
    energy (per step) --sweep over theta_on x r x u x d x alpha on the device kernel--> ON masks
    score every parameter set by F1 or Youden's J against the pseudo-labels, keep the best.

Trust: the paper's own logs show this proxy barely beats chance on real industrial views
(J = 0.03-0.22) — and thresholds fitted to a proxy that disagrees with the device's energy are
fitted to noise. So the calibration reports Youden's J and F1 of the chosen parameters against
the pseudo-labels, and warns when J < WEAK_PROXY_J.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from calibration.proxy import CalibrationError, OtsuSplit, otsu_split, pseudo_labels
from calibration.recordings import EnergyRecording
from calibration.sweep import (
    SweepGrid,
    SweepScores,
    SweepSpace,
    build_grid,
    check_criterion,
    plateau_row,
    sweep_counts,
    theta_candidates,
)
from edge.calibration_file import CalibrationFile, tool_version, utc_now
from edge.energy import HysteresisParams

#: What the unsupervised calibration sweeps and maximises by default: theta_on alone (r, u, d,
#: alpha at the paper's values), scored against the pseudo-labels by the geometric mean of F1 and
#: Youden's J for tokenizer energy and by J for velocity energy, and chosen as the middle of the
#: near-best plateau (`sweep.plateau_row`). Chosen on the VALIDATION seeds 500-519 (20 videos x
#: 2 min; the "validation: unsupervised" rows of `python -m benchmarks.calibration`) by the mean
#: F1@2s gap to the best single theta_on on the ground truth, with one calibration over all 20
#: videos / groups of 10 / groups of 5 / single videos:
#:   tokenizer energy: gmean 0.011 / 0.008 / 0.024 / 0.090, J 0.011 / 0.056 / 0.049 / 0.114,
#:                     F1 0.006 / 0.014 / 0.018 / 0.169;
#:   velocity energy:  J 0.027 / 0.043 / 0.055 / 0.059, gmean 0.040 / 0.053 / 0.059 / 0.065,
#:                     F1 0.059 / 0.059 / 0.084 / 0.082.
#: The wide r/u/d/alpha grid (`SweepSpace()`, `--full-grid`) over all 20 videos: 0.050 (gmean) and
#: 0.056 (F1) for the tokenizer, 0.038 / 0.044 for velocity: agreement with raw pseudo-labels
#: rewards parameters that copy the proxy's step-to-step noise (u = 1, alpha = 1), which costs
#: boundaries. (With velocity energy the energy IS the proxy, so J measures how well the
#: hysteresis reproduces a threshold of its own input.)
DEFAULT_SPACE = SweepSpace.only_theta(HysteresisParams(theta_on=0.0))
DEFAULT_CRITERION = "gmean"
DEFAULT_CRITERION_VELOCITY = "youden"
#: The tool named in the calibration files this package writes.
TOOL = "laps-calibrate"

#: Youden's J of the chosen thresholds against the pseudo-labels below which the calibration
#: warns. Why 0.1 (VALIDATION seeds 500-519, default tokenizer, each video calibrated on its own
#: 2 minutes; the "validation: single videos" rows of `python -m benchmarks.calibration`): the 4
#: videos with J < 0.1 lost on average 0.29 F1@2s to their ground-truth optimum (one, with J = 0,
#: lost 0.85: no usable threshold at all), the 16 with J >= 0.1 lost 0.04 (worst 0.10). The
#: paper's real industrial views (J 0.03-0.22) straddle the level. Two limits, stated in the
#: report: with velocity energy J is the energy's agreement with itself (0.74-0.92 on every
#: validation video) and cannot flag a bad view; and a proxy that agrees less with the motion but
#: keeps its histogram barely moves the default choice (the "proxy weakened" rows: no run lost
#: more than 0.065 down to J 0.02), so the warning speaks about views where the proxy's split
#: between activity and rest is itself wrong.
WEAK_PROXY_J = 0.1
#: Pseudo-labels that call fewer than this fraction of the steps activity, or more than one minus
#: it, are degenerate: the Otsu split found no rest/activity contrast to calibrate against (a
#: walking crowd is all "activity", a still view with camera noise all "rest"), whatever J says.
DEGENERATE_ACTIVE_FRACTION = 0.02


@dataclass(frozen=True)
class ProxyQuality:
    """How well the proxy separates activity from rest, and how well the energy follows it.

    otsu_threshold: px/step. separability: Otsu's eta of the proxy histogram, in [0, 1].
    active_fraction: fraction of steps the pseudo-labels call activity.
    youden_j, f1: of the chosen parameters' ON steps against the pseudo-labels.
    best_youden_j: the highest J any swept parameter set reaches.
    """

    otsu_threshold: float
    separability: float
    active_fraction: float
    youden_j: float
    f1: float
    best_youden_j: float

    @property
    def weak(self) -> bool:
        return self.youden_j < WEAK_PROXY_J

    @property
    def degenerate(self) -> bool:
        """The pseudo-labels mark (almost) nothing or (almost) everything as activity."""
        return not DEGENERATE_ACTIVE_FRACTION <= self.active_fraction <= 1.0 - DEGENERATE_ACTIVE_FRACTION

    def to_dict(self) -> dict:
        return {
            "youden_j": self.youden_j, "f1": self.f1, "best_youden_j": self.best_youden_j,
            "otsu_threshold": self.otsu_threshold, "otsu_separability": self.separability,
            "pseudo_active_fraction": self.active_fraction, "weak": self.weak,
            "weak_below_youden_j": WEAK_PROXY_J, "degenerate": self.degenerate,
            "degenerate_outside_active_fraction": [DEGENERATE_ACTIVE_FRACTION, 1.0 - DEGENERATE_ACTIVE_FRACTION],
        }


@dataclass
class Calibration:
    """The outcome of a calibration.

    params: the chosen hysteresis parameters. mode: "unsupervised" or "labelled".
    criterion: what was maximised ("f1" / "youden" against the pseudo-labels, or
    "boundary_f1@<tau>s" against labels). score: its value for `params`.
    quality: the proxy's quality (always computed, also in labelled mode).
    otsu: the Otsu split of the pooled proxy. grid: the swept grid.
    proxy_scores: every grid row's scores against the pseudo-labels.
    pseudo: per recording (T_i,) bool pseudo-labels.
    warnings: one-line warnings for the user (weak proxy, ...).
    labelled: labelled-mode figures (see `calibration.labelled.LabelledResult`), else None.
    unsupervised_params: in labelled mode, what the proxy alone would have chosen.
    split: how the within-activity split step was calibrated (`calibration.split.SplitCalibration`),
    None when it was not (velocity energy, `--no-split`, traces without codes).
    """

    params: HysteresisParams
    mode: str
    criterion: str
    score: float
    quality: ProxyQuality
    otsu: OtsuSplit
    grid: SweepGrid
    proxy_scores: SweepScores
    pseudo: list[np.ndarray]
    warnings: list[str] = field(default_factory=list)
    labelled: object | None = None
    unsupervised_params: HysteresisParams | None = None
    split: object | None = None

    def to_file(self, recordings: Sequence[EnergyRecording], model, data_sha256: str,
                created: str | None = None) -> CalibrationFile:
        """The `calibration.json` content of this calibration, with its provenance.

        recordings: the `EnergyRecording`s it used; model: their `calibration.recordings.ModelConventions`;
        data_sha256: `calibration.recordings.data_hash` of what was calibrated on; created: the
        ISO-8601 UTC stamp (default now).
        """
        space = self.grid.space
        details = {
            "proxy_quality": self.quality.to_dict(),
            "labelled": self.labelled.to_dict() if self.labelled is not None else None,
            "unsupervised_params": (self.unsupervised_params.to_dict() if self.unsupervised_params is not None
                                    else None),
            "split": self.split.to_dict() if self.split is not None else None,
            "data": {
                "sha256": data_sha256,
                "recordings": [{"name": r.name, "source": r.source, "kind": r.kind, "steps": r.n_steps,
                                "seconds": r.duration_s} for r in recordings],
                "seconds": float(sum(r.duration_s for r in recordings)),
            },
            "sweep": {
                "parameter_sets": self.grid.size, "theta_candidates": int(self.grid.thetas.shape[0]),
                "ratio_off": list(space.ratio_off), "up_steps": list(space.up_steps),
                "down_steps": list(space.down_steps), "alpha": list(space.alpha),
                "cooldown_steps": space.cooldown_steps, "min_steps": space.min_steps, "max_steps": space.max_steps,
            },
        }
        return CalibrationFile(
            params=self.params, model_version=model.model_version, fps=float(model.fps), mode=self.mode,
            criterion=self.criterion, score=float(self.score), details=details, warnings=tuple(self.warnings),
            created=created or utc_now(), tool=TOOL, tool_version=tool_version(),
        )


def calibrate_unsupervised(
    recordings: Sequence[EnergyRecording],
    space: SweepSpace | None = None,
    criterion: str | None = None,
    progress: bool = False,
) -> Calibration:
    """Choose hysteresis parameters against the Otsu pseudo-labels of the velocity proxy.

    space: what to sweep (default DEFAULT_SPACE). criterion: "gmean", "youden" or "f1"; None
    takes `default_criterion` of the recordings' model. The choice is the middle of the
    near-best plateau of the criterion (`sweep.plateau_row`).

    The Otsu split is taken over the pooled proxy of all recordings (one camera view, one
    threshold); every recording runs the kernel from a fresh state; counts are summed.
    """
    space = space or DEFAULT_SPACE
    if not recordings:
        raise CalibrationError("no recordings to calibrate on; pass at least one video or energy trace")
    criterion = check_criterion(criterion or default_criterion(recordings[0].model_version))
    otsu = otsu_split(np.concatenate([r.proxy for r in recordings]))
    pseudo = [pseudo_labels(r.proxy, otsu.threshold) for r in recordings]
    grid = build_grid(theta_candidates([r.energy for r in recordings], space.max_theta), space)
    counts = sweep_counts([r.energy for r in recordings], pseudo, grid, progress=progress,
                          desc="sweeping vs pseudo-labels")
    scores = SweepScores(counts)
    row = plateau_row(scores.by(criterion), grid)
    quality = ProxyQuality(
        otsu_threshold=otsu.threshold, separability=otsu.separability,
        active_fraction=float(np.mean(np.concatenate(pseudo))),
        youden_j=float(scores.youden_j[row]), f1=float(scores.f1[row]),
        best_youden_j=float(np.max(scores.youden_j)),
    )
    cal = Calibration(
        params=grid.params(row), mode="unsupervised", criterion=criterion, score=float(scores.by(criterion)[row]),
        quality=quality, otsu=otsu, grid=grid, proxy_scores=scores, pseudo=pseudo,
    )
    if quality.degenerate:
        cal.warnings.append(degenerate_proxy_warning(quality.active_fraction))
    elif quality.weak:
        cal.warnings.append(weak_proxy_warning(quality.youden_j))
    return cal


def default_criterion(model_version: str) -> str:
    """The default criterion for energy of this model: J for velocity energy, gmean otherwise."""
    from calibration.recordings import VELOCITY_MODEL_VERSION

    return DEFAULT_CRITERION_VELOCITY if model_version == VELOCITY_MODEL_VERSION else DEFAULT_CRITERION


def weak_proxy_warning(youden_j: float) -> str:
    """The one-line warning (CLI and report) for a proxy that separates poorly."""
    return (
        f"the velocity-energy proxy separates activity from rest poorly here (Youden's J {youden_j:.2f} < "
        f"{WEAK_PROXY_J:g}), so thresholds fitted to it may be wrong; record a few labelled minutes and re-run "
        f"with --labels, check the camera view (whole work area visible, fixed mount, steady light, no "
        f"moving background), or retrain the tokenizer on footage of this station"
    )


def degenerate_proxy_warning(active_fraction: float) -> str:
    """The one-line warning for pseudo-labels that are (almost) all rest or all activity."""
    what = "activity" if active_fraction > 0.5 else "rest"
    return (
        f"the velocity-energy pseudo-labels call {100 * active_fraction:.1f} % of the steps activity, so they are "
        f"almost all {what} and the thresholds fitted to them mean little (J and F1 against them are not a "
        f"check); record minutes that contain both rest and work at this station, or label a few minutes and "
        f"re-run with --labels"
    )
