"""Central clustering at fleet scale: the single-process engine against Apache Spark (local[2]).

Two parts, one table (`benchmarks/results/central_scale_clustering.json`):

1. Agreement on HELD-OUT synthetic workstation videos (seeds 950-959, 2 minutes each, all
   nuisances; never used for training or tuning): the segments the device pipeline cuts with the
   shipped tokenizer (`benchmarks.clustering.held_out_segments`), stored as segment messages in a
   SQLite store, clustered by `run_clustering` and by `run_clustering_spark` (local[2]) with the
   same options and seed, k = the number of true classes and k chosen by cosine silhouette.
   Figures: ARI between the two engines' labels, whether the embeddings are bit-identical, NMI
   against the true primitives for each, and both wall times (Spark's includes its session start).
2. Scale: n synthetic segment code sequences (8 primitives, each visiting its own 12 codes of the
   shipped model's 1920, 20 % other codes; lengths drawn like the held-out segments', median about
   6 tokens) written in chunks straight into the Spark engine's export format (Parquet, one file
   per 4096-segment chunk; the store export step is not timed), then clustered with k = 8 by
   - the single-process path (the functions `run_clustering` calls: `SegmentEmbedder` per chunk
     into an array, on disk past the 2 GiB budget, then `cluster_embeddings`, mini-batch past
     200k rows), and
   - the Spark path (`central.spark_cluster.cluster_export` on local[2], spark.driver.memory 6g),
   each in a fresh process. The embedding is MEAN POOLING of z_q (the `mean` method): the frozen
   Transformer embeds 0.6-2k segments/s on 2 cores, hours at 10M; its throughput on both engines
   is measured on a subset in a row of its own, and the time it would add at each n is computed
   from that rate (labelled as computed, not run). Peak memory: single-process = the worker's
   VmHWM; Spark = the peak of the summed RSS of the driver, the JVM (driver + executor in local
   mode) and the Python workers, sampled every 0.5 s, and the JVM's own VmHWM. Sizes not run
   are not in the table; `--sizes` chooses them.

Run: `python -m benchmarks.central_scale_clustering` (options: --help).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, write_results

HELD_OUT_SEEDS = tuple(range(950, 960))
SIZES = (1_000_000, 10_000_000)
CHUNK = 4096
K = 8
SCALE_METHOD = "mean"
SPARK_MASTER = "local[2]"
SPARK_CONF = {"spark.driver.memory": "6g", "spark.sql.shuffle.partitions": "4"}
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "edge" / "shipped_models" / "default"


# --- 1. agreement on held-out segments ---------------------------------------------------------------

def agreement_rows(seeds, work_dir: Path, minutes: float = 2.0) -> list[dict]:
    """Both engines on the held-out pipeline segments of `seeds` (see the module docstring)."""
    from benchmarks.clustering import held_out_segments
    from central.cluster_run import run_clustering
    from central.clustering import ClusterOptions
    from central.registry import ModelRegistry
    from central.spark_cluster import run_clustering_spark, spark_session
    from central.store import Store
    from edge import evaluation

    segments, _, _, desc = held_out_segments(seeds, minutes, DEFAULT_MODEL)
    registry = ModelRegistry(DEFAULT_MODEL.parent)
    version = registry.versions[0]
    store = Store(work_dir / "held-out.sqlite")
    truth = _store_segments(store, segments, registry, version)
    k_true = len(set(truth.values()))
    rows = []
    t0 = time.perf_counter()
    with spark_session(SPARK_MASTER, SPARK_CONF) as spark:
        session_s = time.perf_counter() - t0
        for how, options in ((f"k={k_true} true classes", ClusterOptions(k=k_true)),
                             ("k by cosine silhouette 2-12", ClusterOptions(k_min=2, k_max=12))):
            t0 = time.perf_counter()
            single = run_clustering(store, registry, options=options, truth=truth, save=False)
            single_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            on_spark = run_clustering_spark(store, registry, spark=spark, options=options, truth=truth, save=False,
                                            workdir=work_dir)
            spark_s = time.perf_counter() - t0
            for m, res in single.results.items():
                got = on_spark.results[m]
                same = np.array_equal(got.embeddings, res.embeddings)
                rows.append({
                    "name": f"agreement: held-out {seeds[0]}-{seeds[-1]} pipeline segments, {m}, {how}",
                    "segments": len(single.segment_ids), "k_single": res.clustering.k, "k_spark": got.clustering.k,
                    "ari_spark_vs_single": evaluation.ari(res.clustering.labels, got.clustering.labels),
                    "embeddings_bit_identical": bool(same),
                    "embedding_max_abs_diff": float(np.max(np.abs(got.embeddings - res.embeddings))),
                    "nmi_single": res.metrics["nmi"], "nmi_spark": got.metrics["nmi"],
                    "run_s_single": single_s, "run_s_spark": spark_s, "spark_session_start_s": session_s,
                    "tokens": desc,
                })
    store.close()
    return rows


def _store_segments(store, segments, registry, version: str) -> dict[str, str]:
    """Held-out segments -> segment messages in `store`; returns segment_id -> true label.
    `held_out_segments` keeps each segment's z_q tokens, not its codes: z_q is a fixed table
    row per code, so the codes are read back exactly from the codebook table."""
    from datetime import datetime, timezone

    from central.ingest import validate_segment
    from edge.messages import SegmentMessage, Topics
    from edge.segments import Segment, utc_iso, uuid7

    fsq = registry.fsq(version)
    table = fsq.z_q_from_codes(np.arange(fsq.codebook_size))
    lookup = {table[c].tobytes(): c for c in range(fsq.codebook_size)}
    origin = datetime(2026, 1, 5, tzinfo=timezone.utc)
    truth: dict[str, str] = {}
    items = []
    start = 0
    for i, s in enumerate(segments):
        codes = [lookup[np.asarray(t, np.float32).tobytes()] for t in s.tokens]
        steps = len(codes)
        ms = int(origin.timestamp() * 1000) + start * 100
        seg = Segment(str(uuid7(ms)), start, start + steps, start / 10, (start + steps) / 10, 10.0,
                      utc_iso(origin, start / 10), utc_iso(origin, (start + steps) / 10), codes, 1.0, 2.0, [],
                      version)
        device = f"seed-{s.seed}"
        topic = Topics("held-out", device).segments
        payload = SegmentMessage.from_segment(seg, device_id=device, site="held-out", boot_id="b", seq=i).to_json()
        items.append((validate_segment(topic, payload), topic))
        truth[seg.segment_id] = s.label
        start += steps + 5
    store.ingest(items, [])
    return truth


# --- 2. scale ----------------------------------------------------------------------------------------

def cluster_rows(sizes, work_dir: Path, embed_subset: int = 20000, spark_sizes=None) -> list[dict]:
    """Time and peak memory of both engines clustering each n in `sizes` synthetic segments (mean
    pooling, k = 8; each engine in a fresh process), the ARI between their labels, and the frozen
    Transformer's embedding rate on both engines over `embed_subset` segments. Spark runs only
    the sizes in `spark_sizes` (None: all); a size it skips gets a row EXTRAPOLATED linearly
    from the largest size it ran, labelled so."""
    work_dir = Path(work_dir)
    rows: list[dict] = []
    rates = _transformer_rates(embed_subset, work_dir) if embed_subset else {}
    for engine, rate in rates.items():
        rows.append({"name": f"scale: frozen Transformer embedding of {embed_subset:,} synthetic segments, {engine}",
                     "segments": embed_subset, "segments_per_s": rate,
                     "rate_ratio_vs_single": rate / rates["single-process"]})
    for n in sizes:
        export_dir = work_dir / f"export-{n}"
        t0 = time.perf_counter()
        write_synthetic_export(n, export_dir)
        gen_s = time.perf_counter() - t0
        print(f"scale {n:,}: synthetic export written in {gen_s:.0f} s", file=sys.stderr, flush=True)
        got = {}
        engines = ("single", "spark") if spark_sizes is None or n in spark_sizes else ("single",)
        for engine in engines:
            out = work_dir / f"{engine}-{n}.json"
            labels = work_dir / f"{engine}-{n}-labels.npy"
            cmd = [sys.executable, "-m", "benchmarks.central_scale_clustering", "--worker", engine, "--export",
                   str(export_dir), "--n", str(n), "--out", str(out), "--labels-out", str(labels)]
            proc = subprocess.run(cmd, cwd=ROOT)
            if proc.returncode != 0 or not out.is_file():
                got[engine] = {"failed": f"exit {proc.returncode}"}
                continue
            got[engine] = json.loads(out.read_text())
            got[engine]["labels"] = labels
        base = got["single"]
        ari = float("nan")
        if "labels" in base and "labels" in got.get("spark", {}):
            from edge import evaluation

            ari = evaluation.ari(np.load(base["labels"]), np.load(got["spark"]["labels"]))
        for engine, r in got.items():
            if "failed" in r:
                rows.append({"name": f"scale: cluster {n:,} synthetic segments, {engine} FAILED ({r['failed']})",
                             "segments": n})
                continue
            total = r["embed_s"] + r["cluster_s"]
            row = {"segments": n, "embed_s": r["embed_s"], "cluster_s": r["cluster_s"], "total_s": total,
                   "time_ratio_vs_single": total / (base["embed_s"] + base["cluster_s"]) if "embed_s" in base
                   else float("nan"),
                   "peak_rss_mib": r["peak_rss_mib"], "embeddings_mib": n * 256 * 4 / 2**20,
                   "transformer_embed_s_at_measured_rate": n / rates[_ENGINE_NAMES[engine]] if rates else float("nan")}
            if engine == "single":
                path = ("mini-batch k-means, embeddings on disk" if r["on_disk"] else "mini-batch k-means") \
                    if r["mini_batch"] else "in-memory k-means"
                row["name"] = f"scale: cluster {n:,} synthetic segments, single-process (mean pooling, {path}, k={K})"
            else:
                row["name"] = (f"scale: cluster {n:,} synthetic segments, Spark {SPARK_MASTER} (mean pooling, "
                               f"MLlib k-means, k={K}; peak = driver + JVM + Python workers)")
                row.update(jvm_peak_rss_mib=r["jvm_peak_rss_mib"], driver_peak_rss_mib=r["driver_peak_rss_mib"],
                           session_start_s=r["session_start_s"], ari_vs_single=ari)
            row.update(kmeans_objective=r["kmeans_objective"], nmi_vs_primitives=r["nmi_vs_primitives"])
            rows.append(row)
        if "spark" not in got:
            rows.append(_extrapolated_spark_row(n, rows, "embed_s" in base and base["embed_s"] + base["cluster_s"]))
        shutil.rmtree(export_dir, ignore_errors=True)
        truth_path(export_dir).unlink(missing_ok=True)
    return rows


def _extrapolated_spark_row(n: int, rows: list[dict], single_total: float) -> dict:
    """A Spark row NOT RUN at n: time scaled linearly from the largest Spark size measured, and
    the size of what MLlib k-means caches (n x 256 float64 vectors)."""
    measured = [r for r in rows if "Spark" in r["name"] and "total_s" in r and "EXTRAPOLATED" not in r["name"]]
    row = {"name": f"scale: cluster {n:,} synthetic segments, Spark {SPARK_MASTER} NOT RUN: EXTRAPOLATED linearly "
                   "from the largest size run", "segments": n,
           "mllib_cache_gib": n * 256 * 8 / 2**30, "embeddings_mib": n * 256 * 4 / 2**20}
    if measured:
        ref = max(measured, key=lambda r: r["segments"])
        total = ref["total_s"] * n / ref["segments"]
        row.update(total_s_extrapolated=total, extrapolated_from=ref["segments"],
                   time_ratio_vs_single=total / single_total if single_total else float("nan"))
    return row


_ENGINE_NAMES = {"single": "single-process", "spark": f"Spark {SPARK_MASTER}"}


def write_synthetic_export(n: int, out: Path, seed: int = 0, chunk: int = CHUNK):
    """n synthetic segments (module docstring) as the Spark engine's export (`Export`), written one
    chunk at a time (memory O(chunk))."""
    from central.spark_cluster import Export, chunk_table
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    primitives = rng.choice(1920, size=(K, 12), replace=False if K * 12 <= 1920 else True)
    chunks = 0
    truth = np.empty(n, np.int8)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        m = b - a
        # lengths like the held-out segments': median ~6, 5-95 % about 3-18 tokens
        lengths = np.clip(np.round(rng.lognormal(np.log(6.5), 0.65, size=m)), 2, 64).astype(np.int64)
        prim = rng.integers(0, K, size=m)
        truth[a:b] = prim
        tok_prim = np.repeat(prim, lengths)
        codes = primitives[tok_prim, rng.integers(0, 12, size=tok_prim.size)]
        noise = rng.random(tok_prim.size) < 0.2
        codes[noise] = rng.integers(0, 1920, size=int(noise.sum()))
        split = np.split(codes, np.cumsum(lengths)[:-1])
        table = chunk_table(split, chunks, a, [f"syn-{i:09d}" for i in range(a, b)], [f"ws-{i % 50}" for i in range(a, b)],
                            (lengths / 10.0).tolist())
        pq.write_table(table, out / f"part-{chunks:06d}.parquet", row_group_size=m + 1)
        chunks += 1
    np.save(truth_path(out), truth)  # the primitive of each row, for the NMI figures
    return Export(out, n, chunks, 0)


def truth_path(export_dir: Path) -> Path:
    """Where `write_synthetic_export` keeps each row's primitive (beside the export, not in it)."""
    return export_dir.parent / f"{export_dir.name}-truth.npy"


