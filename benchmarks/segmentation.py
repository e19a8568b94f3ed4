"""Segmentation accuracy on held-out synthetic workstation videos: every method, one table per variant.

Data: generated workstation videos, all nuisances on, 2 minutes each, tracked with the device's
own Lucas-Kanade tracker at the model conventions (10 fps, 320x240, 20x20 grid). Two variants of
the generator: "default" (about half the transitions between primitives are rests) and "fluent"
(rest fraction 0.15: a practised worker, mostly direct transitions, where energy + hysteresis
alone finds few boundaries). Tracks are cached under `.cache/tracks`, so re-runs only re-score.

Seeds (project-wide policy): thresholds and the periodic baseline's period are chosen on the
VALIDATION seeds 500-504 of the same variant; every figure in the table is measured on the
HELD-OUT seeds 950-959, which no training or tuning step ever saw (900-949 are retired).

Methods:
- periodic: back-to-back segments of a fixed period = the mean ground-truth segment length of
  the validation set (it never looks at the video; every method must beat it).
- velocity energy: mean |v| over visible points per step (the paper's calibration proxy),
  hysteresis with theta_on chosen on the validation labels.
- LAPS tokenizer energy: ||z_q,t - z_q,t-1|| from the newest token of the causal window (the
  model under test), the paper's kernel (no split), theta_on chosen on the validation labels.
- LAPS + split (labels): the same energy with the within-activity split step; theta_on, then the
  split window and threshold chosen on the validation labels (`calibration.split`).
- LAPS + split (unsupervised): theta_on from the velocity proxy's Otsu pseudo-labels and the
  split threshold from Otsu on the change-score peaks, both on the validation recordings without
  their labels (what `laps-calibrate run` does on a site's own recordings).
- LAPS window-mean (default variant): the paper code's energy variant, for comparison.

Figures: boundary F1@2s and F1@5s (mean over videos), class-agnostic segmental F1@{10,25,50}
and edit score (MS-TCN conventions), predicted vs true segments, median segment duration.
Run: `python -m benchmarks.segmentation [--model DIR] [--variants default,fluent]`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, write_results
from calibration.labelled import latent_energy  # z_q are float32 here: the same series

VALIDATION_SEEDS = tuple(range(500, 505))
HELD_OUT_SEEDS = tuple(range(950, 960))
MINUTES = 2.0
#: Generator variants: name -> rest fraction (probability of a rest between two primitives).
VARIANTS = {"default": 0.5, "fluent": 0.15}


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


def variant_spec(seed: int, minutes: float, rest_fraction: float) -> str:
    """The synthetic source spec of one recording of a generator variant."""
    from export.tokenizer.dataset import synthetic_spec

    spec = synthetic_spec(seed, minutes, "all")
    return spec if rest_fraction == VARIANTS["default"] else f"{spec}&rests={rest_fraction:g}"


def load_videos(seeds, minutes: float, progress: bool = True, rest_fraction: float = VARIANTS["default"]) -> list[Video]:
    """Track (or read from the cache) each synthetic seed; ground truth from the generator."""
    from tqdm import tqdm

    from edge.synthetic import SyntheticWorkstation
    from export.tokenizer.dataset import cached_tracks
    from export.tokenizer.windows import DataConventions

    conv = DataConventions()
    videos = []
    for seed in tqdm(seeds, desc="videos", disable=not progress, file=sys.stderr):
        record, _ = cached_tracks(variant_spec(seed, minutes, rest_fraction), conv, tracker="lk", progress=progress)
        gt = SyntheticWorkstation(seed=seed, minutes=minutes, rest_fraction=rest_fraction).ground_truth
        spans = np.asarray([(s, e) for s, e, _ in gt.segments], np.float64).reshape(-1, 2)
        videos.append(Video(seed, record.velocity, record.valid, record.fps, spans))
    return videos


# --- per-method series ------------------------------------------------------------------------

def velocity_energies(videos: list[Video]) -> list[np.ndarray]:
    from edge.pipeline import velocity_energy

    return [np.array([velocity_energy(v.velocity[t], v.valid[t]) for t in range(v.velocity.shape[0])])
            for v in videos]


def tokenizer_latents(videos: list[Video], model_dir: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per video (z_q (T, D) of the newest token, FSQ codes (T,)) from the device's own
    TokenizerRuntime: exactly what the pipeline feeds `latent_step`."""
    from edge.model import load_model_directory
    from edge.tokenizer import TokenizerRuntime

    model = load_model_directory(model_dir)
    out = []
    for v in videos:
        rt = TokenizerRuntime(model, providers="cpu", energy_mode="newest")
        steps = [rt.step(v.velocity[t], v.valid[t]) for t in range(v.velocity.shape[0])]
        out.append((np.stack([np.asarray(s.z_q, np.float32) for s in steps]),
                    np.array([s.code for s in steps], np.int64)))
    return out


