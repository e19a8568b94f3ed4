"""Clustering on Apache Spark: `laps-central cluster --engine spark --master URL`.

The same run as `central.cluster_run.run_clustering`, for selections that outgrow one process:

1. export: the store's `iter_segments` chunks (the same chunk size as the single-process run)
   -> one Parquet file per chunk in a work folder (codes, ids, device, duration, the run-order
   row number). Any store that implements `iter_segments` works; no JDBC driver is needed.
2. embed: a pandas UDF (`mapInPandas`) runs the broadcast `SegmentEmbedder` (FSQ projection,
   codebook statistics, frozen-encoder weights) once per exported chunk, so every segment is
   embedded in the same batch composition as in the single-process run: the same bits.
3. standardise: per-feature mean and population standard deviation of every method's
   embeddings with Spark's `Summarizer` (global aggregates), then z-score and L2 per row
   with `central.clustering.normalize_rows` in a pandas UDF (the single-process arithmetic).
4. k-means: k (when not given) and the initial centres come from the single-process code on the
   same random sample of rows as its mini-batch path (`choose_k`, then `kmeans` with n_init
   restarts on at most `silhouette_sample` rows); Spark MLlib k-means (Lloyd, Euclidean) then
   refines those centres over every row. Euclidean on L2-normalised rows is the objective
   the single-process path minimises. MLlib's `distanceMeasure="cosine"` would re-normalise
   the centres each step (spherical k-means: a different objective, and the stored distance
   would become 1 - cos instead of the Euclidean distance every other run stores), so it is
   not used. With at most `silhouette_sample` rows the sample is every row and the result is
   the single-process clustering.
5. assign and save: nearest centre and distance per row in a pandas UDF; the run record and
   assignments go to the store with `save_run`, as the single-process run writes them. The
   scores are computed on a random sample of rows (all rows up to `metrics_sample`).

The driver holds O(n) small arrays (ids, labels, distances) and O(sample x dim) embeddings;
embeddings of every row live only in the work folder. On a cluster (`--master spark://...`,
`yarn`, `k8s://...`), the work folder must be on storage every executor reads (NFS, HDFS
mount) and the executors need this package installed (`pip install laps-edge[spark]`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np

from central.cluster_run import (ClusterRun, MethodResult, SegmentEmbedder, _fit_k_range, check_run_request,
                                 pinned_selection, save_run, too_few_message, usable_segments, warn_skipped)
from central.clustering import ClusterOptions, Clustering, choose_k, cluster_metrics, kmeans, normalize_rows, progress_bar
from central.embedding import DEFAULT_METHODS, EmbeddingConfig
from central.registry import ModelRegistry
from central.store import Selection
from central.store_protocol import CentralStore
from edge.errors import ConfigError
from edge.motion_summary import motion_from_bytes
from edge.segments import uuid7

log = logging.getLogger(__name__)

#: how to get the missing pieces (every "cannot start Spark" error names one)
INSTALL_PYSPARK = "install it with `pip install 'laps-edge[spark]'` (scripts/setup.sh does)"
INSTALL_JAVA = "install Java 17 with `apt-get install openjdk-17-jre-headless` or point JAVA_HOME at one"
#: MLlib k-means iterations from the sample-seeded centres (each is one pass over the rows)
MAX_ITERATIONS = 30
#: MLlib's convergence threshold: every centre moved less than this (normalised space)
EPSILON = 1e-4
DEFAULT_MASTER = "local[*]"


# --- session ---------------------------------------------------------------------------------------

def check_spark_available() -> None:
    """A one-line `ConfigError` naming the fix when pyspark or a Java >= 17 runtime is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(f"--engine spark needs pyspark, which is not installed; {INSTALL_PYSPARK}") from None
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        where = f"JAVA_HOME={java_home} has no bin/java" if java_home else "no `java` on PATH"
        raise ConfigError(f"--engine spark needs a Java runtime ({where}); {INSTALL_JAVA}")
    try:
        text = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ConfigError(f"--engine spark: {java} -version failed ({err}); {INSTALL_JAVA}") from None
    major = java_major(text)
    if major is not None and major < 17:
        raise ConfigError(f"--engine spark needs Java 17 or newer, {java} is Java {major}; {INSTALL_JAVA}")


