"""Does the tokenizer's energy respond to motion on real footage? One row per validation clip.

Data: the VALIDATION clips of the real-footage corpus (data/real_footage/manifest.json, rebuilt
into .cache/real_footage/val/ by scripts/build_real_footage.py; public video of people that no
model here was trained or tuned on). Each clip runs through the device's own pipeline
(`edge.pipeline.build_pipeline`: FileSource resampled by timestamp to the model fps and resized
to its input, Lucas-Kanade on the model's grid, `edge.tokenizer.TokenizerRuntime`, the Numba
kernel with the model directory's calibration.json, the segment assembler), with the per-step
trace `laps-edge run --record-energy` writes: raw energy E_t = ||z_q,t - z_q,t-1|| and the
velocity-energy proxy (mean |v| over visible points, px/step).

Figures per clip (step 0 is left out of the motion figures: it has no displacement and E_0 = 0
by definition):
- motion_steps: steps whose proxy is above MOTION_FLOOR_PX = 0.1 px/step. Why 0.1: on the
  manifest's static reference (an empty room, fixed camera, spans in which nothing moves;
  measured in every run, the "static reference" row) the proxy is tracker and codec noise:
  median 0.025, 90th percentile 0.075, maximum 0.25 px/step, the high ones all on the encoder's
  key frames (one step in ten there). So 0.1 is 4x the static median and above 90 % of static
  steps; STRICT_FLOOR_PX = 0.3, above every static step, gives a second, stricter column.
- zero_energy_frac: fraction of motion steps with E_t exactly 0 (the FSQ code did not change).
- near_zero_energy_frac: fraction of motion steps with E_t < NEAR_ZERO_OF_THETA (5 %) of the
  model's calibrated theta_on — energy that cannot open or hold a segment (exact zeros included);
  near_zero_frac_strict_floor: the same over steps above STRICT_FLOOR_PX.
- in_segments_frac: fraction of the clip's steps inside segments the device emits with the model's
  calibration (segments / median segment length also given).
- pseudo_active_frac: fraction of steps the calibration's Otsu pseudo-labels mark active
  (`calibration.proxy.otsu_split` over the clip's proxy, as `laps-calibrate` would on that clip).
The "all ..." row of each model pools the clips (step-weighted fractions), splits the pooled
proxy once with Otsu and runs the unsupervised calibration over all clips together
(`calibrate_unsupervised`): its Youden's J and warning count say whether calibration notices a
degenerate split.

Models: the shipped model (edge/shipped_models/default) is always the baseline; each --model DIR adds a
model measured in the same run on the same clips. Run:
`python -m benchmarks.real_footage [--model DIR ...] [--split val|train|all] [--clip ID ...]`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, write_results

#: Steps whose LK proxy is above this (px/step) count as "visible motion" (see the module docstring).
MOTION_FLOOR_PX = 0.1
#: A stricter floor above every step of the static reference (px/step).
STRICT_FLOOR_PX = 0.3
#: "Near zero" energy: below this fraction of the model's calibrated theta_on.
NEAR_ZERO_OF_THETA = 0.05


@dataclass
class ClipRun:
    """One clip through one model's device pipeline.

    energy: (T,) raw kernel energy per step. proxy: (T,) px/step. segments: (K, 2) [start, end)
    steps of the emitted segments. theta_on: the calibration's threshold. fps: model fps.
    """

    clip: str
    energy: np.ndarray
    proxy: np.ndarray
    segments: np.ndarray
    theta_on: float
    fps: float
    model_version: str

    @property
    def steps(self) -> int:
        return int(self.energy.shape[0])


def run_clip(path: str | Path, model_dir: str, clip: str = "", providers: str = "cpu") -> ClipRun:
    """Run one video file through the device pipeline of `model_dir` with its calibration."""
    from edge.loop import run_stream
    from edge.pipeline import build_pipeline
    from edge.energy_trace import EnergyTraceRecorder
    from edge.sources.factory import open_source

    pipe = build_pipeline(model_dir=model_dir, tracker="lk", providers=providers, keep_keyframes=False)
    recorder = EnergyTraceRecorder(fps=pipe.fps, model_version=pipe.model_version)
    segments = run_stream(open_source(str(path), fps=pipe.fps, size=pipe.input_size), pipe, [recorder])
    trace = recorder.trace()
    spans = np.asarray([(s.start_frame, s.end_frame) for s in segments], dtype=np.int64).reshape(-1, 2)
    return ClipRun(clip=clip or Path(path).stem, energy=trace.energy, proxy=trace.velocity_energy,
                   segments=spans, theta_on=float(pipe.params.theta_on), fps=float(pipe.fps),
                   model_version=pipe.model_version)


def motion_figures(energy: np.ndarray, proxy: np.ndarray, theta_on: float) -> dict:
    """The motion/energy fractions of one series (or of pooled series), step 0 of each excluded
    by the caller. NaN where there is no motion step to count."""
    near = NEAR_ZERO_OF_THETA * theta_on
    motion = proxy > MOTION_FLOOR_PX
    strict = proxy > STRICT_FLOOR_PX

    def frac(mask: np.ndarray, hit: np.ndarray) -> float:
        return float(np.mean(hit[mask])) if mask.any() else float("nan")

    return {
        "motion_steps": int(motion.sum()),
        "zero_energy_frac": frac(motion, energy == 0.0),
        "near_zero_energy_frac": frac(motion, energy < near),
        "near_zero_frac_strict_floor": frac(strict, energy < near),
    }


def clip_figures(run: ClipRun) -> dict:
    """Every per-clip figure of the table (see the module docstring)."""
    from calibration.proxy import otsu_split

    seg_steps = run.segments[:, 1] - run.segments[:, 0] if run.segments.size else np.zeros(0, np.int64)
    return {
        "steps": run.steps,
        **motion_figures(run.energy[1:], run.proxy[1:], run.theta_on),
        "in_segments_frac": float(seg_steps.sum() / run.steps) if run.steps else float("nan"),
        "pseudo_active_frac": float(otsu_split(run.proxy).active_fraction),
        "segments": int(seg_steps.size),
        "segment_median_s": float(np.median(seg_steps) / run.fps) if seg_steps.size else float("nan"),
        "proxy_median_px_per_step": float(np.median(run.proxy[1:])) if run.steps > 1 else float("nan"),
        "energy_median": float(np.median(run.energy[1:])) if run.steps > 1 else float("nan"),
        "theta_on": run.theta_on,
    }


def pooled_figures(runs: list[ClipRun]) -> dict:
    """The "all clips" figures of one model: step-weighted, one Otsu split and one unsupervised
    calibration over every clip (as `laps-calibrate` run on all of them would do)."""
    from calibration.proxy import otsu_split
    from calibration.recordings import EnergyRecording
    from calibration.unsupervised import calibrate_unsupervised

    energy = np.concatenate([r.energy[1:] for r in runs])
    proxy = np.concatenate([r.proxy[1:] for r in runs])
    steps = sum(r.steps for r in runs)
    seg_steps = np.concatenate([r.segments[:, 1] - r.segments[:, 0] for r in runs if r.segments.size] or
                               [np.zeros(0, np.int64)])
    recordings = [EnergyRecording(name=r.clip, source=r.clip, energy=r.energy, proxy=r.proxy, fps=r.fps,
                                  model_version=r.model_version, kind="video") for r in runs]
    cal = calibrate_unsupervised(recordings)
    return {
        "steps": steps,
        **motion_figures(energy, proxy, runs[0].theta_on),
        "in_segments_frac": float(seg_steps.sum() / steps),
        "pseudo_active_frac": float(otsu_split(np.concatenate([r.proxy for r in runs])).active_fraction),
        "segments": int(seg_steps.size),
        "segment_median_s": float(np.median(seg_steps) / runs[0].fps) if seg_steps.size else float("nan"),
        "proxy_median_px_per_step": float(np.median(proxy)),
        "energy_median": float(np.median(energy)),
        "theta_on": runs[0].theta_on,
        "calibration_youden_j": float(cal.quality.youden_j),
        "calibration_warnings": len(cal.warnings),
    }


def static_reference(path: str | Path, spans_s: list, model_dir: str, providers: str = "cpu") -> dict:
    """LK proxy statistics (px/step) over the spans of a clip in which nothing moves."""
    run = run_clip(path, model_dir, providers=providers)
    t = np.arange(run.steps) / run.fps
    mask = np.zeros(run.steps, bool)
    for a, b in spans_s:
        mask |= (t >= float(a)) & (t < float(b))
    mask[0] = False
    v = run.proxy[mask]
    p50, p90, p95, p99 = np.percentile(v, [50, 90, 95, 99])
    return {
        "static_steps": int(v.size), "proxy_p50_px": float(p50), "proxy_p90_px": float(p90),
        "proxy_p95_px": float(p95), "proxy_p99_px": float(p99), "proxy_max_px": float(v.max()),
        "frac_above_floor": float(np.mean(v > MOTION_FLOOR_PX)),
        "frac_above_strict_floor": float(np.mean(v > STRICT_FLOOR_PX)),
    }


def model_label(model_dir: str, baseline: bool) -> str:
    from edge.model import load_model_directory

    version = load_model_directory(model_dir).metadata.model_version
    return f"shipped {version} (baseline)" if baseline else f"{Path(model_dir).name} {version}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="DIR",
                        help="a model directory to measure next to the shipped baseline (repeatable)")
    parser.add_argument("--split", choices=("val", "train", "all"), default="val",
                        help="which part of the corpus (default: val; train clips were seen by training)")
    parser.add_argument("--clip", action="append", default=[], metavar="ID", help="only these clips (repeatable)")
    parser.add_argument("--corpus", default=None, help="corpus directory (default: .cache/real_footage)")
    parser.add_argument("--manifest", default=None, help="manifest (default: data/real_footage/manifest.json)")
    parser.add_argument("--providers", default="cpu", help="ONNX Runtime providers (default: %(default)s)")
    args = parser.parse_args(argv)

    from edge.errors import LapsError

    try:
        return _run(args)
    except LapsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from tqdm import tqdm

    from edge.errors import ConfigError
    from edge.model import shipped_model_dir
    from export.real_footage import SPLITS, built_clip_files, clip_file, corpus_root, load_manifest

    manifest = load_manifest(args.manifest)
    root = Path(args.corpus) if args.corpus else corpus_root()
    splits = SPLITS if args.split == "all" else (args.split,)
    clips = [item for s in splits for item in built_clip_files(manifest, s, root)]
    if args.clip:
        wanted = [manifest.clip(c).id for c in args.clip]
        clips = [item for item in clips if item[0].id in wanted]
        if not clips:
            raise ConfigError(f"none of the clips {', '.join(args.clip)} is in split {args.split}; pass --split all")
    shipped = shipped_model_dir()
    if shipped is None:
        raise ConfigError("this installation ships no default model, so there is no baseline; reinstall the package")
    models = [(str(shipped), True)] + [(m, False) for m in args.model if Path(m).resolve() != shipped.resolve()]

    rows, pooled = [], []
    for model_dir, baseline in models:
        label = model_label(model_dir, baseline)
        runs = []
        for clip, path in tqdm(clips, desc=label, unit="clip", file=sys.stderr):
            run = run_clip(path, model_dir, clip=clip.id, providers=args.providers)
            runs.append(run)
            rows.append({"name": f"{label} | {clip.id}", "model": label, "clip": clip.id,
                         "content": clip.content, **clip_figures(run)})
        pooled.append({"name": f"{label} | all {len(runs)} {args.split} clips", "model": label,
                       "clip": "all", **pooled_figures(runs)})

    static = None
    ref = manifest.static_reference
    if ref is not None:
        ref_clip = manifest.clip(ref["clip"])
        ref_path = clip_file(ref_clip, root)
        if ref_path.is_file():
            static = {"name": f"static reference: {ref_clip.id} {ref['spans_s']} s", "clip": ref_clip.id,
                      **static_reference(ref_path, ref["spans_s"], models[0][0], args.providers)}
        else:
            print(f"note: static reference {ref_clip.id} is not built ({ref_path}); its row is left out",
                  file=sys.stderr)

    columns = ("name", "steps", "motion_steps", "zero_energy_frac", "near_zero_energy_frac",
               "near_zero_frac_strict_floor", "in_segments_frac", "pseudo_active_frac", "segments",
               "segment_median_s", "proxy_median_px_per_step")
    print_table([{k: r.get(k) for k in columns} for r in rows],
                title=f"Real footage, {args.split} clips: motion steps (LK proxy > {MOTION_FLOOR_PX} px/step) "
                      f"with zero / near-zero (< {NEAR_ZERO_OF_THETA:.0%} theta_on) tokenizer energy")
    print_table([{k: r.get(k) for k in (*columns, "calibration_youden_j", "calibration_warnings")} for r in pooled],
                title="All clips pooled, per model (the shipped model is the baseline)")
    if static is not None:
        print_table([static], title="LK proxy on static footage (why the motion floor is "
                                    f"{MOTION_FLOOR_PX} px/step; strict floor {STRICT_FLOOR_PX})")
    write_results("real_footage", rows + pooled + ([static] if static else []), extra={
        "split": args.split, "clips": [c.id for c, _ in clips], "models": [m for m, _ in models],
        "motion_floor_px_per_step": MOTION_FLOOR_PX, "strict_floor_px_per_step": STRICT_FLOOR_PX,
        "near_zero_fraction_of_theta_on": NEAR_ZERO_OF_THETA, "manifest": str(manifest.path),
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
