"""`laps-export onnx`: export a trained tokenizer into a model directory, or add a distilled tracker to one."""

from __future__ import annotations

import argparse

EPILOG = """\
Writes OUT/manifest.json, OUT/tokenizer.onnx, OUT/calibration.json and OUT/golden/golden.npz.
The ONNX graph ends at the pre-quantisation latent (FSQ rounding and its output projection run
in NumPy on the device, with the weights embedded in the metadata); shapes are fixed and the
opset is 17.

Thresholds (calibration.json) come from --calibration FILE, or are searched on LABELLED
synthetic validation recordings with --calibrate-seeds (VALIDATION seeds 500-599 only).

Example (the default model):
  laps-export onnx --checkpoint .cache/tokenizer-small/best.pt --out edge/shipped_models/default \\
      --model-version small-2026.11-1 --calibrate-seeds 500-503 --overwrite

A tracker checkpoint (from `laps-export distill-tracker`; detected, or --kind tracker) is exported
as OUT/tracker.onnx (one tracker step, fixed shapes, opset 17, metadata under laps.tracker) into
the existing model directory OUT, using its tokenizer's grid, input size and fps; the manifest
is re-written with --bundle-version (default: the current version + 1) and the tokenizer's
files are left untouched. Without a model directory at OUT, OUT/tracker.onnx is written alone
(20x20 grid, the checkpoint's input size and fps). Check it with `laps-export verify
--model-dir OUT --tracker-checkpoint CKPT`.
  laps-export onnx --checkpoint .cache/tracker-default/best.pt --out edge/shipped_models/default \\
      --model-version student-synth-2026.11-1 --bundle-version 2
"""


