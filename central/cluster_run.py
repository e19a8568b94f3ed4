"""One clustering run over stored segments: select -> z_q (registry) -> embed -> cluster -> save.

`run_clustering` is what `laps-central cluster` calls. It reads the selected segments from the
store in chunks (bounded memory), rebuilds each segment's z_q tokens from its codes with its
model version's FSQ projection, embeds every chunk with each requested method (the frozen
Transformer, LAPS, and the two pooling baselines, in the same pass), clusters each method's
embeddings with the same options and seed, scores them, and records the LAPS clustering
(cluster id and distance per segment, the k curve and every method's scores) as a run in the
store, for the report and the dataset export.

Embeddings of one method are held in RAM when they fit the memory budget, otherwise in a
disk-backed `np.memmap` under a work folder, which switches clustering to its mini-batch path.
One model version per run: two tokenizers' latent spaces are not comparable.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from central.clustering import (ClusterOptions, Clustering, cluster_embeddings, cluster_metrics, max_k,
                               progress_bar)
from central.embedding import DEFAULT_METHODS, METHODS, MOTION_METHODS, EmbeddingConfig, MethodEmbedder, embedding_dim
from central.registry import ModelRegistry, codes_to_z_q
from central.store import Selection
from central.store_protocol import CentralStore
from central.store_sql import StoredSegment
from edge.errors import ConfigError
from edge.segments import uuid7

log = logging.getLogger(__name__)

#: the method whose clustering is the run's result (the others are baselines in its scores)
PRIMARY_METHOD = "transformer"
#: how the saved method is chosen: "laps" = the LAPS frozen Transformer (when it ran), "best" =
#: the best cosine silhouette (ties: the higher Calinski-Harabasz)
SAVE_RULES = ("laps", "best")
#: default RAM for embeddings before switching to the memmap / mini-batch path
DEFAULT_MEMORY_BUDGET = 2 * 1024**3


@dataclass
class MethodResult:
    """One method's embeddings (raw, (n, dim)), clustering, scores and timings (seconds)."""

    method: str
    embeddings: np.ndarray
    clustering: Clustering
    metrics: dict[str, float]
    embed_seconds: float
    cluster_seconds: float
    #: rows of the run that `embeddings` holds (None: all); a disk-backed run keeps a sample
    embedding_rows: np.ndarray | None = None


@dataclass
class ClusterRun:
    """A finished run. Per-segment arrays are in the run's order (start time, then id)."""

    run_id: str
    model_version: str
    selection: Selection
    segment_ids: list[str]
    devices: list[str]
    durations_s: np.ndarray
    results: dict[str, MethodResult]
    skipped_no_codes: int = 0
    truth: list | None = None
    options: ClusterOptions = field(default_factory=ClusterOptions)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    #: the rule that picked the saved method (SAVE_RULES)
    save_rule: str = "laps"
    #: what clustered: "single-process", or "spark <master URL>" (central/spark_cluster.py)
    engine: str = "single-process"
    #: segments left out because a motion method ran and they carry no motion summary
    skipped_no_motion: int = 0

    @property
    def primary(self) -> MethodResult:
        """The saved method's result: the run's clustering (the others are its baselines)."""
        return self.results[saved_method(self.results, self.save_rule)]


def saved_method(results: Mapping[str, "MethodResult"], rule: str = "laps") -> str:
    """The method a run saves under `rule` (SAVE_RULES): "laps" keeps the LAPS embedding when it
    ran (else the first); "best" the highest cosine silhouette, then Calinski-Harabasz."""
    if rule == "best":
        def key(m: str) -> tuple[float, float]:
            s = results[m].metrics
            sil, ch = s.get("silhouette_cosine", float("nan")), s.get("calinski_harabasz", float("nan"))
            return (-1e9 if sil != sil else sil, -1e9 if ch != ch else ch)

        return max(results, key=key)
    return PRIMARY_METHOD if PRIMARY_METHOD in results else next(iter(results))