def read_chunks(export_dir: Path):
    """(first row, [codes arrays]) per export chunk file, in run order."""
    import pyarrow.parquet as pq

    for part in sorted(Path(export_dir).glob("part-*.parquet")):
        t = pq.read_table(part, columns=["row", "codes"])
        codes = t.column("codes").combine_chunks()
        offsets = codes.offsets.to_numpy()
        values = codes.values.to_numpy().astype(np.int64)
        yield int(t.column("row")[0].as_py()), np.split(values, offsets[1:-1])


def single_worker(export_dir: Path, n: int, out: Path, labels_out: Path, method: str = SCALE_METHOD) -> None:
    """In a fresh process: the single-process path over an export (module docstring)."""
    from central.cluster_run import DEFAULT_MEMORY_BUDGET, SegmentEmbedder
    from central.clustering import ClusterOptions, cluster_embeddings
    from central.registry import ModelRegistry

    registry = ModelRegistry(DEFAULT_MODEL.parent)
    embedder = SegmentEmbedder(registry, registry.versions[0], (method,))
    dim = embedder.dims[method]
    on_disk = n * dim * 4 > DEFAULT_MEMORY_BUDGET  # run_clustering's rule
    x = (np.lib.format.open_memmap(out.with_suffix(".npy"), mode="w+", dtype=np.float32, shape=(n, dim)) if on_disk
         else np.empty((n, dim), np.float32))
    t0 = time.perf_counter()
    for row, codes in read_chunks(export_dir):
        x[row:row + len(codes)] = embedder.embed(codes)[method]
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = cluster_embeddings(x, ClusterOptions(k=K))
    cluster_s = time.perf_counter() - t0
    np.save(labels_out, c.labels)
    quality = _quality(c.labels, c.distances, export_dir)
    del x
    out.with_suffix(".npy").unlink(missing_ok=True)
    out.write_text(json.dumps({"embed_s": embed_s, "cluster_s": cluster_s, "peak_rss_mib": _vm(os.getpid(), "VmHWM"),
                               "on_disk": on_disk, "mini_batch": c.mini_batch, **quality}))


