"""Labelled mode: when a few labelled minutes exist, calibrate on them instead of the proxy.

Labels, one file per recording, matched to a recording by name (the video's file stem):

- segment JSON: `{"segments": [[start_s, end_s], ...]}` (or objects with start_s/end_s, or a bare
  list of pairs; an optional "duration_s"), or the ground-truth JSON `laps-edge synth` and
  `laps-edge run` write (schema laps.synthetic-groundtruth/1);
- per-frame labels: `{"fps": F, "labels": [...]}` in JSON, or `.npy` / `.txt` / `.csv` with one
  label per frame of the video (at the video's own frame rate; for an energy trace, per step).
  A label of 0, "rest", "background", "bg", "sil", "none", "idle" or "" is rest; every run of one
  other label is a segment, so two actions back to back give a boundary between them.

A file named `NAME.json`, `NAME.labels.json`, `NAME.npy`, ... belongs to the recording NAME;
`ground_truth.json` belongs to the folder it sits in (as `DIR/energy.npz` does); with one
recording and one label file given as a file (not a folder) the name does not matter.

Calibration: each labelled recording is cut in time; the first (1 - holdout) part calibrates and
the rest is held out. The whole grid is scored frame-wise against the labels on the device
kernel (`calibration.sweep`), the best few theta_on of every (r, u, d, alpha) are re-scored by
boundary F1 at tau seconds (`edge.evaluation.boundary_f1`, segments from `edge.energy.run_series`),
and the best of those wins (by default over theta_on x alpha x down_steps, see LABELLED_SPACE:
boundary F1 on a few labelled minutes overfits a large grid). Held-out F1@2s and F1@5s are
reported for the labelled choice and, for comparison, for the unsupervised (proxy) choice.

`search_theta_on` is the same search over theta_on alone, on whole recordings with exact ground
truth (`laps-export onnx --calibrate-seeds`, the segmentation benchmarks): both choose by
`best_by_boundary_f1`, the one labelled threshold search.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.proxy import CalibrationError
from calibration.recordings import EnergyRecording
from calibration.sweep import SweepSpace, build_grid, scores_from_counts, sweep_counts, theta_candidates
from edge import evaluation
from edge.energy import HysteresisParams, run_series, run_series_latent
from edge.errors import LapsError

#: Label files are recognised by these endings inside a labels folder.
LABEL_SUFFIXES = (".json", ".npy", ".txt", ".csv")
#: Per-frame label values that mean "no action".
REST_TOKENS = frozenset({"0", "rest", "background", "bg", "sil", "none", "idle", ""})
#: Labels and recording may disagree in duration by this much (seconds, or this fraction of the
#: recording, whichever is larger): containers round frame counts and timestamps.
DURATION_TOLERANCE_S = 1.0
DURATION_TOLERANCE_FRACTION = 0.01
#: Boundary-F1 re-scoring keeps this many parameter sets in all, spread over the (r, u, d, alpha)
#: combinations (the best few theta_on of each by frame-wise F1).
DEFAULT_TOP_K = 1024
#: The space labelled mode sweeps by default: theta_on x alpha x down_steps, r and u at the paper's
#: values. Chosen on the VALIDATION seeds 500-519 by 4-fold cross-validation (calibrate on the
#: labels of 15 videos, score F1@2s on the other 5): this space 0.790 (default tokenizer) / 0.738
#: (velocity energy), theta_on alone 0.779 / 0.684, the wide 27,648-set grid 0.753 / 0.639 —
#: boundary F1 on a few labelled minutes overfits a large grid. Reproduce: the "validation:
#: labelled 4-fold CV" rows of `python -m benchmarks.calibration`.
LABELLED_SPACE = SweepSpace(ratio_off=(0.95,), up_steps=(2,), down_steps=(1, 2, 4), alpha=(0.5, 0.7, 1.0))
#: Held-out minutes below this (seconds, summed) give a warning: F1 on fewer boundaries is noise.
MIN_HELDOUT_S = 60.0


class LabelMismatchError(LapsError):
    """Labels do not match the recordings (unknown name, duration or frame count differs)."""


@dataclass(frozen=True)
class RecordingLabels:
    """Reference segments of one recording.

    name: the recording it belongs to. path: the label file. segments: (K, 2) float64
    [start_s, end_s) of the actions. duration_s: what the labels say the recording lasts
    (None when a segment list does not say).
    """

    name: str
    path: str
    segments: np.ndarray
    duration_s: float | None

    def step_labels(self, n_steps: int, fps: float) -> np.ndarray:
        """(n_steps,) bool: True on steps (at `fps`) inside a labelled action."""
        frames = evaluation.frame_labels_from_segments(self.segments * fps, n_steps)
        return frames >= 0


@dataclass
class LabelledResult:
    """Figures of a labelled calibration.

    tau: boundary tolerance (s) of the criterion. holdout_fraction: the held-out share of each
    labelled recording. calibration_s / heldout_s: labelled seconds used for each.
    calibration_f1: boundary F1@tau of the chosen parameters on the calibration parts.
    heldout: {"labelled": {"f1_at_2s", "f1_at_5s"}, "unsupervised": {...}} on the held-out parts
    (empty when nothing is held out). per_recording: per labelled recording, the same figures.
    proxy_vs_labels_j: Youden's J of the Otsu pseudo-labels against the labels (how good the
    proxy really is here). theta_curve: (theta_on, boundary F1@tau on the calibration parts) for
    the chosen (r, u, d, alpha), for the report. labelled_names / unlabelled_names: recordings.
    space / parameter_sets: what the labelled sweep covered.
    """

    tau: float
    holdout_fraction: float
    calibration_s: float
    heldout_s: float
    calibration_f1: float
    heldout: dict
    per_recording: list[dict]
    proxy_vs_labels_j: float
    theta_curve: list[tuple[float, float]]
    labelled_names: list[str]
    unlabelled_names: list[str]
    space: SweepSpace = LABELLED_SPACE
    parameter_sets: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "tau_s": self.tau, "holdout_fraction": self.holdout_fraction, "calibration_s": self.calibration_s,
            "heldout_s": self.heldout_s, "calibration_f1": self.calibration_f1, "heldout": self.heldout,
            "per_recording": self.per_recording, "proxy_vs_labels_youden_j": self.proxy_vs_labels_j,
            "labelled": self.labelled_names, "unlabelled": self.unlabelled_names,
            "sweep": {"parameter_sets": self.parameter_sets, "ratio_off": list(self.space.ratio_off),
                      "up_steps": list(self.space.up_steps), "down_steps": list(self.space.down_steps),
                      "alpha": list(self.space.alpha), "cooldown_steps": self.space.cooldown_steps,
                      "min_steps": self.space.min_steps, "max_steps": self.space.max_steps},
        }


# --- reading and matching labels ----------------------------------------------------------------

def match_labels(paths: Sequence[str], recordings: Sequence[EnergyRecording]) -> dict[str, RecordingLabels]:
    """Read every label file under `paths` (files or folders) and match each to a recording.

    Raises LabelMismatchError for a label file whose name matches no recording, two files for
    one recording, a duration or frame count that differs from the recording, or no label file.
    """
    by_name = {r.name: r for r in recordings}
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.extend(c for c in sorted(p.iterdir()) if c.is_file() and c.suffix.lower() in LABEL_SUFFIXES)
        elif p.is_file():
            files.append(p)
        else:
            raise LabelMismatchError(f"labels path {p} does not exist; give a label file or a folder of them")
    if not files:
        raise LabelMismatchError(
            f"no label file found in {', '.join(map(str, paths))} (looked for {', '.join(LABEL_SUFFIXES)}); "
            f"give segment JSON or per-frame labels named after the videos"
        )
    # One label FILE named for one recording needs no matching name (a folder is matched by name).
    single = len(paths) == 1 and Path(paths[0]).is_file() and len(recordings) == 1
    out: dict[str, RecordingLabels] = {}
    for f in files:
        name = next(iter(by_name)) if single else label_name(f)
        rec = by_name.get(name)
        if rec is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise LabelMismatchError(
                f"label file {f} is for a video named {name!r}, which is not among the inputs ({known}); "
                f"rename the file after its video's file name or add that video"
            )
        if name in out:
            raise LabelMismatchError(
                f"video {name!r} has two label files, {out[name].path} and {f}; keep one"
            )
        out[name] = read_labels(f, rec)
    return out


def label_name(path: Path) -> str:
    """The recording a label file belongs to: its stem without a trailing `.labels`;
    `ground_truth.json` takes its folder's name."""
    if path.name == "ground_truth.json" and path.parent.name:
        return path.parent.name
    stem = path.stem
    return stem[: -len(".labels")] if stem.endswith(".labels") else stem


