"""`laps-export train-tokenizer`: train the motion tokenizer on track windows."""

from __future__ import annotations

import argparse

EPILOG = """\
Examples:
  # the default model (see edge/shipped_models/README.md for the exact command)
  laps-export train-tokenizer --synthetic-seeds 100-111 --synthetic-minutes 3 \\
      --val-synthetic-seeds 500-501 --out .cache/tokenizer-small
  # your own videos through Lucas-Kanade, or tracks saved from another tracker
  laps-export train-tokenizer --source shift1.mp4 --source shift2.mp4 --out runs/site-a
  laps-export train-tokenizer --source cotracker_tracks.npz --out runs/site-a

Seeds of the synthetic workstation: TRAINING 100-199, VALIDATION 500-599, HELD-OUT 900-999.
Held-out seeds are refused here: they are only for reported accuracy.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-tokenizer", help="train the motion tokenizer (torch) on track windows",
        description="Train the LAPS motion tokenizer (causal Transformer encoder + FSQ + displacement "
                    "decoder) on windows of point tracks. Tracks are cached on disk, so re-training "
                    "does not re-track. Prints per-epoch validation loss, displacement accuracy, "
                    "codebook usage and perplexity; writes last.pt/best.pt/history.json to --out.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--source", action="append", default=[], metavar="SPEC",
                      help="training clip: a video file, camera/stream spec, synthetic:// URI, or a saved-tracks "
                           ".npz (positions (T,N,2) x,y px at the model input size, visibility (T,N), fps); repeatable")
    data.add_argument("--synthetic-seeds", metavar="LIST",
                      help="add synthetic workstation recordings with these seeds, e.g. 100-111 (TRAINING range 100-199)")
    data.add_argument("--synthetic-minutes", type=float, default=3.0, metavar="MIN",
                      help="minutes per synthetic recording (default 3)")
    data.add_argument("--nuisances", default="all",
                      help="nuisances of the synthetic recordings: all, none, or a list the source accepts (default all)")
    data.add_argument("--real-footage", action="store_true",
                      help="add the real-footage corpus (data/real_footage/manifest.json, built with "
                           "`laps-export build-real-footage`): its train clips for training, its val clips for "
                           "validation")
    data.add_argument("--val-source", action="append", default=[], metavar="SPEC",
                      help="validation clip (same forms as --source); repeatable")
    data.add_argument("--val-synthetic-seeds", metavar="LIST",
                      help="validation synthetic seeds, e.g. 500-501 (VALIDATION range 500-599)")
    data.add_argument("--val-fraction", type=float, default=0.1,
                      help="without any validation clip, hold out this final fraction of each training clip (default 0.1)")
    data.add_argument("--tracker", choices=("lk", "exact"), default="lk",
                      help="tracker backend: lk = OpenCV Lucas-Kanade (as on the device), exact = the synthetic "
                           "workstation's exact trajectories (synthetic:// only) (default lk)")
    data.add_argument("--cache-dir", default=".cache/tracks", help="track cache folder (default .cache/tracks)")
    data.add_argument("--window-stride", type=int, default=2, metavar="FRAMES",
                      help="frames between the starts of consecutive training windows (default 2)")
    conv = p.add_argument_group("model conventions (written into the model metadata)")
    conv.add_argument("--fps", type=float, default=10.0, help="model frame rate (default 10)")
    conv.add_argument("--window", type=int, default=16, help="T, frames per window; T-1 velocity steps (default 16)")
    conv.add_argument("--grid", type=int, default=20, help="points per side of the tracked grid, N = grid^2 (default 20)")
    conv.add_argument("--input-size", default="320x240", metavar="WxH",
                      help="frame size given to the tracker, pixels (default 320x240)")
    conv.add_argument("--velocity-scale", type=float, default=7.0, metavar="PX",
                      help="encoder input = velocity / this many px per step (default 7)")
    conv.add_argument("--max-displacement", type=int, default=7, metavar="PX",
                      help="decoder classes cover integer displacements in [-PX, PX] per axis (default 7: 15x15)")
    arch = p.add_argument_group("model and optimisation")
    arch.add_argument("--preset", choices=("small", "base"), default="small",
                      help="small: d=256, 4 heads, 2 layers (edge default); base: d=768, 8 heads, 2 layers (paper)")
    arch.add_argument("--fsq-levels", default="8,8,6,5", help="FSQ levels per latent dimension (default 8,8,6,5: 1920 codes)")
    arch.add_argument("--input-transform", choices=("linear", "signed_sqrt"), default="linear",
                      help="encoder input: linear = v/scale (the paper), signed_sqrt = sign(x)*sqrt(|x|) of it, "
                           "inside the exported graph, so slow motion moves the input more (default linear)")
    arch.add_argument("--decoder-targets", choices=("joint", "axis_bins"), default="joint",
                      help="what the training decoder predicts per point: joint = integer (dx, dy) classes in "
                           "[-m, m]^2 (the paper); axis_bins = per axis the nearest of 19 bins, finer below 1 px "
                           "(default joint)")
    arch.add_argument("--loss-points", type=int, default=0, metavar="P",
                      help="decode only P random points per batch in training (0 = all N; fewer is faster, the "
                           "encoder still sees every point; default 0)")
    arch.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    arch.add_argument("--batch-size", type=int, default=32, help="windows per batch (default 32)")
    arch.add_argument("--max-batches-per-epoch", type=int, default=0,
                      help="cap the batches of one epoch (0 = all windows each epoch; default 0)")
    arch.add_argument("--lr", type=float, default=3e-4, help="AdamW learning rate (default 3e-4; the paper uses 1e-4)")
    arch.add_argument("--dropout", type=float, default=0.1, help="dropout (default 0.1)")
    arch.add_argument("--focal-gamma", type=float, default=0.0,
                      help="focal-loss gamma; 0 = plain cross-entropy (default 0 by measurement; the paper code uses 4)")
    arch.add_argument("--focal-alpha", type=float, default=0.5, help="focal-loss alpha (default 0.5)")
    arch.add_argument("--radial-k", type=float, default=4.0,
                      help="radial class weights 1 + k*r^2, r = displacement/(m*sqrt2); 0 = unweighted (default 4, "
                           "as the paper code; chosen by measurement, see edge/shipped_models/README.md)")
    arch.add_argument("--latent-noise", type=float, default=0.0,
                      help="std of Gaussian noise on the latent before rounding during training (default 0 by measurement; "
                           "the paper code uses 0.01)")
    arch.add_argument("--seed", type=int, default=0, help="seed of weights, dropout and shuffling (default 0)")
    run = p.add_argument_group("run")
    run.add_argument("--out", required=True, help="folder for last.pt, best.pt and history.json")
    run.add_argument("--resume", action="store_true", help="continue from --out/last.pt")
    run.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:i] (default auto)")
    run.add_argument("--threads", type=int, default=2, help="CPU threads for torch (default 2)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handler)


HELD_OUT = range(900, 1000)


def handler(args: argparse.Namespace) -> int:
    import json

    from edge.errors import ConfigError
    from export.tokenizer.dataset import cached_tracks
    from export.tokenizer.train import TrainConfig, WindowData, data_hash, train
    from export.tokenizer.windows import DataConventions, TrackRecord, make_windows

    conventions = DataConventions(
        fps=args.fps, window=args.window, grid=args.grid, input_size=_size(args.input_size),
        velocity_scale_px=args.velocity_scale, max_displacement_px=args.max_displacement,
    )
    real_train, real_val = _real_footage() if args.real_footage else ([], [])
    train_specs = list(args.source) + real_train + _synthetic(args.synthetic_seeds, args)
    val_specs = list(args.val_source) + real_val + _synthetic(args.val_synthetic_seeds, args)
    if not train_specs:
        raise ConfigError("no training data; give --source SPEC or --synthetic-seeds 100-111")
    for spec in train_specs + val_specs:
        seed = _seed_of(spec)
        if seed is not None and seed in HELD_OUT:
            raise ConfigError(
                f"synthetic seed {seed} is a HELD-OUT benchmark seed (900-999); train on 100-199 and validate on 500-599"
            )
    overlap = set(train_specs) & set(val_specs)
    if overlap:
        raise ConfigError(f"{sorted(overlap)[0]} is both a training and a validation clip; keep them disjoint")
    if not 0.0 < args.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction {args.val_fraction} must be in (0, 1)")
    levels = [int(v) for v in args.fsq_levels.split(",")]

    keys: list[str] = []
    train_records, val_records = [], []
    for spec in train_specs:
        rec, key = cached_tracks(spec, conventions, args.tracker, args.cache_dir, progress=not args.no_progress)
        keys.append(key)
        if val_specs:
            train_records.append(rec)
        else:
            cut = int(round(rec.n_frames * (1.0 - args.val_fraction)))
            train_records.append(TrackRecord(rec.velocity[:cut], rec.valid[:cut], rec.fps, rec.source))
            val_records.append(TrackRecord(rec.velocity[cut:], rec.valid[cut:], rec.fps, rec.source))
    for spec in val_specs:
        rec, key = cached_tracks(spec, conventions, args.tracker, args.cache_dir, progress=not args.no_progress)
        keys.append("val:" + key)
        val_records.append(rec)
    tv, tm = make_windows(train_records, conventions.window, args.window_stride)
    vv, vm = make_windows(val_records, conventions.window, conventions.steps)
    dhash = data_hash(keys + [f"stride={args.window_stride}", f"val_fraction={args.val_fraction}"])
    print(f"training windows: {len(tv)}, validation windows: {len(vv)}, data hash {dhash[:12]}")
    cfg = TrainConfig(
        preset=args.preset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, dropout=args.dropout,
        seed=args.seed, focal_gamma=args.focal_gamma, focal_alpha=args.focal_alpha, radial_k=args.radial_k,
        latent_noise=args.latent_noise, max_batches_per_epoch=args.max_batches_per_epoch, device=args.device,
        threads=args.threads, loss_points=args.loss_points,
        model_overrides={"fsq_levels": levels, "input_transform": args.input_transform,
                         "decoder_targets": args.decoder_targets},
    )
    provenance = {"train_sources": train_specs, "val_sources": val_specs, "tracker": args.tracker,
                  "training_data_hash": dhash, "window_stride": args.window_stride}

    def show(row: dict) -> None:
        print(
            f"epoch {row['epoch']:3d}  train {row['train_loss']:.4f}  val {row['val_loss']:.4f}  "
            f"acc {row['displacement_accuracy']:.3f}  moving-acc {row['moving_displacement_accuracy']:.3f}  "
            f"codes {row['codes_used']} ({100 * row['codebook_usage']:.1f}%)  perplexity {row['perplexity']:.1f}",
            flush=True,
        )

    history = train(WindowData(tv, tm), WindowData(vv, vm), conventions, cfg, args.out, resume=args.resume,
                    provenance=provenance, progress=not args.no_progress, on_epoch=show)
    print(json.dumps({"out": args.out, "epochs": len(history), "best_val_loss": min(r["val_loss"] for r in history)}))
    return 0


def _real_footage() -> tuple[list[str], list[str]]:
    """The corpus's train and val clip files, each sorted by name; paths relative to the working
    directory when under it (so the track-cache keys, and the data hash, match a run given the
    same files with --source from the repository root)."""
    import os

    from export.real_footage import load_manifest
    from export.real_footage.manifest import built_clip_files

    manifest = load_manifest()

    def files(split: str) -> list[str]:
        out = []
        for _, path in built_clip_files(manifest, split):
            rel = os.path.relpath(path)
            out.append(path.as_posix() if rel.startswith("..") else rel)
        return sorted(out, key=lambda f: os.path.basename(f))

    return files("train"), files("val")


def _synthetic(seeds: str | None, args: argparse.Namespace) -> list[str]:
    from export.tokenizer.dataset import parse_seed_range, synthetic_spec

    if not seeds:
        return []
    return [synthetic_spec(s, args.synthetic_minutes, args.nuisances) for s in parse_seed_range(seeds)]


def _seed_of(spec: str) -> int | None:
    import urllib.parse

    if not spec.startswith("synthetic://"):
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlparse(spec).query)
    try:
        return int(query["seed"][0])
    except (KeyError, ValueError, IndexError):
        return None


def _size(text: str) -> tuple[int, int]:
    from edge.errors import ConfigError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--input-size {text!r} is malformed; write WIDTHxHEIGHT, e.g. 320x240") from None
    return w, h