def window_mean_energies(videos: list[Video], model_dir: str) -> list[np.ndarray]:
    """The paper code's energy (mean adjacent-token difference per window), held between strides."""
    from edge.model import load_model_directory
    from edge.tokenizer import TokenizerRuntime

    model = load_model_directory(model_dir)
    out = []
    for v in videos:
        rt = TokenizerRuntime(model, providers="cpu", energy_mode="window_mean")
        series, last = [], 0.0
        for t in range(v.velocity.shape[0]):
            step = rt.step(v.velocity[t], v.valid[t])
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


def theta_by_labels(val_e, val_videos, base):
    """theta_on with the best validation F1@2s (the other parameters at the paper's values)."""
    from calibration.labelled import search_theta_on

    fps = val_videos[0].fps
    return search_theta_on(val_e, [v.gt for v in val_videos], fps, base=base)


def energy_row(name: str, val_e, val_videos, test_e, test_videos, base) -> dict:
    """Choose theta_on on validation energies, then score the held-out energies with it."""
    from edge.energy import run_series

    fps = val_videos[0].fps
    params, summary = theta_by_labels(val_e, val_videos, base)
    preds = [run_series(e, params).segments / fps for e in test_e]
    return {"name": name, **score(preds, test_videos), "theta_on": params.theta_on,
            "val_f1_at_2s": summary["f1"]}


def split_rows(val_lat, val_videos, val_proxies, test_lat, test_videos, model_version: str) -> list[dict]:
    """LAPS + split: parameters by the validation labels, and by the unsupervised calibration
    (pseudo-labels from `val_proxies`, the validation videos' velocity energies)."""
    from calibration.recordings import EnergyRecording
    from calibration.split import calibrate_split_labelled, calibrate_split_unsupervised
    from calibration.unsupervised import calibrate_unsupervised
    from edge.energy import HysteresisParams, run_series_latent

    fps = val_videos[0].fps
    val_z = [z for z, _ in val_lat]
    test_z = [z for z, _ in test_lat]
    rows = []

    base, _ = theta_by_labels([latent_energy(z) for z in val_z], val_videos, HysteresisParams(theta_on=0.0))
    lab = calibrate_split_labelled(val_z, [v.gt for v in val_videos], fps, base)
    preds = [run_series_latent(z, lab.params).segments / fps for z in test_z]
    rows.append({"name": "LAPS + split (labels)", **score(preds, test_videos), **_split_figures(lab.params),
                 "val_f1_at_2s": lab.score})

    recs = [EnergyRecording(name=str(v.seed), source=str(v.seed), energy=latent_energy(z), proxy=prx,
                            fps=fps, model_version=model_version, kind="tracks", codes=codes)
            for v, (z, codes), prx in zip(val_videos, val_lat, val_proxies)]
    unsup = calibrate_unsupervised(recs)
    split = calibrate_split_unsupervised(val_z, unsup.params, fps)
    preds = [run_series_latent(z, split.params).segments / fps for z in test_z]
    rows.append({"name": "LAPS + split (unsupervised)", **score(preds, test_videos),
                 **_split_figures(split.params), "peak_separability": split.separability})
    return rows