def read_labels(path: str | Path, recording: EnergyRecording) -> RecordingLabels:
    """Read one label file (any format of the module docstring) and check it against
    `recording` (duration, frame count)."""
    p = Path(path)
    suffix = p.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(p.read_text(encoding="utf-8"))
            return _from_json(p, data, recording)
        if suffix == ".npy":
            tokens = [str(v) for v in np.load(p, allow_pickle=False).ravel().tolist()]
        elif suffix in (".txt", ".csv"):
            text = p.read_text(encoding="utf-8")
            tokens = [t.strip() for line in text.splitlines() for t in line.replace(",", " ").split()]
        else:
            raise LabelMismatchError(
                f"label file {p} has an unknown type {suffix!r}; use one of {', '.join(LABEL_SUFFIXES)}"
            )
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise LabelMismatchError(
            f"label file {p} is unreadable ({err.__class__.__name__}: {err}); fix or re-export it"
        ) from None
    fps = recording.native_fps or recording.fps
    return _from_frames(p, tokens, fps, recording, per="video frame" if recording.kind == "video" else "step")


def _from_json(p: Path, data: object, rec: EnergyRecording) -> RecordingLabels:
    if isinstance(data, dict) and str(data.get("schema", "")).startswith("laps.synthetic-groundtruth/"):
        from edge.synthetic import GroundTruth

        gt = GroundTruth.from_json(json.dumps(data), where=f"label file {p}")
        segs = np.asarray([(s, e) for s, e, _ in gt.segments], np.float64).reshape(-1, 2)
        return _checked(p, segs, gt.duration_s, rec)
    if isinstance(data, dict) and "labels" in data:
        fps = data.get("fps")
        if not isinstance(fps, (int, float)) or not fps > 0:
            raise LabelMismatchError(
                f"label file {p} has per-frame labels but no positive 'fps'; add the labels' frame rate"
            )
        return _from_frames(p, [str(v) for v in data["labels"]], float(fps), rec, per="label frame")
    if isinstance(data, dict) and "segments" in data:
        items, duration = data["segments"], data.get("duration_s")
    elif isinstance(data, list):
        items, duration = data, None
    else:
        raise LabelMismatchError(
            f"label file {p} has neither 'segments' nor 'labels'; write {{\"segments\": [[start_s, end_s], ...]}}"
        )
    try:
        segs = np.asarray([_pair(s) for s in items], np.float64).reshape(-1, 2)
        duration = None if duration is None else float(duration)
    except (TypeError, ValueError, KeyError):
        raise LabelMismatchError(
            f"label file {p} has a malformed segment; write each as [start_s, end_s] or {{\"start_s\", \"end_s\"}}"
        ) from None
    return _checked(p, segs, duration, rec)