def pick_model_version(store: CentralStore, selection: Selection) -> str:
    """The selection's model version: the one given, or the only one present.
    Several versions without a choice is a `ConfigError` listing them (their latent spaces
    differ, so they are clustered separately)."""
    if selection.model_version:
        return selection.model_version
    versions = store.model_versions(selection)
    if not versions:
        raise ConfigError(f"no stored segments match the selection ({selection.describe()}); widen it or check the ingest")
    if len(versions) > 1:
        listing = ", ".join(f"{v} ({n})" for v, n in versions.items())
        raise ConfigError(f"the selection holds segments of {len(versions)} model versions: {listing}; pass "
                          "--model-version (each tokenizer's latent space is clustered on its own)")
    return next(iter(versions))


def check_run_request(methods: tuple[str, ...], save_rule: str) -> None:
    """One-line `ConfigError` for an unknown save rule or embedding method (both engines)."""
    if save_rule not in SAVE_RULES:
        raise ConfigError(f"--save-method {save_rule!r} is not known; use {' or '.join(SAVE_RULES)}")
    for m in methods:
        if m not in METHODS:
            raise ConfigError(f"embedding method {m!r} is not known; use some of {', '.join(METHODS)}")


def pinned_selection(store: CentralStore, selection: Selection) -> Selection:
    """The selection with its model version fixed (`pick_model_version`): one version per run."""
    version = pick_model_version(store, selection)
    return Selection(selection.since_ms, selection.until_ms, selection.site, selection.device_id, version)


def run_clustering(
    store: CentralStore,
    registry: ModelRegistry,
    selection: Selection = Selection(),
    *,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    options: ClusterOptions = ClusterOptions(),
    embedding: EmbeddingConfig = EmbeddingConfig(),
    truth: Mapping[str, object] | None = None,
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
    save_rule: str = "laps",
    workdir: str | os.PathLike | None = None,
    chunk_segments: int = 4096,
    save: bool = True,
    progress: bool = False,
) -> ClusterRun:
    """Cluster the selected segments with every method in `methods`; save the primary as a run.

    truth: segment_id -> ground-truth label (synthetic data); NMI/ARI/Hungarian accuracy are
    then scored on the segments it names. Raises `ConfigError` for an empty selection, several
    model versions, or too few segments.
    """
    check_run_request(methods, save_rule)
    selection = pinned_selection(store, selection)
    version = selection.model_version
    n_max = store.count(selection)
    if n_max == 0:
        raise ConfigError(f"no stored segments match the selection ({selection.describe()}); widen it or check "
                          f"--model-version against the stored versions: {', '.join(store.model_versions()) or 'none'}")
    if n_max < 2:
        raise ConfigError(f"only {n_max} segment(s) match ({selection.describe()}); clustering needs at least 2")
    embedder = SegmentEmbedder(registry, version, methods, embedding)
    dims = embedder.dims
    need = n_max * sum(dims.values()) * 4
    own_workdir = None
    if need > memory_budget_bytes:
        own_workdir = Path(tempfile.mkdtemp(prefix="laps-cluster-", dir=workdir or store.scratch_dir))
        log.info("embeddings need %.1f GiB > budget %.1f GiB: using disk-backed arrays in %s and mini-batch k-means",
                 need / 1024**3, memory_budget_bytes / 1024**3, own_workdir)
    try:
        arrays = {m: _allocate(own_workdir, m, n_max, dims[m]) for m in methods}
        ids: list[str] = []
        devices: list[str] = []
        durations: list[float] = []
        skipped = 0
        timing = {m: 0.0 for m in methods}
        bar = progress_bar(progress, n_max, "embedding", "seg")
        skipped_motion = 0
        for chunk in store.iter_segments(selection, chunk=chunk_segments):
            usable, no_codes, no_motion = usable_segments(chunk, methods)
            skipped += no_codes
            skipped_motion += no_motion
            if usable:
                row = len(ids)
                motions = [s.motion for s in usable] if embedder.needs_motion else None
                for m, emb in embedder.embed([s.codes for s in usable], timing, motions).items():
                    arrays[m][row:row + len(usable)] = emb
                ids.extend(s.segment_id for s in usable)
                devices.extend(s.device_id for s in usable)
                durations.extend(s.duration_s for s in usable)
            bar.update(len(chunk))
        bar.close()
        n = len(ids)
        warn_skipped(skipped, skipped_motion)
        if n < 2:
            raise ConfigError(too_few_message(n, selection, skipped_motion))
        if options.k is not None and options.k > n:
            raise ConfigError(f"k = {options.k} is more than the {n} segments selected; choose a smaller --k")
        options = _fit_k_range(options, n)
        truth_list = [truth.get(s) for s in ids] if truth is not None else None
        results: dict[str, MethodResult] = {}
        for m in methods:
            x = arrays[m][:n]
            t0 = time.perf_counter()
            clustering = cluster_embeddings(x, options, progress=progress)
            t_cluster = time.perf_counter() - t0
            scores = cluster_metrics(x, clustering, truth_list, sample=options.silhouette_sample,
                                     big_sample=options.metrics_sample, seed=options.seed)
            results[m] = MethodResult(m, x, clustering, scores, timing[m], t_cluster)
            log.info("%s: k = %d, silhouette %.3f, CH %.1f, DB %.3f%s", m, clustering.k, scores["silhouette_cosine"],
                     scores["calinski_harabasz"], scores["davies_bouldin"],
                     f", NMI {scores['nmi']:.3f}, ARI {scores['ari']:.3f}" if "nmi" in scores else "")
        run = ClusterRun(str(uuid7()), version, selection, ids, devices, np.asarray(durations, np.float64), results,
                         skipped, truth_list, options, embedding, save_rule, skipped_no_motion=skipped_motion)
        if save:
            save_run(store, run)
        if own_workdir is not None:
            # Keep the arrays readable after the work folder is removed (the report needs them).
            rng = np.random.default_rng(options.seed)
            rows = np.sort(rng.choice(n, size=min(n, options.metrics_sample), replace=False))
            for res in run.results.values():
                res.embeddings = np.array(res.embeddings[rows])
                res.embedding_rows = rows
        return run
    finally:
        if own_workdir is not None:
            shutil.rmtree(own_workdir, ignore_errors=True)


