"""`laps-export distill-tracker`: distil the student point tracker from its teachers."""

from __future__ import annotations

import argparse

EPILOG = """\
Teachers (any mix; at least one):
  (a) --synthetic-seeds: the synthetic workstation's EXACT trajectories (TRAINING seeds 100-199)
  (b) --lk-source VIDEO: Lucas-Kanade with the forward-backward check (as on the device) on real,
      unlabelled video; a point is a target only while it passes the check
  (c) --teacher-tracks TRACKS.npz=VIDEO: tracks computed elsewhere (e.g. CoTracker on a workstation)
      saved as .npz with positions (T,N,2) float32 (x, y) px in the video resized to the model input
      size, visibility (T,N) bool, fps (the rate of the T rows), plus the video they came from

Validation (end-point error printed at every --eval-every): --val-synthetic-seeds (VALIDATION
500-599). Held-out seeds 900-999 are refused: they are for benchmarks/tracking.py only.

Fine-tune: --init CKPT starts from a checkpoint's weights and architecture with a new schedule;
with --finest-stride 2 its stride-1 passes are dropped first, so the network trains with the
passes the shipped export runs.

Writes OUT/last.pt (every evaluation; --resume continues from it bit-identically on CPU),
OUT/best.pt (lowest validation mean end-point error) and OUT/history.json. Export with
`laps-export onnx --checkpoint OUT/best.pt --out MODEL_DIR --bundle-version K`.

Example (the default student, see edge/shipped_models/README.md):
  laps-export distill-tracker --synthetic-seeds 100-139 --synthetic-minutes 1 \\
      --val-synthetic-seeds 500-501 --iterations 6000 --batch-size 32 --seed 0 --out .cache/tracker-default
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "distill-tracker", help="distil the student point tracker (torch) from synthetic, LK or saved tracks",
        description="Train the small online point tracker that `laps-edge --tracker onnx` runs: a feature "
                    "pyramid, coarse-to-fine local correlation with a soft-argmax and per-level MLPs, and a "
                    "visibility head. Targets come from exact synthetic trajectories, Lucas-Kanade "
                    "pseudo-labels on real video, or tracks saved from another tracker.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("teachers")
    data.add_argument("--synthetic-seeds", metavar="LIST", help="teacher (a): TRAINING seeds, e.g. 100-139")
    data.add_argument("--synthetic-minutes", type=float, default=1.0, metavar="MIN",
                      help="minutes per synthetic recording (default 1)")
    data.add_argument("--nuisances", default="all", help="nuisances of the synthetic recordings (default all)")
    data.add_argument("--lk-source", action="append", default=[], metavar="SPEC",
                      help="teacher (b): a real video (file, stream or any frame-source spec); repeatable")
    data.add_argument("--teacher-tracks", action="append", default=[], metavar="NPZ=SPEC",
                      help="teacher (c): saved tracks and the video they were computed on; repeatable")
    data.add_argument("--val-synthetic-seeds", metavar="LIST", default="500-501",
                      help="VALIDATION seeds for the end-point error (default 500-501)")
    data.add_argument("--val-minutes", type=float, default=0.5, help="minutes per validation recording (default 0.5)")
    data.add_argument("--workers", type=int, default=2, help="processes that render synthetic windows (default 2)")
    win = p.add_argument_group("windows and model conventions")
    win.add_argument("--steps", type=int, default=4, help="tracker steps per training window (default 4)")
    win.add_argument("--points", type=int, default=64, help="query points per window (default 64)")
    win.add_argument("--crop", default="160x128", metavar="WxH", help="training crop, multiples of 8 (default 160x128)")
    win.add_argument("--window-stride", type=int, default=2, help="frames between window starts (default 2)")
    win.add_argument("--fps", type=float, default=10.0, help="model frame rate (default 10)")
    win.add_argument("--input-size", default="320x240", metavar="WxH", help="model input size (default 320x240)")
    opt = p.add_argument_group("optimisation")
    opt.add_argument("--iterations", type=int, default=3000, help="optimiser steps (default 3000)")
    opt.add_argument("--batch-size", type=int, default=16, help="windows per step (default 16)")
    opt.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate, cosine decay (default 2e-3)")
    opt.add_argument("--eval-every", type=int, default=250, help="validate + checkpoint every K steps (default 250)")
    opt.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and windows (default 0)")
    opt.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    opt.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    opt.add_argument("--channels", default=None,
                     help="feature channels at strides 1,2,4,8 (default 8,16,32,32; with --init the checkpoint's)")
    opt.add_argument("--radius", type=int, default=None,
                     help="correlation lattice half-width in cells (default 3; with --init the checkpoint's)")
    opt.add_argument("--finest-stride", type=int, default=None, metavar="S",
                     help="finest stride the network's refinement passes train at, as `laps-export onnx "
                          "--finest-stride` runs them (default 1; with --init the checkpoint's, and a coarser one "
                          "drops its finer trained passes first)")
    opt.add_argument("--init", metavar="CKPT",
                     help="fine-tune: start from this distill-tracker checkpoint's weights and architecture, with a "
                          "new optimiser and learning-rate schedule (--lr, --iterations); to continue an interrupted "
                          "fine-tune, repeat the command with --resume")
    opt.add_argument("--subpixel-iterations", type=int, default=4,
                     help="Gauss-Newton iterations of the weight-free sub-pixel stage, 0 = off (default 4); "
                          "`laps-export onnx --subpixel-iterations` can change it at export")
    opt.add_argument("--out", required=True, help="run folder for checkpoints and history")
    opt.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    opt.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import json

    from edge.errors import ConfigError
    from export.tokenizer.dataset import parse_seed_range
    from export.tracker.dataset import WindowSet, WindowSpec, build_synthetic, windows_from_clip
    from export.tracker.teachers import check_training_seed, lk_pseudo_labels, saved_tracks_clip
    from export.tracker.train import TrainConfig, train

    size = _size(args.input_size, "--input-size")
    spec = WindowSpec(steps=args.steps, points=args.points, crop=_size(args.crop, "--crop"),
                      stride=args.window_stride, fps=args.fps, input_size=size)
    # Architecture first: a wrong flag must not wait for minutes of rendering.
    model, init_state, init = _architecture(args, spec)
    progress = not args.no_progress
    parts: list[WindowSet] = []
    sources: list[str] = []
    if args.synthetic_seeds:
        seeds = parse_seed_range(args.synthetic_seeds)
        for s in seeds:
            check_training_seed(s, "training")
        parts.append(build_synthetic(seeds, args.synthetic_minutes, args.nuisances, spec, args.seed,
                                     workers=args.workers, progress=progress))
        sources.append(f"synthetic seeds {args.synthetic_seeds} x {args.synthetic_minutes:g} min, "
                       f"nuisances {args.nuisances}")
    for video in args.lk_source:
        parts.append(windows_from_clip(lk_pseudo_labels(video, args.fps, size), spec, args.seed))
        sources.append(f"lk:{video}")
    for pair in args.teacher_tracks:
        if "=" not in pair:
            raise ConfigError(f"--teacher-tracks {pair!r} lacks the video; write TRACKS.npz=VIDEO")
        tracks, video = pair.split("=", 1)
        parts.append(windows_from_clip(saved_tracks_clip(tracks, video, args.fps, size), spec, args.seed))
        sources.append(f"tracks:{pair}")
    if not parts:
        raise ConfigError("no teacher given; use --synthetic-seeds, --lk-source or --teacher-tracks")
    train_data = WindowSet.concat(parts)
    val_seeds = parse_seed_range(args.val_synthetic_seeds)
    for s in val_seeds:
        check_training_seed(s, "validation")
    val_data = build_synthetic(val_seeds, args.val_minutes, args.nuisances, spec, args.seed + 1,
                               workers=args.workers, progress=progress)
    cfg = TrainConfig(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                      eval_every=args.eval_every, device=args.device, threads=args.threads, model=model)
    provenance = {"teachers": sources, "validation": f"synthetic seeds {args.val_synthetic_seeds} x "
                  f"{args.val_minutes:g} min", "train_windows": len(train_data), "val_windows": len(val_data)}
    if init:
        provenance["init"] = {k: v for k, v in init.items() if k != "window_spec"}
    print(json.dumps(provenance))

    def show(row: dict) -> None:
        print(f"iteration {row['iteration']}: train loss {row['train_loss']:.4f}, val EPE median "
              f"{row['val_epe_median_px']:.3f} px, mean {row['val_epe_mean_px']:.3f} px, within 1 px "
              f"{100 * row['val_within_1px']:.1f} %, visibility accuracy {100 * row['val_visibility_accuracy']:.1f} %",
              flush=True)

    train(train_data, val_data, spec, cfg, args.out, resume=args.resume, provenance=provenance,
          progress=progress, on_eval=show, init_state=init_state)
    return 0


def _architecture(args: argparse.Namespace, spec) -> tuple[dict, dict | None, dict | None]:
    """(StudentConfig overrides, starting weights or None, init provenance or None) from the flags."""
    from edge.errors import ConfigError
    from export.tracker.model import StudentConfig, check_passes

    channels = None
    if args.channels is not None:
        try:
            channels = [int(v) for v in args.channels.split(",")]
        except ValueError:
            channels = []
        if len(channels) != 4:
            raise ConfigError(f"--channels {args.channels!r} needs 4 numbers (strides 1, 2, 4, 8), e.g. 8,16,32,32")
    if args.init is None:
        model = {"channels": channels or [8, 16, 32, 32], "radius": 3 if args.radius is None else args.radius,
                 "subpixel_iterations": args.subpixel_iterations}
        if args.finest_stride is not None:
            # the extra passes run at stride 1, which a coarser finest stride leaves out
            model.update(finest_stride=args.finest_stride, fine_iterations=0 if args.finest_stride != 1 else 1)
            try:
                check_passes(StudentConfig.from_dict({**StudentConfig().to_dict(), **model}))
            except ValueError as e:
                raise ConfigError(f"--finest-stride {args.finest_stride}: {e}") from None
        return model, None, None
    from export.tracker.train import init_from_checkpoint

    cfg, state, init = init_from_checkpoint(args.init, args.finest_stride)
    if channels is not None and tuple(channels) != tuple(cfg.channels):
        raise ConfigError(f"--channels {args.channels} differs from --init's {','.join(map(str, cfg.channels))}; "
                          "a fine-tune keeps the architecture (leave --channels out)")
    if args.radius is not None and args.radius != cfg.radius:
        raise ConfigError(f"--radius {args.radius} differs from --init's {cfg.radius}; a fine-tune keeps the "
                          "architecture (leave --radius out)")
    trained, wanted = init["window_spec"], spec.to_dict()
    for key, flag in (("fps", "--fps"), ("input_size", "--input-size")):
        mine = list(wanted[key]) if key == "input_size" else wanted[key]
        if key in trained and trained[key] != mine:
            raise ConfigError(f"{flag} {mine} differs from the {trained[key]} --init was trained at; fine-tune at "
                              f"its {key.replace('_', ' ')}")
    model = {**cfg.to_dict(), "subpixel_iterations": args.subpixel_iterations}
    return model, state, init


def _size(text: str, option: str) -> tuple[int, int]:
    from edge.errors import ConfigError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"{option} {text!r} is malformed; write WIDTHxHEIGHT, e.g. 320x240") from None
    return w, h
