"""`laps-edge run`: segment a video (file, camera, stream, synthetic) into action primitives.

Two modes:
- `--source SPEC --out DIR`: run the pipeline once over a source and write `segments.jsonl`,
  `summary.json` (and, with `--record-energy`, `energy.npz`; with a synthetic source, the
  ground truth and boundary F1 against it). What README command (a) runs.
- `--config FILE`: the long-running device service (MQTT, outbox, upload, systemd).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import sys
import time
from pathlib import Path

from edge.sinks import ProgressBar


def register(sub: argparse._SubParsersAction) -> None:
    from edge.cli_common import add_pipeline_options

    p = sub.add_parser(
        "run",
        help="segment a video source into action primitives",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Source specs: a video file path; 'synthetic://assembly?seed=7&minutes=2' (a generated "
            "workstation with ground truth); a camera index '0' or '/dev/video0'; 'rtsp://…' or "
            "'http://…'; 'gst:<pipeline>' where OpenCV has GStreamer.\n\n"
            "Example: laps-edge run --source 'synthetic://assembly?seed=900&minutes=1' --out out/demo"
        ),
    )
    p.add_argument("--config", help="TOML configuration: run as the device service (ignores the options below)")
    p.add_argument("--source", help="what to read (see below)")
    p.add_argument("--out", help="output directory for segments.jsonl and summary.json")
    add_pipeline_options(p, "model directory with tokenizer.onnx; 'default' = the shipped model; 'none' = the "
                            "velocity-energy proxy without a tokenizer")
    p.add_argument("--calibration", help="calibration.json with thresholds (overrides the model's)")
    p.add_argument("--roi", help="region of interest: track only grid points inside it. Inline polygons "
                                 "'x,y x,y x,y ...' in fractions of the width and height (0..1, y down; several "
                                 "separated by ';'), or a TOML file with a [roi] table (e.g. the device config). "
                                 "Check it with `laps-edge roi`")
    p.add_argument("--theta-on", type=float, help="override the ON threshold of the hysteresis")
    p.add_argument("--max-seconds", type=float, help="stop after this much source time (seconds, > 0)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="a video file cut short ends cleanly after its last good frame (with a warning) "
                        "instead of an error; either way summary.json covers the frames processed")
    p.add_argument("--record-energy", action="store_true",
                   help="also write energy.npz (per step: raw and smoothed energy, FSQ code, velocity-energy proxy) for laps-calibrate")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-segment lines")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from edge.errors import ConfigError

    if args.config:
        from edge.config import load_config
        from edge.service import run_service

        return run_service(load_config(args.config))
    if not args.source or not args.out:
        raise ConfigError("laps-edge run needs --source and --out (or --config FILE for the service); see --help")
    if args.max_seconds is not None and not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        raise ConfigError(f"--max-seconds {args.max_seconds:g} is not allowed; give a number of seconds > 0 "
                          "(or leave it out to process the whole source)")
    return run_once(args)


def run_once(args: argparse.Namespace) -> int:
    """Segment `args.source` into `args.out`. A source that fails part-way (a truncated file)
    still leaves segments.jsonl, summary.json ("complete": false, "error") and, with
    --record-energy, energy.npz for the frames processed; then its one-line error is raised."""
    from dataclasses import replace
    from datetime import datetime, timezone

    from edge.energy_trace import FILE_NAME as ENERGY_TRACE_NAME
    from edge.energy_trace import EnergyTraceRecorder
    from edge.errors import SourceError
    from edge.loop import StreamLoop
    from edge.model import resolve_model_spec
    from edge.pipeline import build_pipeline
    from edge.segments import stream_origin
    from edge.sinks import FrameLimit, JsonlSink
    from edge.sources.factory import open_source

    from edge.config import load_roi

    model_dir = resolve_model_spec(args.model)
    roi = load_roi(args.roi) if args.roi else None
    pipe = build_pipeline(
        model_dir=model_dir, tracker=args.tracker, providers=args.providers,
        calibration_path=args.calibration, energy_mode=args.energy_mode,
        keep_keyframes=False, roi=roi,
    )
    if args.theta_on is not None:
        pipe.set_params(replace(pipe.params, theta_on=args.theta_on))
    out = prepare_out_dir(args.out)
    t_start = time.perf_counter()
    failure: SourceError | None = None
    trace = None
    if args.record_energy:
        trace = EnergyTraceRecorder(fps=pipe.fps, model_version=pipe.model_version, params=pipe.params,
                                    source=args.source)
    progress: _Progress | None = None
    try:
        jsonl = JsonlSink(out / "segments.jsonl")
        try:
            with open_source(args.source, fps=pipe.fps, size=pipe.input_size,
                             allow_truncated=args.allow_truncated) as source:
                total = source.frame_count
                if args.max_seconds is not None:
                    limit = int(args.max_seconds * pipe.fps)
                    total = min(total, limit) if total is not None else limit
                progress = _Progress(args.quiet, total)  # only once the source opened: no bar before an error
                loop = StreamLoop(pipe, [s for s in (jsonl, progress, trace) if s is not None])
                if args.max_seconds is not None:
                    loop.sinks.append(FrameLimit(args.max_seconds, loop.stop, pipe.fps))
                # Same clock as the service: a file processed faster than real time is stamped as
                # recorded just before now, never in the future (edge.segments.stream_origin).
                origin = stream_origin(datetime.now(timezone.utc), frame_count=source.frame_count,
                                       fps=source.fps, paced=False)
                try:
                    loop.run(source, origin_utc=origin)
                except SourceError as err:
                    if progress.frames == 0:
                        raise
                    failure = err  # keep what the frames before the damage gave, then report it
                workstation = _find_workstation(source)
        finally:
            if progress is not None:
                progress.close()
            jsonl.close()
        elapsed = time.perf_counter() - t_start
        segments = progress.segments
        # The source's own time: the last frame's timestamp plus one frame period.
        duration_s = progress.last_timestamp_s + 1.0 / pipe.fps if progress.frames else 0.0
        summary = {
            "source": args.source,
            "model": model_dir or "velocity-energy (no tokenizer)",
            "model_version": pipe.model_version,
            "params": pipe.params.to_dict(),
            "roi": roi.to_texts() if roi is not None else None,
            "frames": progress.frames,
            "fps": pipe.fps,
            "duration_s": duration_s,
            "segments": len(segments),
            "processing_s": elapsed,
            "processed_fps": progress.frames / elapsed if elapsed > 0 else None,
            "providers": pipe.providers_in_use,
            "complete": failure is None,
        }
        if failure is not None:
            summary["error"] = str(failure)
        if workstation is not None:
            summary.update(_score_against_ground_truth(workstation, segments, duration_s, out))
        if trace is not None:
            trace.trace().write(out / ENERGY_TRACE_NAME)
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    except OSError as err:
        raise output_error(out, err) from None
    _print_summary(summary, out, args.record_energy)
    if failure is not None:
        raise failure
    return 0


class _Progress(ProgressBar):
    """The frame bar plus a line per finished segment (stderr); keeps the segments and the last
    frame's timestamp (the run's duration in the source's own time)."""

    def __init__(self, quiet: bool, total: int | None) -> None:
        super().__init__(total, desc="segmenting", disable=quiet)
        self.quiet = quiet
        self.last_timestamp_s = 0.0
        self.segments = []

    def frame(self, step) -> None:
        super().frame(step)
        self.last_timestamp_s = step.timestamp_s
        self.bar.set_postfix(segments=len(self.segments), refresh=False)

    def segment(self, finished) -> None:
        from tqdm import tqdm

        self.segments.append(finished.segment)
        if not self.quiet:
            tqdm.write(_describe(finished.segment), file=sys.stderr)


