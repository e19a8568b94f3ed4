"""Tracker accuracy on synthetic recordings against exact trajectories, per hard subset.

One procedure for `benchmarks/tracking.py` (HELD-OUT seeds) and `laps-export tracker-keep-rule`
(VALIDATION seeds), so the keep rule is chosen on the same figures the benchmark reports.

Each recording (320x240, 10 fps) is cut into 16-frame windows; at each window start every tracker
is reset (grid seeded), then run 15 steps. A point counts while the tracker has kept it (never
re-seeded since the window start) and the scene shows it. Subsets are sets of point-windows:
  - overall: all nuisances on;
  - fast motion: all nuisances; the exact speed exceeds FAST_PX px/step at some step of the window;
  - low texture: all nuisances; the point's gradient energy (mean squared Sobel magnitude in a
    9x9 patch at the seed frame) is in the lowest quartile of all seeded points;
  - blur: the same recordings rendered with motion blur as the ONLY nuisance; points whose exact
    speed reaches BLUR_PX px/step in the window (those are smeared);
  - flicker: rendered with flicker as the ONLY nuisance; every point.
(Motion is independent of the nuisance switches: same seed, same trajectories.)
"""

from __future__ import annotations

import sys
from typing import Iterable

import cv2
import numpy as np

SIZE = (320, 240)
FPS = 10.0
WINDOW = 16
GRID = 20
FAST_PX = 4.0
BLUR_PX = 2.0
#: the recordings each seed is rendered as (key, nuisances)
RENDERINGS = (("all", "all"), ("blur", "blur"), ("flicker", "flicker"))


def synthetic_frames(seed: int, minutes: float, nuisances: str) -> tuple[object, np.ndarray, list[np.ndarray]]:
    """The workstation, its 30 fps indices of the model frames, and those frames (grey, 320x240)."""
    from edge.synthetic.nuisances import Nuisances
    from edge.synthetic.workstation import SyntheticWorkstation
    from edge.tracking.lk import to_grey

    ws = SyntheticWorkstation(seed=seed, minutes=minutes, fps=30.0, size=SIZE, nuisances=Nuisances.parse(nuisances))
    idx = np.arange(0, ws.n_frames, 3)
    return ws, idx, [to_grey(ws.render(int(i))) for i in idx]