def spark_worker(export_dir: Path, n: int, out: Path, labels_out: Path, method: str = SCALE_METHOD) -> None:
    """In a fresh process: `cluster_export` over the export on Spark local[2] (module docstring)."""
    from central.cluster_run import SegmentEmbedder
    from central.clustering import ClusterOptions
    from central.registry import ModelRegistry
    from central.spark_cluster import Export, cluster_export, spark_session

    registry = ModelRegistry(DEFAULT_MODEL.parent)
    embedder = SegmentEmbedder(registry, registry.versions[0], (method,))
    export = Export(Path(export_dir), n, len(list(Path(export_dir).glob("part-*.parquet"))), 0)
    peak = _TreePeak(os.getpid())
    work = Path(tempfile.mkdtemp(prefix="spark-work-", dir=Path(out).parent))
    try:
        t0 = time.perf_counter()
        with spark_session(SPARK_MASTER, SPARK_CONF) as spark:
            session_s = time.perf_counter() - t0
            res = cluster_export(spark, export, embedder, ClusterOptions(k=K), work, progress=True)[method]
            jvm = [p for p in _descendants(os.getpid()) if "java" in _comm(p)]
            jvm_peak = max((_vm(p, "VmHWM") for p in jvm), default=float("nan"))
        tree_peak = peak.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    np.save(labels_out, res.clustering.labels)
    out.write_text(json.dumps({**_quality(res.clustering.labels, res.clustering.distances, export_dir),
                               "embed_s": res.embed_seconds, "cluster_s": res.clustering.seconds,
                               "peak_rss_mib": tree_peak, "jvm_peak_rss_mib": jvm_peak,
                               "driver_peak_rss_mib": _vm(os.getpid(), "VmHWM"), "session_start_s": session_s}))


