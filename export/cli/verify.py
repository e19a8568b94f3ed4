"""`laps-export verify`: torch vs ONNX Runtime parity of an exported tokenizer."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify", help="check an exported tokenizer against torch and its golden data",
        description="Compare the torch checkpoint with the exported ONNX encoder on random and real windows "
                    "(latent max-abs error, code agreement; FP32 must reach 99.9 %), replay the golden clip "
                    "through the device runtime and require identical segments, and write + check an FP16 "
                    "variant (FP32 inputs/outputs, for TensorRT). Writes a JSON report; exit 1 if a check fails.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model-dir", required=True, help="model directory written by `laps-export onnx`")
    p.add_argument("--checkpoint", help="the torch checkpoint it was exported from (without it only golden checks run)")
    p.add_argument("--source", action="append", default=[], metavar="SPEC",
                   help="real clip(s) whose windows are compared too (frame-source spec or saved-tracks .npz)")
    p.add_argument("--tracker", choices=("lk", "exact"), default="lk", help="tracker for --source clips (default lk)")
    p.add_argument("--cache-dir", default=".cache/tracks", help="track cache folder (default .cache/tracks)")
    p.add_argument("--random-windows", type=int, default=256, help="random windows to compare (default 256)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random windows (default 0)")
    p.add_argument("--report", default=None,
                   help="JSON report path (default MODEL_DIR/../<name>-verify/report.json)")
    p.add_argument("--fp16-out", default=None,
                   help="where to write the FP16 variant (default beside the report: tokenizer.fp16.onnx)")
    p.add_argument("--no-fp16", action="store_true", help="skip the FP16 variant")
    p.add_argument("--tracker-checkpoint", metavar="CKPT",
                   help="verify MODEL_DIR/tracker.onnx (or a tracker.onnx given as --model-dir) against this "
                        "distill-tracker checkpoint instead: online torch vs ONNX Runtime point error on --source "
                        "frames (default a synthetic VALIDATION recording, seed 599); FP32 must stay < 0.05 px")
    p.add_argument("--frames", type=int, default=40, help="frames for the tracker comparison (default 40)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge.model import load_model_directory
    from export.tokenizer.dataset import cached_tracks
    from export.tokenizer.windows import DataConventions, make_windows
    from export.verify import verify_model_directory, write_report

    if args.tracker_checkpoint:
        return _verify_tracker(args)
    md = load_model_directory(args.model_dir)
    report_path = Path(args.report) if args.report else md.path.parent / f"{md.path.name}-verify" / "report.json"
    fp16 = None if args.no_fp16 else (Path(args.fp16_out) if args.fp16_out else report_path.parent / "tokenizer.fp16.onnx")
    model = None
    if args.checkpoint:
        from export.tokenizer.train import load_checkpoint

        model, _, _ = load_checkpoint(args.checkpoint)
    real = None
    if args.source:
        m = md.metadata
        conv = DataConventions(fps=m.fps, window=m.window, grid=m.grid, grid_margin=m.grid_margin,
                               input_size=m.input_size, velocity_scale_px=m.velocity_scale_px,
                               max_displacement_px=m.max_displacement_px)
        recs = [cached_tracks(s, conv, args.tracker, args.cache_dir)[0] for s in args.source]
        real = make_windows(recs, m.window, m.steps)
    report = verify_model_directory(md, model=model, real_windows=real, n_random=args.random_windows,
                                    seed=args.seed, fp16_path=fp16)
    write_report(report, report_path)
    print(json.dumps(report["checks"], indent=1))
    print(f"{'PASSED' if report['passed'] else 'FAILED'}; report {report_path}")
    return 0 if report["passed"] else 1


def _verify_tracker(args: argparse.Namespace) -> int:
    """torch vs ONNX Runtime parity of a distilled tracker (FP32 pass/fail, FP16 reported)."""
    import json
    from pathlib import Path

    from edge.tracking.onnx_student import OnnxStudentTracker, find_tracker_model
    from export.tracker.train import load_checkpoint
    from export.tracker.verify import verification_frames, verify_tracker, write_report

    onnx_path = find_tracker_model(args.model_dir)
    model, _ = load_checkpoint(args.tracker_checkpoint)
    meta = OnnxStudentTracker(onnx_path, providers="cpu").metadata
    spec = args.source[0] if args.source else "synthetic://assembly?seed=599&minutes=0.2&nuisances=all"
    frames = verification_frames(spec, meta.fps, meta.input_size, args.frames)
    base = onnx_path.parent
    report_path = Path(args.report) if args.report else base.parent / f"{base.name}-verify" / "tracker_report.json"
    fp16 = None if args.no_fp16 else (
        Path(args.fp16_out) if args.fp16_out else report_path.parent / "tracker.fp16.onnx")
    report = verify_tracker(model, onnx_path, frames, fp16_path=fp16)
    report["source"] = spec
    write_report(report, report_path)
    print(json.dumps({k: report[k] for k in ("fp32", "fp16") if k in report}, indent=1))
    print(f"{'PASSED' if report['passed'] else 'FAILED'}; report {report_path}")
    return 0 if report["passed"] else 1