def _pair(item: object) -> tuple[float, float]:
    if isinstance(item, dict):
        start = item.get("start_s", item.get("start"))
        end = item.get("end_s", item.get("end"))
        return float(start), float(end)  # type: ignore[arg-type]
    a, b = item[:2]  # type: ignore[index]
    return float(a), float(b)


def _from_frames(p: Path, tokens: list[str], fps: float, rec: EnergyRecording, per: str) -> RecordingLabels:
    n = len(tokens)
    rec_frames = rec.native_frames if per == "video frame" else None
    if rec_frames is not None and abs(n - rec_frames) > max(2, int(DURATION_TOLERANCE_FRACTION * rec_frames)):
        raise LabelMismatchError(
            f"label file {p} has {n} per-frame labels but video {rec.name} has {rec_frames} frames "
            f"({rec_frames / fps:.1f} s at {fps:g} fps); give one label per video frame"
        )
    segs = []
    start, current = None, None
    for i, tok in enumerate(tokens + ["0"]):  # a rest sentinel closes the last run
        t = tok.strip().lower()
        if t != current:
            if current is not None and current not in REST_TOKENS:
                segs.append((start / fps, i / fps))
            start, current = i, t
    return _checked(p, np.asarray(segs, np.float64).reshape(-1, 2), n / fps, rec)