def _quality(labels: np.ndarray, distances: np.ndarray, export_dir: Path) -> dict[str, float]:
    """The k-means objective (mean squared distance to the centre, normalised space) and NMI
    against the generator's primitives."""
    from edge import evaluation

    truth = np.load(truth_path(Path(export_dir)))
    return {"kmeans_objective": float(np.mean(np.square(distances, dtype=np.float64))),
            "nmi_vs_primitives": evaluation.nmi(truth, labels)}


def _transformer_rates(n: int, work_dir: Path) -> dict[str, float]:
    """Segments/s of the frozen Transformer embedding on n synthetic segments: this process vs
    Spark local[2] (the embedding pass of `cluster_export` alone, session start excluded)."""
    from central.cluster_run import SegmentEmbedder
    from central.registry import ModelRegistry
    from central.spark_cluster import embed_export, spark_session

    export = write_synthetic_export(n, work_dir / "embed-subset", seed=1)
    registry = ModelRegistry(DEFAULT_MODEL.parent)
    embedder = SegmentEmbedder(registry, registry.versions[0], ("transformer",))
    t0 = time.perf_counter()
    for _, codes in read_chunks(export.path):
        embedder.embed(codes)
    single = n / (time.perf_counter() - t0)
    with spark_session(SPARK_MASTER, SPARK_CONF) as spark:
        t0 = time.perf_counter()
        embed_export(spark, export, embedder, work_dir / "embed-subset-out")
        on_spark = n / (time.perf_counter() - t0)
    shutil.rmtree(export.path, ignore_errors=True)
    shutil.rmtree(work_dir / "embed-subset-out", ignore_errors=True)
    return {"single-process": single, f"Spark {SPARK_MASTER}": on_spark}


