"""Segmentation on REAL human-labelled data: the project's back half vs its peers, one table.

Data (not in the repository; rebuild with `scripts/build_real_labelled.py`, sources, commits,
licences and sha256 in `benchmarks/data/real_labelled_manifest.json`):
- ha4m: HA4M (Cicirelli et al., Scientific Data 2022; article CC BY 4.0): a worker assembles an
  epicyclic gear train, 12 actions back to back; Azure Kinect arm skeleton, 30 fps; the 3
  labelled demo videos of the public feature repository (one subject);
- mocap6: CMU motion capture (free for all uses), 6 exercise sequences of 2 subjects annotated by
  Fox, Hughes et al. (BSD 2-Clause); 12 joint angles, 10 fps.

One ground truth per video: every run of one action label is a segment; background frames
(HA4M's label 0, before the first and after the last action) are gaps, not segments, as rest is
in the synthetic ground truth. One scorer for every method (`benchmarks.scoring`).

Every figure on a video is computed without that video's labels: K (equal split, ABD, TW-FINCH)
and the period are the means over the OTHER videos of the same dataset; the labelled calibration
uses the other videos' labels; the unsupervised one uses no label. The features are standardised
per video and per dimension (z-score over the video's own frames, no labels) before every method,
so that joint positions in mm and angles in degrees weigh alike (`--features raw` turns that off).

Methods: see `benchmarks/peers/registry.py` (add a row there). Run:
`python -m benchmarks.real_segmentation` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

import numpy as np

from benchmarks.common import print_table, write_results
from benchmarks.peers.context import leave_one_out
from benchmarks.peers.registry import Method, methods_named
from benchmarks.real_labelled.corpus import DEFAULT_ROOT, LabelledVideo, load_corpus
from benchmarks.real_labelled.manifest import load_manifest
from benchmarks.scoring import segmentation_scores
from edge.errors import LapsError


def standardise(video: LabelledVideo) -> LabelledVideo:
    """The video with each feature dimension z-scored over its own frames (constant dims -> 0)."""
    x = video.features.astype(np.float64)
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return replace(video, features=z.astype(np.float32))


def predict(method: Method, videos: list[LabelledVideo]) -> list[np.ndarray]:
    """Segments of `method` on every video of ONE dataset, each with its leave-one-out context."""
    out = []
    for i, v in enumerate(videos):
        segs = np.asarray(method.segment(v.features, v.fps, leave_one_out(videos, i)), dtype=np.float64)
        segs = segs.reshape(-1, 2)
        out.append(np.clip(segs, 0.0, v.duration_s))
    return out


def dataset_rows(dataset: str, videos: list[LabelledVideo], methods: tuple[Method, ...]) -> tuple[list[dict], dict]:
    """One row per method for one dataset, and {method: predictions} for pooling."""
    rows, preds = [], {}
    gts = [v.segments() for v in videos]
    durations = [v.duration_s for v in videos]
    for m in methods:
        t0 = time.perf_counter()
        p = predict(m, videos)
        elapsed = time.perf_counter() - t0
        preds[m.name] = p
        rows.append({"dataset": dataset, "name": m.name, "videos": len(videos),
                     **segmentation_scores(p, gts, durations), "seconds": elapsed})
    return rows, preds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(DEFAULT_ROOT), help="built corpus folder (default: %(default)s)")
    parser.add_argument("--datasets", nargs="*", default=None, help="datasets to score (default: all built)")
    parser.add_argument("--methods", nargs="*", default=None, help="method names to run (default: all)")
    parser.add_argument("--features", choices=("zscore", "raw"), default="zscore",
                        help="per-video z-score of each feature dimension, or the features as stored (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        methods = methods_named(args.methods)
        corpus = load_corpus(args.corpus, args.datasets)
    except (LapsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.features == "zscore":
        corpus = [standardise(v) for v in corpus]

    by_dataset: dict[str, list[LabelledVideo]] = {}
    for v in corpus:
        by_dataset.setdefault(v.dataset, []).append(v)
    rows, pooled = [], {m.name: [] for m in methods}
    try:
        for dataset, videos in by_dataset.items():
            r, p = dataset_rows(dataset, videos, methods)
            rows.extend(r)
            for name, segs in p.items():
                pooled[name].extend(segs)
    except LapsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if len(by_dataset) > 1:
        gts = [v.segments() for v in corpus]
        durations = [v.duration_s for v in corpus]
        for m in methods:
            rows.append({"dataset": "all", "name": m.name, "videos": len(corpus),
                         **segmentation_scores(pooled[m.name], gts, durations),
                         "seconds": float(sum(r["seconds"] for r in rows if r["name"] == m.name))})

    periodic_f1 = {r["dataset"]: r["f1_at_2s"] for r in rows if r["name"] == "periodic"}
    for row in rows:
        if row["dataset"] in periodic_f1:
            row["f1_at_2s_vs_periodic"] = row["f1_at_2s"] - periodic_f1[row["dataset"]]
    shown = ["dataset", "name", "videos", "f1_at_2s", "f1_at_5s", "seg_f1_at_10", "seg_f1_at_25", "seg_f1_at_50",
             "pred_segments", "true_segments", "median_pred_s", "median_true_s"]
    print_table([{k: r[k] for k in shown} for r in rows],
                title=f"Real labelled data: {len(corpus)} videos in {len(by_dataset)} datasets "
                      f"({', '.join(by_dataset)}); K and period leave-one-video-out; features {args.features}")
    manifest = load_manifest()
    write_results("real_segmentation", rows, extra={
        "features": args.features,
        "videos": {d: [v.name for v in vs] for d, vs in by_dataset.items()},
        "fps": {d: vs[0].fps for d, vs in by_dataset.items()},
        "sources": {d: {"repository": s.repository, "commit": s.commit, "dataset_licence": s.dataset_licence,
                        "repository_licence": s.repository_licence}
                    for d, s in manifest.items() if d in by_dataset},
        "methods": {m.name: m.uses for m in methods},
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