def _checked(p: Path, segs: np.ndarray, duration: float | None, rec: EnergyRecording) -> RecordingLabels:
    rec_duration = _recording_duration(rec)
    tol = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * rec_duration)
    if duration is not None and abs(duration - rec_duration) > tol:
        raise LabelMismatchError(
            f"label file {p} covers {duration:.1f} s but video {rec.name} lasts {rec_duration:.1f} s; "
            f"give the labels of this video (or trim the video to the labelled part)"
        )
    if segs.size:
        bad = (segs[:, 1] <= segs[:, 0]) | (segs[:, 0] < 0) | ~np.isfinite(segs).all(axis=1)
        if bad.any():
            s, e = segs[int(np.flatnonzero(bad)[0])]
            raise LabelMismatchError(f"label file {p} has a segment [{s:g}, {e:g}) s that is empty or negative; fix it")
        if segs[:, 1].max() > rec_duration + tol:
            raise LabelMismatchError(
                f"label file {p} has a segment ending at {segs[:, 1].max():.1f} s but video {rec.name} lasts "
                f"{rec_duration:.1f} s; give the labels of this video"
            )
        segs = segs[np.argsort(segs[:, 0], kind="stable")]
    return RecordingLabels(name=rec.name, path=str(p), segments=segs, duration_s=duration)


def _recording_duration(rec: EnergyRecording) -> float:
    if rec.native_frames and rec.native_fps:
        return rec.native_frames / rec.native_fps
    return rec.duration_s


# --- calibrating on labels ----------------------------------------------------------------------

@dataclass(frozen=True)
class _Part:
    """A time slice of a labelled recording, starting a fresh kernel stream."""

    name: str
    energy: np.ndarray
    proxy_labels: np.ndarray | None  # None for a recording searched without pseudo-labels
    step_labels: np.ndarray | None
    segments: np.ndarray  # seconds from the slice start
    fps: float
    latents: np.ndarray | None = None  # (T, D) z_q per step, for the split step

    @property
    def duration_s(self) -> float:
        return self.energy.shape[0] / self.fps