# --- process memory ----------------------------------------------------------------------------------

def _vm(pid: int, field: str) -> float:
    """/proc/<pid>/status `field` (VmHWM, VmRSS) in MiB; NaN when the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    """Every live process below `root` (from /proc/*/stat parent ids)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, frontier = [], [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out.extend(kids)
        frontier.extend(kids)
    return out


class _TreePeak:
    """The peak of the summed RSS of a process and its descendants, sampled every 0.5 s."""

    def __init__(self, root: int) -> None:
        self.root, self.peak = root, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            total = sum(v for v in (_vm(p, "VmRSS") for p in [self.root, *_descendants(self.root)]) if v == v)
            self.peak = max(self.peak, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


# --- main --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default=",".join(str(s) for s in SIZES), help="segments per scale row (default: %(default)s)")
    p.add_argument("--seeds", default="950-959", help="HELD-OUT seeds for the agreement rows (default: %(default)s)")
    p.add_argument("--spark-sizes", default=None,
                   help="the sizes Spark runs (default: all --sizes); the others get an extrapolated Spark row")
    p.add_argument("--embed-subset", type=int, default=20000, help="segments for the Transformer rate rows")
    p.add_argument("--skip", default="", help="comma list of parts to skip: agreement, scale")
    p.add_argument("--work-dir", default=None, help="scratch folder (default: a temporary one; needs ~3 GB per 1M)")
    p.add_argument("--worker", choices=("single", "spark"), help=argparse.SUPPRESS)
    p.add_argument("--export", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--labels-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        fn = single_worker if args.worker == "single" else spark_worker
        fn(Path(args.export), args.n, Path(args.out), Path(args.labels_out))
        return 0
    from export.tokenizer.dataset import parse_seed_range

    seeds = parse_seed_range(args.seeds)
    if any(not 950 <= s <= 999 for s in seeds):
        raise SystemExit(f"seeds {args.seeds} are not all HELD-OUT seeds (950-999; 900-949 are retired)")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    work = Path(tempfile.mkdtemp(prefix="bench-scale-clustering-", dir=args.work_dir))
    rows: list[dict] = []
    try:
        if "agreement" not in skip:
            rows += agreement_rows(seeds, work)
        if "scale" not in skip:
            spark_sizes = None if args.spark_sizes is None else {int(s) for s in args.spark_sizes.split(",") if s.strip()}
            rows += cluster_rows([int(s) for s in args.sizes.split(",") if s.strip()], work, args.embed_subset,
                                 spark_sizes)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table([{k: v for k, v in r.items() if k != "tokens"} for r in rows],
                title="central clustering at scale: single-process vs Spark")
    write_results("central_scale_clustering", rows, extra={"seeds": args.seeds, "sizes": args.sizes,
                                                           "spark_sizes": args.spark_sizes,
                                                           "spark_master": SPARK_MASTER, "spark_conf": SPARK_CONF,
                                                           "scale_embedding": SCALE_METHOD})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