def prepare_out_dir(path: str) -> Path:
    """Create the --out folder; a file in the way, a read-only or full disk is a one-line ConfigError."""
    from edge.errors import ConfigError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; give a folder path (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(out, err) from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out} is not writable by this user; fix its permissions or choose another --out")
    return out


def output_error(out: Path, err: OSError) -> Exception:
    """The one-line error for a failed write under --out (disk full, read-only, permissions)."""
    from edge.errors import ConfigError

    where = err.filename or out
    reason = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
              errno.EDQUOT: "the disk quota is exhausted", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.ENOTDIR: "a part of the path is a file"}.get(
        err.errno, err.strerror or str(err))
    return ConfigError(f"cannot write {where} ({reason}); free space there, fix its permissions or "
                       "choose another --out")


def _find_workstation(source):
    """The synthetic workstation behind a (possibly resampled/resized) source, else None."""
    while source is not None:
        if hasattr(source, "workstation"):
            return source.workstation
        source = getattr(source, "source", None)
    return None


def _describe(seg) -> str:
    codes = seg.codes[:8]
    more = "…" if len(seg.codes) > 8 else ""
    return (f"segment {seg.start_s:7.1f}s - {seg.end_s:7.1f}s  ({seg.duration_s:4.1f}s)  "
            f"energy mean {seg.energy_mean:.3g} max {seg.energy_max:.3g}  codes {codes}{more}"
            + (f"  primitive {seg.primitive.cluster} (distance {seg.primitive.distance:.3f})"
               if seg.primitive is not None else ""))


def _score_against_ground_truth(workstation, segments, duration_s: float, out: Path) -> dict:
    from edge import evaluation

    gt = workstation.ground_truth
    (out / "ground_truth.json").write_text(gt.to_json(), encoding="utf-8")
    gt_spans = [(s, e) for s, e, _ in gt.segments if s < duration_s]
    pred_spans = [(s.start_s, s.end_s) for s in segments]
    return {
        "ground_truth_segments": len(gt_spans),
        "f1_at_2s": evaluation.boundary_f1([pred_spans], [gt_spans], tau=2.0, durations=[duration_s]),
        "f1_at_5s": evaluation.boundary_f1([pred_spans], [gt_spans], tau=5.0, durations=[duration_s]),
    }


def _print_summary(summary: dict, out: Path, energy: bool) -> None:
    lines = [
        f"{summary['segments']} segments in {summary['duration_s']:.1f} s of video "
        f"({summary['frames']} frames at {summary['fps']:g} fps; processed at "
        f"{summary['processed_fps'] or 0:.1f} frames/s; model: {summary['model_version']})",
    ]
    if "f1_at_2s" in summary:
        lines.append(
            f"against the synthetic ground truth ({summary['ground_truth_segments']} segments): "
            f"boundary F1@2s {summary['f1_at_2s']:.3f}, F1@5s {summary['f1_at_5s']:.3f}"
        )
    lines.append(f"segments: {out / 'segments.jsonl'}")
    lines.append(f"summary:  {out / 'summary.json'}")
    if energy:
        lines.append(f"energy:   {out / 'energy.npz'}")
    print("\n".join(lines))
