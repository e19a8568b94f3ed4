"""Device-side primitive labels against central's assignment (issue 20, item 3: the loop back).

On HELD-OUT synthetic workstation videos (seeds 950-959, 2 minutes each, all nuisances; never
used for training or tuning), with the shipped model (`edge/shipped_models/default`):

1. The device pass: each video's cached Lucas-Kanade tracks (`.cache/tracks`, the cache of
   `benchmarks/clustering.py`) replayed through the device's own `Pipeline`, as
   `benchmarks.clustering.held_out_segments` does; the finished segments (FSQ codes) become
   `laps.segment/2` messages.
2. Central, its own way: the messages validated and stored by the ingest's code
   (`central.ingest.validate_segment`, `central.store.Store.ingest`), then `run_clustering`
   (frozen Transformer; k = the number of true primitives, and k by the default criterion,
   cosine silhouette over 2-12) saves a run; `export_library` writes its library into a copy
   of the model directory.
3. The device again, from the written files: the exported model directory loaded with
   `load_model_directory` and the same tracks replayed through `build_pipeline` of it; the
   pipeline labels every finished segment (`Segment.primitive`).

Reported per run: the % of segments whose device cluster equals the cluster central saved for
that segment (target >= 90 %), the largest |device distance - central distance|, how many
segments matched by (seed, start frame, end frame), and what labelling costs the device: the
ms of `PrimitiveLibrary.label_segment` per segment (median, p95, mean over every segment), its
sum spread over every frame of the videos (the average cost per frame), and the pipeline's ms per frame over the
first seed's video with the library against the same pipeline without it, passes alternating,
median of `--repeats` each (the baseline in the same run), as a ratio.

Run: `python -m benchmarks.primitive_agreement` (options: --help). Results:
`benchmarks/results/primitive_agreement.json`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.clustering import DEFAULT_MODEL, MINUTES, ReplayTracker, overlap_label
from benchmarks.common import print_table, write_results

HELD_OUT_SEEDS = tuple(range(950, 960))


def device_segments(seeds, minutes: float, model_dir: Path, progress: bool = True) -> tuple[dict, float, int]:
    """{(seed, start_frame, end_frame): (Segment, true label)} of every segment with codes that
    the device pipeline of `model_dir` finds in the seeds' replayed tracks, the pipeline's
    median ms per frame over the seeds, and the number of frames."""
    from tqdm import tqdm

    from edge.loop import run_stream
    from edge.model import load_model_directory
    from edge.pipeline import build_pipeline
    from edge.sources.blank import BlankSource
    from edge.synthetic import SyntheticWorkstation
    from export.tokenizer.dataset import cached_tracks, synthetic_spec
    from export.tokenizer.windows import DataConventions

    meta = load_model_directory(model_dir).metadata
    conv = DataConventions(fps=meta.fps, window=meta.window, grid=meta.grid, grid_margin=meta.grid_margin,
                           input_size=tuple(meta.input_size), velocity_scale_px=meta.velocity_scale_px,
                           max_displacement_px=meta.max_displacement_px)
    out: dict = {}
    per_frame: list[float] = []
    frames = 0
    for seed in tqdm(seeds, desc=f"device pass ({model_dir.name})", file=sys.stderr, disable=not progress):
        record, _ = cached_tracks(synthetic_spec(seed, minutes, "all"), conv, tracker="lk", progress=progress)
        pipe = build_pipeline(model_dir=str(model_dir), providers="cpu", keep_keyframes=False)
        pipe.tracker = ReplayTracker(record.velocity, record.valid)
        t0 = time.perf_counter()
        segments = run_stream(BlankSource(record.n_frames, pipe.fps, pipe.input_size), pipe)
        per_frame.append((time.perf_counter() - t0) * 1e3 / record.n_frames)
        frames += record.n_frames
        gt = SyntheticWorkstation(seed=seed, minutes=minutes).ground_truth
        for seg in segments:
            if seg.codes:
                out[(seed, seg.start_frame, seg.end_frame)] = (seg, overlap_label(seg.start_s, seg.end_s, gt.segments)[0])
    return out, float(np.median(per_frame)), frames


def agreement_rows(seeds=HELD_OUT_SEEDS, minutes: float = MINUTES, model_dir: Path = DEFAULT_MODEL,
                   work: Path | None = None, progress: bool = True, repeats: int = 7) -> list[dict]:
    """One row per central run (k = true classes; k by the default criterion): how often the
    device's label of a segment equals central's assignment, and by how much the distances differ."""
    from central.cluster_run import run_clustering
    from central.clustering import ClusterOptions
    from central.ingest import validate_segment
    from central.library_export import export_library
    from central.registry import ModelRegistry, register_model
    from central.store import Store
    from edge.messages import SegmentMessage, Topics
    from edge.model import load_model_directory

    own = work is None
    work = Path(tempfile.mkdtemp(prefix="bench-primitive-agreement-")) if own else Path(work)
    try:
        plain, _, frames = device_segments(seeds, minutes, model_dir, progress)
        truth = {seg.segment_id: label for seg, label in plain.values()}
        k_true = len(set(truth.values()))
        registry_root = work / "models"
        register_model(registry_root, model_dir)
        registry = ModelRegistry(registry_root)
        topics = Topics("bench", "ws-1")
        rows: list[dict] = []
        with Store(work / "central.sqlite", synchronous="normal") as store:
            msgs = [SegmentMessage.from_segment(seg, device_id="ws-1", site="bench", boot_id="b", seq=i).to_json()
                    for i, (seg, _) in enumerate(plain.values())]
            store.ingest([(validate_segment(topics.segments, m), topics.segments) for m in msgs], [])
            runs = [("transformer", f"k={k_true} true classes", ClusterOptions(k=k_true)),
                    ("transformer", "k by the default criterion (cosine silhouette 2-12)", ClusterOptions()),
                    ("motion", f"k={k_true} true classes", ClusterOptions(k=k_true))]
            for method, how, options in runs:
                run = run_clustering(store, registry, methods=(method,), options=options, truth=truth)
                out = work / f"model-{run.run_id}"
                exported = export_library(store, registry, out, run_id=run.run_id)
                central = store.assignments(run.run_id, [s.segment_id for s, _ in plain.values()])
                labelled, _, _ = device_segments(seeds, minutes, exported.path, progress)
                row = _compare(how, run, plain, labelled, central, load_model_directory(out), frames)
                base, with_library = _pipeline_cost(seeds[0], minutes, model_dir, exported.path, repeats)
                row.update(pipeline_ms_per_frame=with_library, baseline_pipeline_ms_per_frame=base,
                           ratio_vs_baseline=with_library / base)
                rows.append(row)
        return rows
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _pipeline_cost(seed: int, minutes: float, plain_dir: Path, library_dir: Path, repeats: int) -> tuple[float, float]:
    """Median ms per frame of the device pipeline over one video without and with the library,
    the passes alternating so both see the same load on a shared machine."""
    times: dict[Path, list[float]] = {plain_dir: [], library_dir: []}
    for _ in range(repeats):
        for model_dir in (plain_dir, library_dir):
            _, ms, _ = device_segments([seed], minutes, model_dir, progress=False)
            times[model_dir].append(ms)
    return float(np.median(times[plain_dir])), float(np.median(times[library_dir]))


def _compare(how: str, run, plain: dict, labelled: dict, central: dict, model, frames: int) -> dict:
    """The agreement row of one run: segments matched by (seed, start, end); central's cluster of
    the first pass's segment against the device's label of the same span in the second pass."""
    from edge.tokenizer import FSQ

    method = model.library.method
    same = diff = 0
    worst = 0.0
    for key, (seg, _) in plain.items():
        other = labelled.get(key)
        if other is None or other[0].primitive is None or seg.segment_id not in central:
            continue
        cluster, distance = central[seg.segment_id]
        label = other[0].primitive
        same += int(label.cluster == cluster)
        diff += int(label.cluster != cluster)
        worst = max(worst, abs(label.distance - distance))
    matched = same + diff
    meta = model.metadata
    fsq = FSQ(meta.fsq_levels, *meta.fsq_projection())
    times = []
    for seg, _ in plain.values():
        t0 = time.perf_counter()
        model.library.label_segment(seg, fsq)
        times.append((time.perf_counter() - t0) * 1e3)
    lib_bytes = (model.path / "primitives.npz").stat().st_size
    return {
        "name": f"device label vs central assignment: {_METHOD_NAMES.get(method, method)}, {how}",
        "k": run.primary.clustering.k, "segments_central": len(plain), "segments_matched": matched,
        "segments_device_only": len(set(labelled) - set(plain)),
        "agreement_pct": 100.0 * same / matched if matched else float("nan"), "disagreements": diff,
        "max_abs_distance_diff": worst, "nmi_vs_true": run.primary.metrics.get("nmi", float("nan")),
        "device_label_ms_per_segment": float(np.median(times)),
        "device_label_ms_per_segment_p95": float(np.percentile(times, 95)),
        "device_label_ms_per_segment_mean": float(np.mean(times)),
        "device_label_ms_per_frame_mean": float(np.sum(times)) / frames, "library_bytes": lib_bytes,
    }


_METHOD_NAMES = {"transformer": "frozen Transformer", "motion": "device motion summary"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="950-959", help="HELD-OUT seeds (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=MINUTES)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model directory (default: the shipped model)")
    p.add_argument("--repeats", type=int, default=7, help="alternating passes for the cost figure")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from export.tokenizer.dataset import parse_seed_range

    seeds = parse_seed_range(args.seeds)
    if any(not 950 <= s <= 999 for s in seeds):
        raise SystemExit(f"seeds {args.seeds} are not all HELD-OUT seeds (950-999)")
    model = Path(args.model)
    if not (model / "manifest.json").is_file():
        raise SystemExit(f"--model {model} is not a model directory (no manifest.json); pass one with a tokenizer")
    rows = agreement_rows(seeds, args.minutes, model, progress=not args.quiet, repeats=args.repeats)
    print_table(rows, title="primitive library: device labels vs central assignments")
    print(f"seeds {args.seeds} (HELD-OUT), {args.minutes:g} min each, model {model}")
    write_results("primitive_agreement", rows, extra={"seeds": args.seeds, "minutes": args.minutes,
                                                      "model": str(model)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