def usable_segments(chunk: list[StoredSegment], methods: tuple[str, ...]) -> tuple[list[StoredSegment], int, int]:
    """The segments of a store chunk both engines embed: with codes and, when a motion method
    runs, with a motion summary -> (usable, left out for no codes, left out for no motion)."""
    need_motion = any(m in MOTION_METHODS for m in methods)
    with_codes = [s for s in chunk if s.codes.size > 0]
    usable = [s for s in with_codes if s.motion is not None] if need_motion else with_codes
    return usable, len(chunk) - len(with_codes), len(with_codes) - len(usable)


def warn_skipped(no_codes: int, no_motion: int) -> None:
    """Say what a run left out (never silently)."""
    if no_codes:
        log.warning("%d segment(s) carry no codes (velocity-energy devices?) and were left out", no_codes)
    if no_motion:
        log.warning("%d segment(s) carry no motion summary (sent by devices older than the motion method) and "
                    "were left out; drop the motion method to cluster them", no_motion)


def too_few_message(n: int, selection: Selection, no_motion: int) -> str:
    """The one-line error of a run with fewer than 2 usable segments."""
    if no_motion:
        return (f"only {n} segment(s) with codes and a motion summary match ({selection.describe()}); "
                f"{no_motion} lack a motion summary (older devices): drop the motion method from --methods")
    return f"only {n} segment(s) with codes match ({selection.describe()}); clustering needs at least 2"