def calibrate_labelled(
    recordings: Sequence[EnergyRecording],
    labels: dict[str, RecordingLabels],
    unsupervised,
    space: SweepSpace | None = None,
    holdout_fraction: float = 0.3,
    tau: float = 2.0,
    top_k: int = DEFAULT_TOP_K,
    progress: bool = False,
    latents: Sequence[np.ndarray] | None = None,
):
    """A `calibration.unsupervised.Calibration` in labelled mode.

    unsupervised: the unsupervised calibration of the same recordings (its proxy quality and
    pseudo-labels are kept; its choice is scored on the held-out parts for comparison).
    space: what to sweep (default LABELLED_SPACE).
    holdout_fraction: the last part of every labelled recording kept out of the calibration,
    in [0, 0.9]; 0 holds nothing out (no held-out figures).
    latents: z_q per step of each recording (parallel to `recordings`); with them the split
    step is calibrated on the labels too (`calibration.split.calibrate_split_labelled`), after
    the hysteresis parameters, and every F1 below runs the kernel on the latents.
    """
    from calibration.split import calibrate_split_labelled

    if not 0.0 <= holdout_fraction <= 0.9:
        raise CalibrationError(
            f"holdout fraction {holdout_fraction:g} is outside [0, 0.9]; e.g. 0.3 holds out the last 30 %"
        )
    space = space or LABELLED_SPACE
    labelled = [r for r in recordings if r.name in labels]
    if not labelled:
        raise LabelMismatchError("no recording has labels; name label files after the videos")
    pseudo_by_name = {r.name: p for r, p in zip(recordings, unsupervised.pseudo)}
    latents_by_name = {r.name: z for r, z in zip(recordings, latents)} if latents is not None else {}
    calib_parts, held_parts = [], []
    for rec in labelled:
        c, h = _split(rec, labels[rec.name], pseudo_by_name[rec.name], holdout_fraction,
                      latents_by_name.get(rec.name))
        calib_parts.append(c)
        if h is not None:
            held_parts.append(h)
    if sum(p.energy.shape[0] for p in calib_parts) == 0:
        raise CalibrationError("the labelled recordings leave no step to calibrate on; label longer recordings")

    grid = build_grid(theta_candidates([p.energy for p in calib_parts], space.max_theta), space)
    counts = sweep_counts([p.energy for p in calib_parts], [p.step_labels for p in calib_parts], grid,
                          progress=progress, desc="sweeping vs labels")
    frame_f1 = scores_from_counts(counts)[0].reshape(len(grid.combos), grid.thetas.shape[0])
    per_combo = max(1, top_k // len(grid.combos))
    candidates = []
    for ci in range(len(grid.combos)):
        order = np.argsort(-frame_f1[ci], kind="stable")[:per_combo]
        candidates.extend(grid.row_of(ci, int(ti)) for ti in order)
    # Ties in boundary F1 go to the better frame-wise F1.
    tiebreak = [float(frame_f1.ravel()[row]) for row in candidates]
    best, scores = best_by_boundary_f1([grid.params(row) for row in candidates], calib_parts, tau, tiebreak)
    best_row, best_key = candidates[best], (scores[best], tiebreak[best])
    params = grid.params(best_row)
    combo = best_row // grid.thetas.shape[0]
    curve = [(float(t), _boundary_f1(grid.params(grid.row_of(combo, i)), calib_parts, tau))
             for i, t in enumerate(grid.thetas)]
    split = None
    if latents is not None:
        split = calibrate_split_labelled([p.latents for p in calib_parts], [p.segments for p in calib_parts],
                                         calib_parts[0].fps, params, tau=tau)
        params = split.params
        best_key = (split.score, best_key[1])

    heldout, per_recording = {}, []
    if held_parts:
        heldout = {
            "labelled": _figures(params, held_parts),
            "unsupervised": _figures(unsupervised.params, held_parts),
        }
        for part in held_parts:
            per_recording.append({
                "name": part.name, "heldout_s": part.duration_s,
                "labelled_f1_at_2s": _boundary_f1(params, [part], 2.0),
                "unsupervised_f1_at_2s": _boundary_f1(unsupervised.params, [part], 2.0),
            })
    every = calib_parts + held_parts
    proxy_j = float(scores_from_counts(np.array([[
        sum(int((p.proxy_labels & p.step_labels).sum()) for p in every),
        sum(int((p.proxy_labels & ~p.step_labels).sum()) for p in every),
        sum(int((~p.proxy_labels & p.step_labels).sum()) for p in every),
        sum(int((~p.proxy_labels & ~p.step_labels).sum()) for p in every),
    ]]))[1][0])
    result = LabelledResult(
        tau=tau, holdout_fraction=holdout_fraction,
        calibration_s=sum(p.duration_s for p in calib_parts), heldout_s=sum(p.duration_s for p in held_parts),
        calibration_f1=best_key[0], heldout=heldout, per_recording=per_recording, proxy_vs_labels_j=proxy_j,
        theta_curve=curve, labelled_names=[r.name for r in labelled],
        unlabelled_names=[r.name for r in recordings if r.name not in labels],
        space=space, parameter_sets=grid.size,
    )
    if holdout_fraction > 0 and result.heldout_s < MIN_HELDOUT_S:
        result.warnings.append(
            f"only {result.heldout_s:.0f} s of labelled video are held out, so the held-out F1 rests on few "
            f"boundaries; label more minutes for a figure you can trust"
        )
    # `grid` and `proxy_scores` stay those of the proxy sweep (the report plots them); the
    # labelled sweep's curve for the chosen (r, u, d, alpha) is in `result.theta_curve`.
    return replace(
        unsupervised, params=params, mode="labelled", criterion=f"boundary_f1@{tau:g}s", score=best_key[0],
        labelled=result, unsupervised_params=unsupervised.params, split=split,
        # In labelled mode the thresholds do not rest on the proxy: its weakness is reported, not warned.
        warnings=list(result.warnings),
    )


def search_theta_on(
    energies: Sequence[np.ndarray],
    ground_truth: Sequence[Sequence[tuple[float, float]]],
    fps: float,
    *,
    base: HysteresisParams | None = None,
    tau: float = 2.0,
    n_candidates: int = 64,
) -> tuple[HysteresisParams, dict]:
    """theta_on with the best mean boundary F1@tau on whole labelled recordings, the other
    parameters those of `base` (default the paper's values).

    energies: per recording (T_i,) raw energy per step at `fps`. ground_truth: per recording a
    list of (start_s, end_s) segments. Candidates: `n_candidates` quantiles (2 %..98 %) of the
    pooled energy; a tie goes to the lower theta_on. Returns (params, summary) with summary
    {"theta_on", "f1", "tau", "candidates", "curve": [[theta, f1], ...]}.
    """
    base = base or HysteresisParams(theta_on=0.0)
    pooled = np.concatenate([np.asarray(e, np.float64) for e in energies])
    thetas = [float(t) for t in
              np.unique(np.quantile(pooled[np.isfinite(pooled)], np.linspace(0.02, 0.98, n_candidates)))]
    parts = [_Part(name=str(i), energy=np.asarray(e), proxy_labels=None, step_labels=None,
                   segments=np.asarray([(s, t) for s, t in gt], np.float64).reshape(-1, 2), fps=fps)
             for i, (e, gt) in enumerate(zip(energies, ground_truth))]
    best, scores = best_by_boundary_f1([replace(base, theta_on=t) for t in thetas], parts, tau,
                                       tiebreak=[-t for t in thetas])
    summary = {"theta_on": thetas[best], "f1": scores[best], "tau": tau, "candidates": len(thetas),
               "curve": [[t, f] for t, f in zip(thetas, scores)]}
    return replace(base, theta_on=thetas[best]), summary


def latent_energy(z_q: np.ndarray) -> np.ndarray:
    """(T,) E_t = ||z_q,t - z_q,t-1||_2 per step (E_0 = 0) of (T, D) latents, exactly as the
    kernel computes it."""
    return run_series_latent(np.asarray(z_q, np.float32), HysteresisParams(theta_on=0.0)).energy


def best_by_boundary_f1(candidates: Sequence[HysteresisParams], parts: Sequence[_Part], tau: float,
                        tiebreak: Sequence[float]) -> tuple[int, list[float]]:
    """(index of the best candidate, boundary F1@tau of every candidate) on `parts`: the highest
    F1, then the highest `tiebreak`, then the first."""
    scores = [_boundary_f1(params, parts, tau) for params in candidates]
    best = max(range(len(candidates)), key=lambda i: (scores[i], tiebreak[i]))
    return best, scores


def _split(rec: EnergyRecording, lab: RecordingLabels, pseudo: np.ndarray, fraction: float,
           latents: np.ndarray | None = None):
    n = rec.n_steps
    cut = int(round((1.0 - fraction) * n))
    steps = lab.step_labels(n, rec.fps)
    cut_s = cut / rec.fps

    def part(lo: int, hi: int, t0: float, t1: float) -> _Part:
        segs = lab.segments.copy()
        segs = np.clip(segs, t0, t1) - t0
        segs = segs[segs[:, 1] > segs[:, 0]] if segs.size else segs.reshape(0, 2)
        return _Part(rec.name, rec.energy[lo:hi], pseudo[lo:hi], steps[lo:hi], segs, rec.fps,
                     None if latents is None else latents[lo:hi])

    calib = part(0, cut, 0.0, cut_s)
    held = part(cut, n, cut_s, n / rec.fps) if cut < n else None
    return calib, held


def _boundary_f1(params: HysteresisParams, parts: Sequence[_Part], tau: float) -> float:
    parts = [p for p in parts if p.energy.shape[0] > 0]
    preds = [_segments(params, p) / p.fps for p in parts]
    return evaluation.boundary_f1(preds, [p.segments for p in parts], tau, [p.duration_s for p in parts])


def _segments(params: HysteresisParams, part: _Part) -> np.ndarray:
    """[start, end) steps of the kept segments of one part (on its latents when they exist, so
    the split step runs as on the device)."""
    if part.latents is not None:
        return run_series_latent(part.latents, params).segments
    return run_series(part.energy, params).segments


def _figures(params: HysteresisParams, parts: Sequence[_Part]) -> dict:
    return {"f1_at_2s": _boundary_f1(params, parts, 2.0), "f1_at_5s": _boundary_f1(params, parts, 5.0),
            "seconds": float(sum(p.duration_s for p in parts))}


