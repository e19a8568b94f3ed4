"""Segmentation accuracy on held-out synthetic workstation videos: every method, one table.

Data: generated workstation videos, all nuisances on, 2 minutes each, tracked with the device's
own Lucas-Kanade tracker at the model conventions (10 fps, 320x240, 20x20 grid). Tracks are
cached under `.cache/tracks` (the training-data cache), so re-runs only re-score.

Seeds (project-wide policy): thresholds and the periodic baseline's period are chosen on the
VALIDATION seeds 500-504; every figure in the table is measured on the HELD-OUT seeds 900-909,
which no training or tuning step ever saw.

Methods:
- periodic: back-to-back segments of a fixed period = the mean ground-truth segment length of
  the validation set (it never looks at the video; every method must beat it).
- velocity energy: mean |v| over visible points per step (the paper's calibration proxy).
- LAPS tokenizer energy: ||z_q,t - z_q,t-1|| from the newest token of the causal window
  (the default shipped model), through the same Numba kernel as the device.
- LAPS window-mean: the paper code's variant (mean adjacent-token difference per window,
  every `stride` frames).

Figures: boundary F1@2s and F1@5s (LAPS_METHOD.md section 6, mean over videos), class-agnostic
segmental F1@{10,25,50} and edit score (MS-TCN conventions, one label for every segment), and
the number of predicted vs true segments. Run: `python -m benchmarks.segmentation`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, write_results

VALIDATION_SEEDS = tuple(range(500, 505))
HELD_OUT_SEEDS = tuple(range(900, 910))
MINUTES = 2.0


@dataclass
class Video:
    seed: int
    velocity: np.ndarray   # (F, N, 2) px/step
    valid: np.ndarray      # (F, N) bool
    fps: float
    gt: np.ndarray         # (K, 2) seconds

    @property
    def duration(self) -> float:
        return self.velocity.shape[0] / self.fps


def load_videos(seeds, minutes: float, progress: bool = True) -> list[Video]:
    """Track (or read from the cache) each synthetic seed; ground truth from the generator."""
    from tqdm import tqdm

    from edge.synthetic import SyntheticWorkstation
    from export.tokenizer.dataset import cached_tracks, synthetic_spec
    from export.tokenizer.windows import DataConventions

    conv = DataConventions()
    videos = []
    for seed in tqdm(seeds, desc="videos", disable=not progress, file=sys.stderr):
        record, _ = cached_tracks(synthetic_spec(seed, minutes, "all"), conv, tracker="lk", progress=progress)
        gt = SyntheticWorkstation(seed=seed, minutes=minutes).ground_truth
        spans = np.asarray([(s, e) for s, e, _ in gt.segments], np.float64).reshape(-1, 2)
        videos.append(Video(seed, record.velocity, record.valid, record.fps, spans))
    return videos


# --- per-method energy series ----------------------------------------------------------------

def velocity_energies(videos: list[Video]) -> list[np.ndarray]:
    from edge.pipeline import velocity_energy

    return [np.array([velocity_energy(v.velocity[t], v.valid[t]) for t in range(v.velocity.shape[0])])
            for v in videos]


def tokenizer_energies(videos: list[Video], model_dir: str, mode: str) -> list[np.ndarray]:
    """Per-frame kernel input from the device's own TokenizerRuntime.

    newest: E_t = ||z_q,t - z_q,t-1|| (what `latent_step` computes); window_mean: the runtime's
    scalar energy, held between strides (what the pipeline feeds `energy_step`).
    """
    from edge.model import load_model_directory
    from edge.tokenizer import TokenizerRuntime

    model = load_model_directory(model_dir)
    out = []
    for v in videos:
        rt = TokenizerRuntime(model, providers="cpu", energy_mode=mode)
        series, prev, last = [], None, 0.0
        for t in range(v.velocity.shape[0]):
            step = rt.step(v.velocity[t], v.valid[t])
            if mode == "newest":
                z = np.asarray(step.z_q, np.float64)
                series.append(0.0 if prev is None else float(np.linalg.norm(z - prev)))
                prev = z
            else:
                if step.energy is not None:
                    last = float(step.energy)
                series.append(last)
        out.append(np.asarray(series))
    return out


# --- scoring -----------------------------------------------------------------------------------

def periodic_segments(duration: float, period: float) -> np.ndarray:
    starts = np.arange(0.0, duration, period)
    return np.stack([starts, np.minimum(starts + period, duration)], axis=1)


def score(preds: list[np.ndarray], videos: list[Video]) -> dict:
    """The shared scorer (`benchmarks.scoring`) against the generator's ground truth."""
    from benchmarks.scoring import segmentation_scores

    return segmentation_scores(preds, [v.gt for v in videos], [v.duration for v in videos])


def tuned_rows(name: str, val_e, val_videos, test_e, test_videos, base) -> dict:
    """Choose theta_on on validation energies, then score the held-out energies with it."""
    from edge.energy import run_series
    from export.tokenizer.threshold_search import search_theta_on

    fps = val_videos[0].fps
    params, summary = search_theta_on(val_e, [v.gt for v in val_videos], fps, base=base)
    preds = [run_series(e, params).segments / fps for e in test_e]
    row = {"name": name, **score(preds, test_videos), "theta_on": params.theta_on,
           "val_f1_at_2s": summary["f1"]}
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="tokenizer model directory (default: the shipped one); 'none' = baselines only")
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--held-out", type=int, default=len(HELD_OUT_SEEDS), help="number of held-out videos")
    args = parser.parse_args(argv)

    from edge.energy import HysteresisParams

    val = load_videos(VALIDATION_SEEDS, args.minutes)
    test = load_videos(HELD_OUT_SEEDS[: args.held_out], args.minutes)
    base = HysteresisParams(theta_on=0.0)

    period = float(np.mean(np.concatenate([v.gt[:, 1] - v.gt[:, 0] for v in val])))
    rows = [{"name": "periodic", **score([periodic_segments(v.duration, period) for v in test], test),
             "period_s": period}]
    rows.append(tuned_rows("velocity energy", velocity_energies(val), val, velocity_energies(test), test, base))

    model_dir = None if args.model == "none" else args.model
    if args.model is None:
        default = Path(__file__).resolve().parent.parent / "edge" / "models" / "default"
        model_dir = str(default) if (default / "manifest.json").is_file() else None
    if model_dir is not None:
        for mode, name in (("newest", "LAPS tokenizer energy"), ("window_mean", "LAPS window-mean")):
            rows.append(tuned_rows(name, tokenizer_energies(val, model_dir, mode), val,
                                   tokenizer_energies(test, model_dir, mode), test, base))
    else:
        print("no tokenizer model found: LAPS rows skipped", file=sys.stderr)

    periodic_f1 = rows[0]["f1_at_2s"]
    for row in rows:
        row["f1_at_2s_vs_periodic"] = row["f1_at_2s"] - periodic_f1
    print_table(rows, title=f"Segmentation on held-out seeds {test[0].seed}-{test[-1].seed} "
                            f"({len(test)} x {args.minutes:g} min, nuisances on); thresholds from "
                            f"validation seeds {VALIDATION_SEEDS[0]}-{VALIDATION_SEEDS[-1]}")
    write_results("segmentation", rows, extra={
        "held_out_seeds": [v.seed for v in test], "validation_seeds": list(VALIDATION_SEEDS),
        "minutes_per_video": args.minutes, "model": model_dir,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