#: Flags that apply to a tracker checkpoint only (flag, type, metavar, help); default None = the
#: checkpoint's setting (sub-pixel stage) or the shipped keep rule (thresholds).
TRACKER_FLAGS = (
    ("--subpixel-iterations", int, "N",
     "iterations of its weight-free sub-pixel stage (default: the checkpoint's)"),
    ("--subpixel-radius", int, "R",
     "half-width of the sub-pixel stage's patch, (2R+1)^2 px (default: the checkpoint's)"),
    ("--subpixel-blur", float, "SIGMA",
     "Gaussian blur (px) of the frame the sub-pixel stage matches, 0 = none (default: the checkpoint's)"),
    ("--subpixel-moving-radius", int, "R",
     "half-width of the sub-pixel stage's second window, for points moving faster than --subpixel-moving-px "
     "per step, 0 = none (default: the checkpoint's)"),
    ("--subpixel-moving-px", float, "PX",
     "speed (px per model step) above which a point uses the second window (default: the checkpoint's)"),
    ("--subpixel-anchor-iterations", int, "N",
     "Gauss-Newton steps of the sub-pixel stage's drift correction, which matches each point's patch from the "
     "frame it was seeded on after the frame-to-frame match; 0 = none (default: the checkpoint's, 0; the "
     "shipped tracker uses 1)"),
    ("--subpixel-anchor-px", float, "PX",
     "largest move the drift correction may make; a larger one means the seed patch no longer looks like the "
     "point and the frame-to-frame result stands (default: the checkpoint's, 1.0)"),
    ("--fine-iterations", int, "N",
     "refinement passes at stride 1 after the coarse-to-fine sweep, at most the checkpoint's: the trailing ones "
     "are dropped, no retraining (default: the checkpoint's)"),
    ("--finest-stride", int, "S",
     "finest pyramid stride the network's passes use, one of the checkpoint's strides: finer passes, their "
     "feature maps and templates are dropped and the sub-pixel stage refines from there, no retraining "
     "(default: the checkpoint's, 1)"),
    ("--visibility-threshold", float, "LOGIT",
     "a point stays visible while the student's visibility logit is >= this (default 1.0, chosen on validation "
     "seeds for all the trained passes; 0 = probability 0.5; the shipped tracker, --finest-stride 2, uses -3.0)"),
    ("--residual-threshold", float, "R",
     "drop a point whose sub-pixel match residual (RMS residual / template contrast) reaches this, like LK's "
     "forward-backward check (default 0.6, chosen on validation seeds; 0 = no check; the shipped tracker uses "
     "0.64)"),
    ("--moving-residual-threshold", float, "R",
     "the residual cut instead for a point that moved more than the sub-pixel stage's --subpixel-moving-px this "
     "step (it is matched in the smaller window, and fast points are where tracks fail); 0 = --residual-threshold "
     "for every point (default 0; choose it with `laps-export tracker-keep-rule`)"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "onnx", help="export a trained tokenizer to ONNX and write the model directory",
        description="Export the tokenizer encoder (up to the pre-quantisation latent) to ONNX with the model "
                    "metadata embedded, and write a model directory with manifest (sha256 of every file), "
                    "calibration and golden data.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="a checkpoint written by train-tokenizer (best.pt or last.pt)")
    p.add_argument("--out", required=True, help="model directory to write")
    p.add_argument("--model-version", required=True, help="version string stored in the metadata, e.g. small-2026.11-1")
    p.add_argument("--kind", choices=("auto", "tokenizer", "tracker"), default="auto",
                   help="what the checkpoint holds (default auto: read from the checkpoint)")
    for flag, kind, metavar, text in TRACKER_FLAGS:
        p.add_argument(flag, type=kind, default=None, metavar=metavar, help=f"tracker only: {text}")
    p.add_argument("--bundle-version", type=int, default=None,
                   help="monotonic bundle version for OTA (default 1 for a new tokenizer directory; the current "
                        "version + 1 when a tracker is added or a directory is overwritten)")
    p.add_argument("--calibration", metavar="FILE",
                   help="calibration.json to ship (from laps-calibrate, or an earlier export)")
    p.add_argument("--calibrate-seeds", metavar="LIST",
                   help="search theta_on, then the within-activity split step's window and threshold, on these "
                        "labelled synthetic VALIDATION seeds (500-599), e.g. 500-503")
    p.add_argument("--no-split", action="store_true",
                   help="with --calibrate-seeds: ship the paper's kernel without the within-activity split step")
    p.add_argument("--calibrate-minutes", type=float, default=3.0, help="minutes per calibration recording (default 3)")
    p.add_argument("--nuisances", default="all", help="nuisances of the synthetic recordings (default all)")
    p.add_argument("--golden-source", metavar="SPEC",
                   help="clip for the golden segments (default: the first calibration recording, else a "
                        "1-minute synthetic VALIDATION recording, seed 599)")
    p.add_argument("--golden-seconds", type=float, default=60.0, help="length of the golden clip (default 60 s)")
    p.add_argument("--golden-windows", type=int, default=8, help="golden input windows with expected codes (default 8)")
    p.add_argument("--tracker", choices=("lk", "exact"), default="lk", help="tracker for golden/calibration clips (default lk)")
    p.add_argument("--cache-dir", default=".cache/tracks", help="track cache folder (default .cache/tracks)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --out if it exists (a distilled tracker in it is kept, and the bundle version "
                        "becomes its version + 1 unless --bundle-version is given)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from calibration.labelled import latent_energy, search_theta_on
    from edge.calibration_file import CalibrationFile, tool_version, utc_now
    from edge.energy import HysteresisParams
    from edge.errors import ConfigError
    from edge.model import CALIBRATION_NAME, GOLDEN_DIR, update_manifest
    from edge.tokenizer import TokenizerRuntime
    from edge.tracking.onnx_student import TRACKER_NAME
    from export.tokenizer.dataset import cached_tracks, parse_seed_range, synthetic_spec
    from export.tokenizer.onnx import write_model_directory
    from export.tokenizer.train import load_checkpoint
    from export.tokenizer.windows import make_windows
    from export.verify import make_golden

    if args.kind == "tracker" or (args.kind == "auto" and _is_tracker_checkpoint(args.checkpoint)):
        return _export_tracker(args)
    given = [flag for flag, *_ in TRACKER_FLAGS if getattr(args, flag[2:].replace("-", "_")) is not None]
    if given:
        raise ConfigError(f"{given[0]} applies to a tracker checkpoint only, and {args.checkpoint} is not one "
                          "(a tokenizer export); drop the flag or give a checkpoint from `laps-export distill-tracker`")
    kept_tracker = _tracker_to_keep(Path(args.out)) if args.overwrite else None
    if args.bundle_version is None:
        # Over a shipped directory the bundle version goes on rising (devices refuse a lower one).
        args.bundle_version = kept_tracker["version"] + 1 if kept_tracker else 1
    model, conventions, ckpt = load_checkpoint(args.checkpoint)
    dhash = ckpt.get("provenance", {}).get("training_data_hash", "")
    progress = not args.no_progress
    md = write_model_directory(model, conventions, args.out, model_version=args.model_version,
                               bundle_version=args.bundle_version, training_data_hash=dhash, overwrite=args.overwrite)
    runtime = TokenizerRuntime(md, providers="cpu")

    def tokenize(rec) -> np.ndarray:
        runtime.reset()
        return np.stack([runtime.step(v, m).z_q for v, m in zip(rec.velocity, rec.valid)])

    calibration: CalibrationFile | None = None
    cal_specs: list[str] = []
    if args.calibration:
        path = Path(args.calibration)
        if not path.is_file():
            raise ConfigError(f"calibration file {path} does not exist; give a calibration.json or use --calibrate-seeds")
        calibration = CalibrationFile.read(path)  # validated before shipping
    elif args.calibrate_seeds:
        seeds = parse_seed_range(args.calibrate_seeds)
        bad = [s for s in seeds if not 500 <= s <= 599]
        if bad:
            raise ConfigError(f"calibration seed {bad[0]} is not a VALIDATION seed; use seeds in 500-599")
        cal_specs = [synthetic_spec(s, args.calibrate_minutes, args.nuisances) for s in seeds]
        latents, gts = [], []
        for spec in cal_specs:
            rec, _ = cached_tracks(spec, conventions, args.tracker, args.cache_dir, progress=progress)
            latents.append(tokenize(rec))
            gts.append(synthetic_ground_truth(spec))
        params, summary = search_theta_on([latent_energy(z) for z in latents], gts, conventions.fps)
        method = ("theta_on search against exact ground truth (boundary F1@2s), other parameters at the paper's "
                  "values")
        f1 = summary["f1"]
        if not args.no_split:
            from calibration.split import calibrate_split_labelled

            split = calibrate_split_labelled(latents, [np.asarray(g) for g in gts], conventions.fps, params)
            params, f1 = split.params, split.score
            method += "; then the split window and threshold with the best boundary F1@2s (calibration.split)"
        calibration = CalibrationFile(
            params=params, model_version=args.model_version, fps=float(conventions.fps), mode="labelled",
            criterion="boundary_f1@2s", score=float(f1),
            details={"method": method, "sources": cal_specs, "tracker": args.tracker,
                     "energy": "newest-token latent energy ||z_q,t - z_q,t-1||"},
            created=utc_now(), tool="laps-export", tool_version=tool_version(),
        )
        split_text = (f", split window {params.split_window} threshold {params.split_theta:.4g}" if params.splits
                      else ", no split")
        print(f"calibration: theta_on {params.theta_on:.4g}{split_text}, F1@2s {f1:.3f} on seeds {args.calibrate_seeds}")

    golden_spec = args.golden_source or (cal_specs[0] if cal_specs else synthetic_spec(599, 1, args.nuisances))
    rec, _ = cached_tracks(golden_spec, conventions, args.tracker, args.cache_dir, progress=progress)
    n = min(rec.n_frames, int(round(args.golden_seconds * conventions.fps)))
    clip_v, clip_m = rec.velocity[:n], rec.valid[:n]
    wv, wm = make_windows([rec], conventions.window, conventions.window)
    if calibration is not None:
        golden_params = calibration.params
    else:
        # No thresholds to ship: the golden segments still pin the kernel path, at the median energy.
        golden_params = HysteresisParams(theta_on=float(np.median(latent_energy(tokenize(rec)[:n]))))
    golden = make_golden(model, conventions, wv[:args.golden_windows], wm[:args.golden_windows], clip_v, clip_m,
                         golden_params)
    (md.path / GOLDEN_DIR).mkdir(exist_ok=True)
    np.savez_compressed(md.path / GOLDEN_DIR / "golden.npz", **golden)
    (md.path / GOLDEN_DIR / "README.md").write_text(
        f"Golden data of model {args.model_version}: {len(golden['window_codes'])} windows with expected codes, "
        f"and {n} frames of tracks of `{golden_spec}` ({args.tracker} tracker) with expected per-frame codes and "
        f"{len(golden['clip_segments'])} expected segments. Checked by `laps-export verify`.\n", encoding="utf-8")
    if calibration is not None:
        calibration.write(md.path / CALIBRATION_NAME)
    records = None
    if kept_tracker is not None:
        # The kept tracker goes back with its manifest record; loading the directory again checks
        # it against the new tokenizer's conventions.
        (md.path / TRACKER_NAME).write_bytes(kept_tracker["bytes"])
        records = {"tracker": kept_tracker["record"]}
    md = update_manifest(md.path, records=records)
    size = sum(p.stat().st_size for p in md.path.rglob("*") if p.is_file())
    print(json.dumps({"model_dir": str(md.path), "version": args.model_version, "bytes": size,
                      "golden_segments": int(len(golden["clip_segments"])),
                      "calibrated": calibration is not None}))
    return 0


def _tracker_to_keep(out) -> dict | None:
    """The distilled tracker of the model directory about to be overwritten (its file's bytes, its
    manifest record and the directory's bundle version), so a re-exported tokenizer keeps it;
    None when there is none."""
    from edge.model import MANIFEST_NAME, read_manifest
    from edge.tracking.onnx_student import TRACKER_NAME

    manifest_path, tracker_path = out / MANIFEST_NAME, out / TRACKER_NAME
    if not (manifest_path.is_file() and tracker_path.is_file()):
        return None
    manifest = read_manifest(out)
    if "tracker" not in manifest:
        return None
    return {"bytes": tracker_path.read_bytes(), "record": manifest["tracker"], "version": int(manifest.get("version", 0))}


def synthetic_ground_truth(spec: str) -> list[tuple[float, float]]:
    """(start_s, end_s) ground-truth segments of a synthetic:// recording."""
    from edge.sources.synthetic import SyntheticSource

    source = SyntheticSource.from_uri(spec)
    return [(float(s), float(e)) for s, e, *_ in source.workstation.ground_truth.segments]


def _is_tracker_checkpoint(path: str) -> bool:
    from export.tracker.train import is_tracker_checkpoint

    return is_tracker_checkpoint(path)


def _export_tracker(args: argparse.Namespace) -> int:
    """Add a distilled tracker to the model directory OUT (or write OUT/tracker.onnx alone)."""
    import json
    import math
    from pathlib import Path

    from edge.model import MANIFEST_NAME, read_manifest
    from edge.tracking.onnx_student import TRACKER_NAME
    from export.tracker.onnx import add_tracker_to_model_directory, build_metadata, export_tracker
    from export.tracker.model import SUBPIXEL_FIELDS, trim_passes
    from export.tracker.train import load_checkpoint as load_tracker

    from edge.errors import ConfigError

    model, ckpt = load_tracker(args.checkpoint)
    # The sub-pixel stage has no weights: setting it at export changes no trained parameter.
    for key in SUBPIXEL_FIELDS:
        value = getattr(args, key, None)  # subpixel_on has no flag
        if value is not None:
            least, what = {"subpixel_radius": (1, "a radius >= 1"),
                           "subpixel_anchor_px": (1e-6, "a distance > 0 px, e.g. 1.0")}.get(key, (0, "a value >= 0"))
            if not value >= least:
                raise ConfigError(f"--{key.replace('_', '-')} {value} is out of range; give {what}")
            setattr(model.cfg, key, value)
    if args.fine_iterations is not None or args.finest_stride is not None:
        try:
            trim_passes(model, fine_iterations=args.fine_iterations, finest_stride=args.finest_stride)
        except ValueError as exc:
            raise ConfigError(f"--fine-iterations/--finest-stride: {exc}") from None
    if model.cfg.subpixel_anchor_iterations and not model.cfg.subpixel_iterations:
        raise ConfigError("--subpixel-anchor-iterations corrects the sub-pixel stage's result, but that stage is off "
                          "(--subpixel-iterations 0); give --subpixel-iterations >= 1 or drop the correction")
    if model.cfg.subpixel_moving_radius > model.cfg.subpixel_radius:
        raise ConfigError(f"the sub-pixel moving window (radius {model.cfg.subpixel_moving_radius}) must fit in the "
                          f"main one (radius {model.cfg.subpixel_radius}); lower --subpixel-moving-radius or raise "
                          "--subpixel-radius")
    thresholds = {}
    if args.visibility_threshold is not None:
        if not math.isfinite(args.visibility_threshold):
            raise ConfigError(f"--visibility-threshold {args.visibility_threshold} is not a number; give a logit, "
                              "e.g. 1.0")
        thresholds["visibility_threshold"] = args.visibility_threshold
    # Both residual cuts read the sub-pixel stage's match residual: the same range and the same need.
    for name, example, zero in (("residual_threshold", "0.6", "no residual check"),
                                ("moving_residual_threshold", "0.55", "the --residual-threshold cut")):
        value, flag = getattr(args, name), "--" + name.replace("_", "-")
        if value is None:
            continue
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{flag} {value} is out of range; give a number >= 0, e.g. {example}, or 0 for {zero}")
        if value > 0 and not model.cfg.subpixel_iterations:
            raise ConfigError(f"{flag} needs the sub-pixel stage, which is off (--subpixel-iterations 0); drop the "
                              "flag or turn the stage on")
        thresholds[name] = value
    training = {"checkpoint_iteration": ckpt["iteration"], "best_val_epe_mean_px": ckpt["best_val_epe_mean_px"],
                **ckpt.get("provenance", {})}
    out = Path(args.out)
    if (out / MANIFEST_NAME).is_file():
        current = int(read_manifest(out).get("version", 0))
        version = current + 1 if args.bundle_version is None else args.bundle_version
        path = add_tracker_to_model_directory(model, out, model_version=args.model_version, bundle_version=version,
                                              training=training, **thresholds)
    else:
        spec = ckpt["window_spec"]
        meta = build_metadata(model, n_points=400, grid=20, grid_margin=1.0 / 20.0,
                              input_size=tuple(spec["input_size"]), fps=spec["fps"],
                              model_version=args.model_version, training=training, **thresholds)
        path = export_tracker(model, meta, out / TRACKER_NAME)
        version = None
    print(json.dumps({"tracker": str(path), "bytes": path.stat().st_size, "bundle_version": version,
                      "model_version": args.model_version}))
    return 0