class SegmentEmbedder:
    """Codes -> z_q -> each method's embedding, one chunk of segments at a time: the embedding
    step of both engines. `run_clustering` calls it per store chunk; the Spark engine
    (central/spark_cluster.py) broadcasts it (FSQ projection, codebook statistics, the frozen
    encoder's weights) and calls it per exported chunk inside a pandas UDF. Both feed it the same
    chunks (`iter_segments` with the same chunk size) because the Transformer batches a chunk's
    sequences by length, and batch composition changes float32 summation order: same chunks,
    same bits. Each method is an `edge.segment_embedding.MethodEmbedder`, so a method
    added there works in both engines. Picklable; holds no model files."""

    def __init__(self, registry: ModelRegistry, version: str, methods: tuple[str, ...] = METHODS,
                 embedding: EmbeddingConfig = EmbeddingConfig()) -> None:
        self.version = version
        self.methods = tuple(methods)
        self.embedding = embedding
        self.fsq = registry.fsq(version)
        self.input_dim = self.fsq.dim
        self.input_stats = registry.codebook_stats(version)
        # Built once (the Transformer's weights are the bulk of the broadcast), not once per chunk.
        self.embedders = {m: MethodEmbedder(m, self.input_dim, embedding, self.input_stats) for m in self.methods}

    @property
    def needs_motion(self) -> bool:
        """Whether a method embeds the segments' motion summaries (`edge.motion_summary`)."""
        return any(m in MOTION_METHODS for m in self.methods)

    @property
    def dims(self) -> dict[str, int]:
        """Embedding width of each method."""
        return {m: embedding_dim(m, self.input_dim, self.embedding) for m in self.methods}

    def embed(self, codes: list[np.ndarray], timing: dict[str, float] | None = None,
              motions: list[np.ndarray] | None = None) -> dict[str, np.ndarray]:
        """(S_i,) code arrays of one chunk (each S_i >= 1) -> {method: (n, dim) float32}.
        timing: method -> seconds, accumulated when given. motions: the segments' (MOTION_DIM,)
        motion summaries, in the same order; needed when a motion method runs."""
        if self.needs_motion and (motions is None or len(motions) != len(codes)
                                  or any(m is None for m in motions)):
            raise ValueError("a motion method needs one motion summary per segment")
        seqs = [codes_to_z_q(self.fsq, c, self.version) for c in codes]
        out: dict[str, np.ndarray] = {}
        for m in self.methods:
            t0 = time.perf_counter()
            out[m] = self.embedders[m].embed(motions if m in MOTION_METHODS else seqs)
            if timing is not None:
                timing[m] = timing.get(m, 0.0) + time.perf_counter() - t0
        return out


def _fit_k_range(options: ClusterOptions, n: int) -> ClusterOptions:
    """The k range to search over `n` segments: the operator's range must fit (one-line
    `ConfigError` otherwise: 2-500 over 136 segments ran two minutes of degenerate k-means);
    the default range is narrowed to what fits."""
    if options.k is not None:
        return options
    limit = max_k(n)
    if limit < 2:
        raise ConfigError(f"{n} segments are too few to choose k; pass --k 2 or select more segments")
    if options.k_max <= limit:
        return options
    if options.k_range_given:
        raise ConfigError(f"--k-range {options.k_min}-{options.k_max} asks for up to {options.k_max} clusters of {n} "
                          f"segments; k can be at most {limit} (two segments per cluster on average): use "
                          f"--k-range {min(options.k_min, limit)}-{limit} or less")
    log.info("k range %d-%d narrowed to %d-%d for %d segments", options.k_min, options.k_max,
             min(options.k_min, limit), limit, n)
    from dataclasses import replace

    return replace(options, k_min=min(options.k_min, limit), k_max=limit)


def save_run(store: CentralStore, run: ClusterRun) -> None:
    """Record the primary method's assignments and every method's scores as one run, with its
    centres and z-score statistics in the parameters (for `laps-central library export`)."""
    primary = run.primary
    metrics = {m: r.metrics for m, r in run.results.items()}
    params = {
        "selection": asdict(run.selection), "options": asdict(run.options), "embedding": asdict(run.embedding),
        "methods": list(run.results), "primary": primary.method, "k_curve": primary.clustering.k_curve,
        "mini_batch": primary.clustering.mini_batch, "skipped_no_codes": run.skipped_no_codes,
        "skipped_no_motion": run.skipped_no_motion,
        "save_rule": run.save_rule, "engine": run.engine,
        # What a primitive library needs besides the model (`central.library_export`): the
        # centres and the z-score statistics the run assigned with (floats round-trip exactly).
        "primitives": {"centers": primary.clustering.centers.tolist(),
                       "feature_mean": np.asarray(primary.clustering.mean, np.float64).tolist(),
                       "feature_std": np.asarray(primary.clustering.std, np.float64).tolist()},
    }
    store.save_cluster_run(
        run.run_id, model_version=run.model_version, method=primary.method, k=primary.clustering.k, params=params,
        metrics=metrics,
        assignments=zip(run.segment_ids, primary.clustering.labels.tolist(), primary.clustering.distances.tolist()),
    )


def _allocate(workdir: Path | None, method: str, n: int, dim: int) -> np.ndarray:
    if workdir is None:
        return np.zeros((n, dim), np.float32)
    return np.lib.format.open_memmap(workdir / f"{method}.npy", mode="w+", dtype=np.float32, shape=(n, dim))