def java_major(version_text: str) -> int | None:
    """The major version in `java -version` output ('openjdk version "17.0.15"' -> 17,
    '"1.8.0_392"' -> 8); None when it cannot be read."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_text)
    if not m:
        return None
    first = int(m.group(1))
    return int(m.group(2) or 0) if first == 1 else first


@contextlib.contextmanager
def spark_session(master: str = DEFAULT_MASTER, conf: Mapping[str, str] | None = None,
                  progress: bool = False) -> Iterator[object]:
    """A SparkSession on `master` (any Spark master URL) that logs only errors, stopped on exit
    (a session already active in this process is used as it is and left running).

    conf: extra Spark settings (they win over the defaults here: no web UI, Arrow for pandas
    UDFs, the console progress bar only when `progress`). The Python workers run this
    interpreter (`PYSPARK_PYTHON` unless already set).
    """
    check_spark_available()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        # A session this process already runs (a notebook, a test module): use it, leave it running.
        if active.sparkContext.master != master:
            log.warning("using the running Spark session on %s, not %s", active.sparkContext.master, master)
        yield active
        return
    log_dir = Path(tempfile.mkdtemp(prefix="laps-spark-log-"))
    log4j = log_dir / "log4j2.properties"
    # Spark's default log4j profile prints INFO/WARN lines by the dozen before any setLogLevel call.
    # Errors only. Spark treats PySpark as a shell and, when its own loggers' level differs from the
    # root's, resets the root and says so on stderr: both are set to ERROR here.
    log4j.write_text("rootLogger.level = error\nrootLogger.appenderRef.stderr.ref = console\n"
                     "appender.console.type = Console\nappender.console.name = console\n"
                     "appender.console.target = SYSTEM_ERR\nappender.console.layout.type = PatternLayout\n"
                     "appender.console.layout.pattern = spark %p %c{1}: %m%n\n"
                     + "".join(f"logger.l{i}.name = {name}\nlogger.l{i}.level = error\n" for i, name in
                               enumerate(("org.apache.spark", "org.apache.hadoop", "org.apache.parquet",
                                          "org.sparkproject", "io.netty", "org.apache.arrow"))))
    settings = {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "true" if progress else "false",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{log4j}",
        "spark.executor.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{log4j}",
        "spark.sql.session.timeZone": "UTC",
    }
    settings.update(conf or {})
    builder = SparkSession.builder.master(master).appName("laps-central cluster")
    for key, value in settings.items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as err:  # py4j / PySparkRuntimeError: the JVM did not come up
        shutil.rmtree(log_dir, ignore_errors=True)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"Spark did not start on master {master!r} ({first}); check --master and that Java 17 "
                          f"runs ({INSTALL_JAVA})") from None
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


# --- the run ---------------------------------------------------------------------------------------

@dataclass
class Export:
    """The selected segments as Parquet chunk files: `path` (a folder), `n` usable segments
    (rows 0..n-1 in run order), `chunks` files, `skipped_no_codes` and `skipped_no_motion` left
    out (`central.cluster_run.usable_segments`)."""

    path: Path
    n: int
    chunks: int
    skipped_no_codes: int
    skipped_no_motion: int = 0


def run_clustering_spark(
    store: CentralStore,
    registry: ModelRegistry,
    selection: Selection = Selection(),
    *,
    spark=None,
    master: str = DEFAULT_MASTER,
    spark_conf: Mapping[str, str] | None = None,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    options: ClusterOptions = ClusterOptions(),
    embedding: EmbeddingConfig = EmbeddingConfig(),
    truth: Mapping[str, object] | None = None,
    save_rule: str = "laps",
    workdir: str | os.PathLike | None = None,
    chunk_segments: int = 4096,
    save: bool = True,
    progress: bool = False,
) -> ClusterRun:
    """`run_clustering` on Spark: the same selection, options, seed, run record and assignments.

    spark: an existing SparkSession (kept open); None = start one on `master` with
    `spark_conf` and stop it at the end. workdir: where the export and intermediate Parquet go
    (a fresh sub-folder, removed at the end; default: the store's scratch folder).
    Raises `ConfigError` like `run_clustering` (empty selection, several model versions, too few
    segments), and when pyspark or Java is missing.
    """
    check_run_request(methods, save_rule)
    if spark is None:
        check_spark_available()  # before the export: a missing Java should not cost an export first
    selection = pinned_selection(store, selection)
    version = selection.model_version
    n_max = store.count(selection)
    if n_max < 2:
        raise ConfigError(f"only {n_max} segment(s) match ({selection.describe()}); clustering needs at least 2")
    embedder = SegmentEmbedder(registry, version, methods, embedding)
    base = workdir or store.scratch_dir
    work = Path(tempfile.mkdtemp(prefix="laps-cluster-spark-", dir=base))
    try:
        export = export_segments(store, selection, work / "segments", chunk_segments, progress, methods)
        warn_skipped(export.skipped_no_codes, export.skipped_no_motion)
        if export.n < 2:
            raise ConfigError(too_few_message(export.n, selection, export.skipped_no_motion))
        if options.k is not None and options.k > export.n:
            raise ConfigError(f"k = {options.k} is more than the {export.n} segments selected; choose a smaller --k")
        options = _fit_k_range(options, export.n)
        session = contextlib.nullcontext(spark) if spark is not None else spark_session(master, spark_conf, progress)
        with session as active:
            results = cluster_export(active, export, embedder, options, work, progress=progress)
        ids, devices, durations = read_export_columns(export)
        truth_list = [truth.get(s) for s in ids] if truth is not None else None
        for res in results.values():
            rows = res.embedding_rows if res.embedding_rows is not None else np.arange(export.n)
            sample_truth = [truth_list[i] for i in rows] if truth_list is not None else None
            res.metrics = _scores(res, rows, sample_truth, options)
            s = res.metrics
            log.info("%s: k = %d, silhouette %.3f, CH %.1f, DB %.3f%s", res.method, res.clustering.k,
                     s["silhouette_cosine"], s["calinski_harabasz"], s["davies_bouldin"],
                     f", NMI {s['nmi']:.3f}, ARI {s['ari']:.3f}" if "nmi" in s else "")
        run = ClusterRun(str(uuid7()), version, selection, ids, devices, durations, results,
                         export.skipped_no_codes, truth_list, options, embedding, save_rule,
                         engine=f"spark {master if spark is None else spark.sparkContext.master}",
                         skipped_no_motion=export.skipped_no_motion)
        if save:
            save_run(store, run)
        return run
    finally:
        shutil.rmtree(work, ignore_errors=True)


def export_segments(store: CentralStore, selection: Selection, out: Path, chunk_segments: int = 4096,
                    progress: bool = False, methods: tuple[str, ...] = DEFAULT_METHODS) -> Export:
    """The selected segments the `methods` can embed (`usable_segments`: with codes, and with a
    motion summary when a motion method runs) -> `out/part-<chunk>.parquet`, one file per store
    chunk, one row group each, so Spark never splits a chunk across tasks. Columns: chunk,
    chunk_rows, row (run order), segment_id, device_id, duration_s, codes (list<int32>), motion
    (the summary's float16 bytes; null when the segment has none)."""
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(progress, store.count(selection), "export for spark", "seg")
    n = chunks = skipped = skipped_motion = 0
    for chunk in store.iter_segments(selection, chunk=chunk_segments):
        usable, no_codes, no_motion = usable_segments(chunk, methods)
        skipped += no_codes
        skipped_motion += no_motion
        bar.update(len(chunk))
        if not usable:
            continue
        pq.write_table(chunk_table([s.codes for s in usable], chunks, n, [s.segment_id for s in usable],
                                   [s.device_id for s in usable], [s.duration_s for s in usable],
                                   [s.motion for s in usable]),
                       out / f"part-{chunks:06d}.parquet", row_group_size=len(usable) + 1)
        n += len(usable)
        chunks += 1
    bar.close()
    return Export(out, n, chunks, skipped, skipped_motion)


def chunk_table(codes: list[np.ndarray], chunk: int, first_row: int, segment_ids: list[str],
                device_ids: list[str], durations_s: list[float], motions: list[np.ndarray | None] | None = None):
    """One export chunk as a pyarrow Table (the columns `export_segments` documents)."""
    import pyarrow as pa

    k = len(codes)
    lengths = np.fromiter((c.size for c in codes), np.int64, count=k)
    offsets = np.zeros(k + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate(codes).astype(np.int32) if k else np.zeros(0, np.int32)
    return pa.table({
        "chunk": pa.array(np.full(k, chunk, np.int32)),
        "chunk_rows": pa.array(np.full(k, k, np.int32)),
        "row": pa.array(np.arange(first_row, first_row + k, dtype=np.int64)),
        "segment_id": pa.array(segment_ids, pa.string()),
        "device_id": pa.array(device_ids, pa.string()),
        "duration_s": pa.array(np.asarray(durations_s, np.float64)),
        "codes": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
        # float16 exactly as stored: the summary's bits reach the UDF unchanged
        "motion": pa.array([None if m is None else np.asarray(m, "<f2").tobytes() for m in (motions or [None] * k)],
                           pa.binary()),
    })


def read_export_columns(export: Export) -> tuple[list[str], list[str], np.ndarray]:
    """(segment ids, device ids, durations in seconds) of the export, in run order."""
    import pyarrow.parquet as pq

    ids: list[str] = []
    devices: list[str] = []
    durations: list[np.ndarray] = []
    for part in sorted(export.path.glob("part-*.parquet")):
        t = pq.read_table(part, columns=["segment_id", "device_id", "duration_s"])
        ids.extend(t.column("segment_id").to_pylist())
        devices.extend(t.column("device_id").to_pylist())
        durations.append(t.column("duration_s").to_numpy())
    return ids, devices, (np.concatenate(durations) if durations else np.zeros(0, np.float64))


def cluster_export(spark, export: Export, embedder: SegmentEmbedder, options: ClusterOptions, work: Path,
                   progress: bool = False) -> dict[str, MethodResult]:
    """Steps 2-5 of the module docstring over an export: {method: MethodResult} with labels and
    distances of every row (run order), and the raw embeddings of the scoring sample
    (`embedding_rows`; None = every row). `metrics` is left empty (the caller scores)."""
    n = export.n
    methods = embedder.methods
    step = _Steps(progress)
    emb_path = work / "embeddings"
    step.start(f"embedding {n:,} segments ({', '.join(methods)})")
    t0 = time.perf_counter()
    emb = embed_export(spark, export, embedder, emb_path)
    embed_s = time.perf_counter() - t0
    step.done()
    step.start("feature statistics (Summarizer)")
    stats = _global_stats(emb, methods, n)
    step.done()
    rng_rows = _sample_rows(n, options)
    wanted = np.union1d(rng_rows["k"], rng_rows["metrics"])
    step.start(f"collecting a sample of {wanted.size:,} rows")
    sample = _collect_rows(spark, emb, methods, wanted)
    step.done()
    fitted: dict[str, tuple[int, list[tuple[int, float]], np.ndarray, float]] = {}
    for m in methods:
        t0 = time.perf_counter()
        mean, std = stats[m]
        xs = normalize_rows(sample[m][np.searchsorted(wanted, rng_rows["k"])], mean, std)
        curve: list[tuple[int, float]] = []
        k = options.k
        if k is None:
            step.start(f"{m}: choosing k in {options.k_min}-{options.k_max} on {xs.shape[0]:,} rows")
            k, curve = choose_k(xs, options.k_min, options.k_max, options.seed, options.n_init, xs.shape[0])
            step.done()
        _, init = kmeans(xs, k, options.seed, options.n_init)
        step.start(f"{m}: MLlib k-means, k = {k}, over {n:,} rows")
        centers = _mllib_kmeans(emb, m, mean, std, init, options.seed)
        step.done()
        fitted[m] = (k, curve, centers, time.perf_counter() - t0)
    step.start(f"assigning {n:,} rows to their nearest centres")
    t0 = time.perf_counter()
    assigned = _assign(spark, emb, {m: (*stats[m], fitted[m][2]) for m in methods}, n, work / "labels")
    assign_s = time.perf_counter() - t0
    step.done()
    results: dict[str, MethodResult] = {}
    mrows = rng_rows["metrics"]
    for m in methods:
        k, curve, centers, fit_s = fitted[m]
        labels, distances = assigned[m]
        mean, std = stats[m]
        clustering = Clustering(labels, centers, distances, k, curve, mean, std, False, fit_s + assign_s / len(methods))
        x_sample = sample[m][np.searchsorted(wanted, mrows)]
        results[m] = MethodResult(m, x_sample, clustering, {}, embed_s, clustering.seconds,
                                  None if mrows.size == n else mrows)
    return results


def embed_export(spark, export: Export, embedder: SegmentEmbedder, out: Path):
    """Step 2: every exported chunk embedded whole by the broadcast `embedder` in a pandas UDF ->
    Parquet at `out` (row, one array<float> column per method); returns it as a DataFrame."""
    shared = spark.sparkContext.broadcast(embedder)
    schema = "row long, " + ", ".join(f"{m} array<float>" for m in embedder.methods)
    (spark.read.parquet(str(export.path / "part-*.parquet")).select("chunk", "chunk_rows", "row", "codes", "motion")
     .mapInPandas(_embed_chunks(shared, embedder.methods), schema).write.parquet(str(out)))
    shared.unpersist()
    return spark.read.parquet(str(out))


# --- steps -----------------------------------------------------------------------------------------

def _embed_chunks(shared, methods: tuple[str, ...]):
    """mapInPandas body: gather each export chunk whole (a partition's Arrow batches can cut a
    chunk), embed it in row order with the broadcast SegmentEmbedder, emit (row, one float array
    per method)."""

    def run(batches):
        import pandas as pd

        embedder = shared.value
        pending: dict[int, list] = {}
        have: dict[int, int] = {}
        for pdf in batches:
            for chunk, part in pdf.groupby("chunk", sort=False):
                pending.setdefault(chunk, []).append(part)
                have[chunk] = have.get(chunk, 0) + len(part)
                if have[chunk] < int(part["chunk_rows"].iloc[0]):
                    continue
                whole = pd.concat(pending.pop(chunk)).sort_values("row", kind="stable")
                del have[chunk]
                motions = ([motion_from_bytes(b) for b in whole["motion"]] if embedder.needs_motion else None)
                out = embedder.embed([np.asarray(c, np.int64) for c in whole["codes"]], None, motions)
                yield pd.DataFrame({"row": whole["row"].to_numpy(), **{m: list(out[m]) for m in methods}})
        if pending:
            # A chunk split over tasks would be embedded in other batches than the single-process
            # run uses (different float bits): refuse rather than differ silently.
            raise RuntimeError(f"export chunks {sorted(pending)[:5]} reached a Spark task incomplete; "
                               "keep spark.sql.files.maxPartitionBytes above the chunk file size")

    return run


def _global_stats(emb, methods: tuple[str, ...], n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per method: per-feature mean and population standard deviation (float64) over every row,
    as `central.clustering.zscore_stats` defines them (a constant feature gets std 1)."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.ml.stat import Summarizer

    summarizer = Summarizer.metrics("mean", "variance", "count")
    row = emb.select(*[summarizer.summary(array_to_vector(m)).alias(m) for m in methods]).first()
    out = {}
    for m in methods:
        s = row[m]
        count = int(s["count"])
        mean = np.asarray(s["mean"].toArray(), np.float64)
        # Summarizer's variance is the sample variance (n - 1); z-scores here use the population one.
        var = np.asarray(s["variance"].toArray(), np.float64) * ((count - 1) / count if count else 0.0)
        std = np.sqrt(np.maximum(var, 0.0))
        std[std < 1e-12] = 1.0
        out[m] = (mean, std)
    return out


def _sample_rows(n: int, options: ClusterOptions) -> dict[str, np.ndarray]:
    """The rows k is chosen on and the centres are seeded from (the single-process mini-batch
    path's sample: the same draw), and the rows the scores are computed on (as
    `cluster_metrics` draws them)."""
    rng = np.random.default_rng(options.seed)
    k_rows = np.sort(rng.choice(n, size=min(n, max(options.silhouette_sample, 1)), replace=False))
    rng = np.random.default_rng(options.seed)
    m_rows = (np.sort(rng.choice(n, size=options.metrics_sample, replace=False)) if n > options.metrics_sample
              else np.arange(n))
    return {"k": k_rows, "metrics": m_rows}


def _collect_rows(spark, emb, methods: tuple[str, ...], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The raw embeddings of `rows` (sorted) -> {method: (len(rows), dim) float32}, in row order."""
    wanted = spark.sparkContext.broadcast(rows)

    def keep(batches):
        for pdf in batches:
            yield pdf[np.isin(pdf["row"].to_numpy(), wanted.value)]

    table = emb.mapInPandas(keep, emb.schema).toArrow().sort_by("row")
    wanted.unpersist()
    got = table.column("row").to_numpy()
    if not np.array_equal(got, rows):
        raise RuntimeError(f"collected {got.size} sample rows of {rows.size}; the embedding pass lost rows")
    return {m: np.stack(table.column(m).to_numpy(zero_copy_only=False)).astype(np.float32) for m in methods}


def _mllib_kmeans(emb, method: str, mean: np.ndarray, std: np.ndarray, init: np.ndarray, seed: int) -> np.ndarray:
    """Spark MLlib k-means (Lloyd, Euclidean) over every z-scored, L2-normalised row of
    `method`, started from `init` (k, dim) -> the final centres (k, dim) float32."""
    from pyspark.mllib.clustering import KMeans, KMeansModel

    stats = emb.sparkSession.sparkContext.broadcast((mean, std))

    def normalised(rows):
        from pyspark.mllib.linalg import DenseVector

        mu, sd = stats.value
        block: list = []
        for r in rows:
            block.append(r[0])
            if len(block) == 4096:
                yield from (DenseVector(x) for x in normalize_rows(np.asarray(block, np.float32), mu, sd))
                block = []
        if block:
            yield from (DenseVector(x) for x in normalize_rows(np.asarray(block, np.float32), mu, sd))

    # The RDD API: the DataFrame KMeans cannot start from given centres (it has no initialModel).
    rdd = emb.select(method).rdd.mapPartitions(normalised)
    model = KMeans.train(rdd, init.shape[0], maxIterations=MAX_ITERATIONS, seed=seed, epsilon=EPSILON,
                         initialModel=KMeansModel([c.astype(np.float64) for c in init]), distanceMeasure="euclidean")
    stats.unpersist()
    return np.asarray([np.asarray(c) for c in model.clusterCenters], np.float32)


def _assign(spark, emb, fitted: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], n: int,
            out: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Nearest centre and Euclidean distance of every normalised row, for every method at once
    (one pass): fitted = {method: (mean, std, centres)} -> {method: (labels int32 (n,), distances
    float32 (n,))} in run order (written to `out` as Parquet, read back by the driver)."""
    import pyarrow.dataset as ds

    from central.clustering import _nearest

    methods = list(fitted)
    shared = spark.sparkContext.broadcast(dict(fitted))

    def run(batches):
        import pandas as pd

        params = shared.value
        for pdf in batches:
            if not len(pdf):
                continue
            cols = {"row": pdf["row"].to_numpy()}
            for m, (mu, sd, c) in params.items():
                lab, dist = _nearest(normalize_rows(np.stack(pdf[m].to_numpy()), mu, sd), c)
                cols[f"label_{m}"], cols[f"distance_{m}"] = lab, dist
            yield pd.DataFrame(cols)

    schema = "row long, " + ", ".join(f"label_{m} int, distance_{m} float" for m in methods)
    emb.mapInPandas(run, schema).write.parquet(str(out))
    shared.unpersist()
    got = {m: (np.full(n, -1, np.int32), np.zeros(n, np.float32)) for m in methods}
    for batch in ds.dataset(str(out), format="parquet").to_batches():
        rows = batch.column("row").to_numpy()
        for m in methods:
            got[m][0][rows] = batch.column(f"label_{m}").to_numpy()
            got[m][1][rows] = batch.column(f"distance_{m}").to_numpy()
    for m, (labels, _) in got.items():
        if (labels < 0).any():
            raise RuntimeError(f"{int((labels < 0).sum())} rows got no {m} cluster; the assignment pass lost rows")
    return got


def _scores(res: MethodResult, rows: np.ndarray, truth: list | None, options: ClusterOptions) -> dict[str, float]:
    """`cluster_metrics` on the scoring sample (every row up to `metrics_sample`), with n and k
    of the whole run."""
    c = res.clustering
    sub = Clustering(c.labels[rows], c.centers, c.distances[rows], c.k, c.k_curve, c.mean, c.std)
    scores = cluster_metrics(res.embeddings, sub, truth, sample=options.silhouette_sample,
                             big_sample=options.metrics_sample, seed=options.seed)
    scores["n"] = float(c.labels.size)
    return scores


class _Steps:
    """One stderr line per long Spark step with its duration (Spark's own bar shows the tasks)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._t0 = 0.0
        self._what = ""

    def start(self, what: str) -> None:
        self._what, self._t0 = what, time.perf_counter()
        if self.enabled:
            print(f"spark: {what} ...", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print(f"spark: {self._what}: {time.perf_counter() - self._t0:.1f} s", file=sys.stderr, flush=True)