def gradient_energy(grey: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Mean squared Sobel magnitude in a 9x9 patch around each point (texture measure), (N,)."""
    g = grey.astype(np.float32)
    mag = cv2.Sobel(g, cv2.CV_32F, 1, 0) ** 2 + cv2.Sobel(g, cv2.CV_32F, 0, 1) ** 2
    box = cv2.blur(mag, (9, 9))
    xi = np.clip(np.round(points[:, 0]).astype(int), 0, grey.shape[1] - 1)
    yi = np.clip(np.round(points[:, 1]).astype(int), 0, grey.shape[0] - 1)
    return box[yi, xi]


def run_windows(trackers: dict, ws, idx: np.ndarray, frames: list[np.ndarray]) -> dict:
    """Per 16-frame window, per tracker: errors (W, 15, N) px and kept (W, 15, N); for a student
    also its per-step visibility logit, match residual and motion (px it moved the point this
    step) (W, 15, N) ("logit", "residual", "motion"); plus
    ground truth: gt_vis (W, 15, N), speed (W, 15, N) px/step, texture (W, N)."""
    from edge.tracking.base import grid_points

    grid = grid_points(SIZE[0], SIZE[1], GRID)
    out = {name: {"err": [], "kept": []} for name in trackers}
    gt_vis, speed, texture = [], [], []
    for s in range(0, len(frames) - WINDOW + 1, WINDOW):
        pos, vis = ws.trajectories(grid, int(idx[s]), idx[s:s + WINDOW])
        vis = np.logical_and.accumulate(vis, axis=0)
        gt_vis.append(vis[1:])
        speed.append(np.linalg.norm(np.diff(pos, axis=0), axis=-1))
        texture.append(gradient_energy(frames[s], grid))
        for name, trk in trackers.items():
            trk.reset()
            trk.step(frames[s])
            kept = np.ones(len(grid), bool)
            rec: dict[str, list] = {"err": [], "kept": [], "logit": [], "residual": [], "motion": []}
            for t in range(1, WINDOW):
                step = trk.step(frames[s + t])
                kept &= step.visible
                rec["err"].append(np.linalg.norm(step.points - pos[t], axis=1))
                rec["kept"].append(kept.copy())
                if hasattr(trk, "last_visibility_logit"):  # the student: what its keep rule reads
                    rec["logit"].append(trk.last_visibility_logit.copy())
                    rec["residual"].append(trk.last_match_residual.copy())
                    rec["motion"].append(np.linalg.norm(step.velocity, axis=1))
            for k, v in rec.items():
                if v:
                    out[name].setdefault(k, []).append(np.stack(v))
    res = {name: {k: np.stack(v) for k, v in d.items()} for name, d in out.items()}
    res["gt_vis"], res["speed"], res["texture"] = np.stack(gt_vis), np.stack(speed), np.stack(texture)
    return res


def synthetic_runs(trackers: dict, seeds: Iterable[int], minutes: float, desc: str = "synthetic accuracy",
                   progress: bool = True) -> dict:
    """`run_windows` over every seed and rendering, concatenated over windows: {key: result}."""
    from tqdm import tqdm

    runs: dict[str, list] = {key: [] for key, _ in RENDERINGS}
    for seed in tqdm(list(seeds), desc=desc, file=sys.stderr, disable=not progress):
        for key, nuisances in RENDERINGS:
            ws, idx, frames = synthetic_frames(seed, minutes, nuisances)
            runs[key].append(run_windows(trackers, ws, idx, frames))
    return {key: {name: {f: np.concatenate([r[name][f] for r in v]) for f in v[0][name]} for name in trackers}
            | {f: np.concatenate([r[f] for r in v]) for f in ("gt_vis", "speed", "texture")}
            for key, v in runs.items()}


def subsets(merged: dict) -> list[tuple[str, str, np.ndarray]]:
    """(label, rendering key, selected point-windows (W, N) bool) of every reported row."""
    a = merged["all"]
    low_tex = a["texture"] <= np.percentile(a["texture"], 25)
    return [
        ("overall", "all", np.ones_like(low_tex)),
        (f"fast motion (>{FAST_PX:g} px/step)", "all", a["speed"].max(axis=1) > FAST_PX),
        ("low texture (lowest quartile)", "all", low_tex),
        (f"blur only (>={BLUR_PX:g} px/step)", "blur", merged["blur"]["speed"].max(axis=1) >= BLUR_PX),
        ("flicker only", "flicker", np.ones_like(merged["flicker"]["texture"], dtype=bool)),
    ]


def accuracy_figures(err: np.ndarray, kept: np.ndarray, gt_vis: np.ndarray, select: np.ndarray) -> dict:
    """Figures over the selected point-windows `select` (W, N): end-point error median / p90 (px)
    and share within 1 / 2 / 4 px over kept point-steps; `kept` (share of scene-visible point-steps
    still held) and `survival_16` (share of points visible for the whole window held all 15 steps)."""
    sel = select[:, None, :] & gt_vis
    measured = sel & kept
    e = err[measured]
    whole = select & gt_vis[:, -1]  # visible in the scene for the whole window
    return {
        "epe_median_px": float(np.median(e)) if e.size else float("nan"),
        "epe_p90_px": float(np.percentile(e, 90)) if e.size else float("nan"),
        "within_1px": float(np.mean(e < 1)) if e.size else float("nan"),
        "within_2px": float(np.mean(e < 2)) if e.size else float("nan"),
        "within_4px": float(np.mean(e < 4)) if e.size else float("nan"),
        "kept": float(measured.sum() / max(1, sel.sum())),
        "survival_16": float(kept[:, -1][whole].mean()) if whole.any() else float("nan"),
        "point_steps": int(sel.sum()),
    }