def _split_figures(p) -> dict:
    return {"theta_on": p.theta_on, "split_window": p.split_window, "split_theta": p.split_theta,
            "split_min_steps": p.split_min_steps}


def run_variant(variant: str, model_dir: str | None, minutes: float, n_held_out: int) -> list[dict]:
    from edge.energy import HysteresisParams
    from edge.model import load_model_directory

    rest = VARIANTS[variant]
    val = load_videos(VALIDATION_SEEDS, minutes, rest_fraction=rest)
    test = load_videos(HELD_OUT_SEEDS[:n_held_out], minutes, rest_fraction=rest)
    base = HysteresisParams(theta_on=0.0)

    period = float(np.mean(np.concatenate([v.gt[:, 1] - v.gt[:, 0] for v in val])))
    rows = [{"name": "periodic", **score([periodic_segments(v.duration, period) for v in test], test),
             "period_s": period}]
    val_vel = velocity_energies(val)
    rows.append(energy_row("velocity energy", val_vel, val, velocity_energies(test), test, base))
    if model_dir is not None:
        val_lat = tokenizer_latents(val, model_dir)
        test_lat = tokenizer_latents(test, model_dir)
        rows.append(energy_row("LAPS tokenizer energy", [latent_energy(z) for z, _ in val_lat], val,
                               [latent_energy(z) for z, _ in test_lat], test, base))
        version = load_model_directory(model_dir).metadata.model_version
        rows.extend(split_rows(val_lat, val, val_vel, test_lat, test, version))
        if variant == "default":
            rows.append(energy_row("LAPS window-mean (paper code)", window_mean_energies(val, model_dir), val,
                                   window_mean_energies(test, model_dir), test, base))
    for row in rows:
        row["variant"] = variant
        row["f1_at_2s_vs_periodic"] = row["f1_at_2s"] - rows[0]["f1_at_2s"]
        row["f1_at_2s_vs_velocity"] = row["f1_at_2s"] - rows[1]["f1_at_2s"]
        row["seg_f1_at_50_vs_periodic"] = row["seg_f1_at_50"] - rows[0]["seg_f1_at_50"]
        row["seg_f1_at_50_vs_velocity"] = row["seg_f1_at_50"] - rows[1]["seg_f1_at_50"]
    print_table(rows, title=f"Segmentation, {variant} generator (rest fraction {rest:g}), held-out seeds "
                            f"{test[0].seed}-{test[-1].seed} ({len(test)} x {minutes:g} min, nuisances on); "
                            f"parameters from validation seeds {VALIDATION_SEEDS[0]}-{VALIDATION_SEEDS[-1]}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None,
                        help="tokenizer model directory (default: the shipped one); 'none' = baselines only")
    parser.add_argument("--minutes", type=float, default=MINUTES)
    parser.add_argument("--held-out", type=int, default=len(HELD_OUT_SEEDS), help="number of held-out videos")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma list of generator variants ({', '.join(VARIANTS)})")
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant {unknown[0]!r}; use {', '.join(VARIANTS)}")

    model_dir = None if args.model == "none" else args.model
    if args.model is None:
        default = Path(__file__).resolve().parent.parent / "edge" / "shipped_models" / "default"
        model_dir = str(default) if (default / "manifest.json").is_file() else None
    if model_dir is None:
        print("no tokenizer model: LAPS rows skipped", file=sys.stderr)
    rows = []
    for variant in variants:
        rows.extend(run_variant(variant, model_dir, args.minutes, args.held_out))
    write_results("segmentation", rows, extra={
        "held_out_seeds": list(HELD_OUT_SEEDS[: args.held_out]), "validation_seeds": list(VALIDATION_SEEDS),
        "minutes_per_video": args.minutes, "model": model_dir, "variants": {v: VARIANTS[v] for v in variants},
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
