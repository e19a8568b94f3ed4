"""`laps-central cluster`: turn stored segments into a library of action primitives."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Select stored segments (time range, site, device; one model version), rebuild each segment's
z_q tokens from its FSQ codes with that version's model from the registry, embed them with a
frozen, seeded, randomly initialised Transformer encoder (d=256, 4 layers, 4 heads, FF 512,
mean pooling), z-score, L2-normalise, and run k-means (n_init 10) with k given or chosen by
cosine silhouette over a range. The two baselines (plain mean pooling and norm-weighted
pooling of z_q) run in the same pass with the same options, and every method is scored
(silhouette, Calinski-Harabasz, Davies-Bouldin; NMI, ARI and Hungarian accuracy with --labels).

The LAPS clustering (or, with --save-method best, the best silhouette) is saved in the store
as a run (for export-dataset; `laps-central runs` lists them) and described in
<out>/report.html: what each cluster is (size, typical duration, where in the frame it moves,
its central members animated, a flag on clusters of implausibly short segments), the scores,
why the saved method was saved, the silhouette-vs-k curve and a 2-D map. --k-range may reach at
most half the number of segments. When the embeddings exceed --memory-budget-mb they go to
disk and k-means runs in mini-batches.

--engine spark runs the same steps on Apache Spark (--master local[*] or any Spark master URL;
needs `pip install 'laps-edge[spark]'` and Java 17): the segments are exported from the store in
chunks to Parquet under --work-dir, embedded in a pandas UDF, standardised with global
aggregates and clustered with Spark MLlib k-means; the run and report are the same."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cluster", help="cluster stored segments into primitives and write a report",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central cluster --config central.toml --site plant-a "
                              "--since 2026-01-01 --k-range 2-12 --out reports/plant-a")
    p.add_argument("--config", required=True, help="central TOML configuration")
    p.add_argument("--out", required=True, help="folder for report.html and its figures")
    sel = p.add_argument_group("selection")
    sel.add_argument("--since", help="segments starting at or after this UTC time (ISO-8601, e.g. 2026-01-01T08:00Z)")
    sel.add_argument("--until", help="segments starting before this UTC time")
    sel.add_argument("--site", default="", help="only this site")
    sel.add_argument("--device", default="", help="only this device (station)")
    sel.add_argument("--model-version", default="", help="the tokenizer version (needed when several are stored)")
    k = p.add_argument_group("clustering")
    k.add_argument("--k", type=int, help="number of clusters (default: chosen by cosine silhouette over --k-range)")
    k.add_argument("--k-range", default=None,
                   help="k range searched when --k is not given; at most half the number of segments "
                        "(default: 2-12, narrowed to fit)")
    k.add_argument("--n-init", type=int, default=10, help="k-means initialisations (default: %(default)s)")
    k.add_argument("--seed", type=int, default=0,
                   help="seed of the frozen encoder's weights and of k-means (default: %(default)s)")
    k.add_argument("--methods", default="transformer,mean,norm_weighted",
                   help="embeddings to compare, of transformer, mean, norm_weighted, statistics (statistics pooling: "
                        "no network, > 10k segments/s), motion (the device's motion summary: where the tracked points "
                        "moved; segments from devices that send none are left out, and counted); the run saves the transformer clustering when listed, else the first (default: %(default)s)")
    k.add_argument("--save-method", default="laps", choices=("laps", "best"),
                   help="which method's clustering the run saves (for export-dataset): laps = the LAPS frozen "
                        "Transformer, the method under study; best = the best cosine silhouette of those compared "
                        "(default: %(default)s; the report says why)")
    k.add_argument("--memory-budget-mb", type=int, default=2048,
                   help="RAM for embeddings before switching to disk + mini-batch k-means (default: %(default)s)")
    eng = p.add_argument_group("engine")
    eng.add_argument("--engine", choices=("single", "spark"), default="single",
                     help="single = this process (default); spark = Apache Spark, for selections that outgrow one "
                          "machine (needs the [spark] extra and Java 17)")
    eng.add_argument("--master", default="local[*]",
                     help="Spark master URL with --engine spark: local[N], spark://host:7077, yarn, k8s://... "
                          "(default: %(default)s)")
    eng.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                     help="a Spark setting with --engine spark, e.g. spark.driver.memory=8g (repeatable)")
    eng.add_argument("--work-dir", default=None,
                     help="folder for --engine spark's Parquet export and intermediates (default: beside the store; "
                          "on a cluster, a path every executor can read)")
    p.add_argument("--labels", help="ground truth for scoring: CSV (segment_id,label), JSONL or JSON mapping")
    p.add_argument("--no-save", action="store_true", help="do not record the run in the store")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from central.cluster_run import run_clustering
    from central.clustering import ClusterOptions
    from central.config import load_central_config
    from central.embedding import EmbeddingConfig
    from central.registry import ModelRegistry, register_shipped_model
    from central.report import write_report
    from central.store import Selection
    from central.store_protocol import open_store
    from edge.errors import ConfigError

    config = load_central_config(args.config)
    k_min, k_max = parse_k_range(args.k_range or "2-12")
    if args.k is not None and args.k < 2:
        raise ConfigError(f"--k {args.k} is not allowed; use 2 or more (or leave it out to choose k)")
    if args.n_init < 1:
        raise ConfigError(f"--n-init {args.n_init} is not allowed; use 1 or more (default 10)")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    selection = Selection(parse_time(args.since, "--since"), parse_time(args.until, "--until"), args.site,
                          args.device, args.model_version)
    truth = read_labels(args.labels) if args.labels else None
    options = ClusterOptions(k=args.k, k_min=k_min, k_max=k_max, n_init=args.n_init, seed=args.seed,
                             k_range_given=args.k_range is not None)
    register_shipped_model(config.paths.models_dir)  # a store filled before the ingest registered it
    registry = ModelRegistry(config.paths.models_dir)
    spark_conf = parse_spark_conf(args.spark_conf)
    with open_store(config.store) as store:
        if args.engine == "spark":
            from central.spark_cluster import run_clustering_spark

            run = run_clustering_spark(store, registry, selection, master=args.master, spark_conf=spark_conf,
                                       methods=methods, options=options, embedding=EmbeddingConfig(seed=args.seed),
                                       truth=truth, save=not args.no_save, save_rule=args.save_method,
                                       workdir=args.work_dir, progress=not args.quiet)
        else:
            run = run_clustering(store, registry, selection, methods=methods, options=options,
                                 embedding=EmbeddingConfig(seed=args.seed), truth=truth,
                                 memory_budget_bytes=args.memory_budget_mb * 1024 * 1024, save=not args.no_save,
                                 save_rule=args.save_method,
                                 progress=not args.quiet)
        report = write_report(run, args.out, store=store, media_dir=config.media_dir, seed=args.seed)
    print(f"{len(run.segment_ids)} segments of model {run.model_version} -> k = {run.primary.clustering.k} "
          f"with {run.primary.method}" + ("" if run.engine == "single-process" else f" on {run.engine}")
          + ("" if args.no_save else f" (run {run.run_id}: export-dataset --run latest now takes it; "
                                     "laps-central runs lists every run)"))
    for m, r in run.results.items():
        s = r.metrics
        extra = f"  NMI {s['nmi']:.3f}  ARI {s['ari']:.3f}" if "nmi" in s else ""
        print(f"  {m:14s} silhouette {s['silhouette_cosine']:.3f}  CH {s['calinski_harabasz']:.1f}  "
              f"DB {s['davies_bouldin']:.3f}{extra}")
    print(f"report: {report}")
    return 0


def parse_spark_conf(items: list[str]) -> dict[str, str]:
    """['spark.driver.memory=8g', ...] -> {key: value}; a one-line ConfigError otherwise."""
    from edge.errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().startswith("spark."):
            raise ConfigError(f"--spark-conf {item!r} is not KEY=VALUE with a spark.* key; write e.g. "
                              "--spark-conf spark.driver.memory=8g")
        out[key.strip()] = value.strip()
    return out


def parse_k_range(text: str) -> tuple[int, int]:
    """'2-12' -> (2, 12); a one-line ConfigError otherwise."""
    from edge.errors import ConfigError

    try:
        lo, hi = (int(v) for v in text.split("-", 1))
    except ValueError:
        raise ConfigError(f"--k-range {text!r} is not MIN-MAX; write e.g. 2-12") from None
    if not 2 <= lo <= hi:
        raise ConfigError(f"--k-range {text!r} must satisfy 2 <= MIN <= MAX; write e.g. 2-12")
    return lo, hi


def parse_time(text: str | None, option: str) -> int | None:
    """ISO-8601 (a date, or a time with 'Z'/offset; naive = UTC) -> Unix ms; None stays None."""
    if not text:
        return None
    from datetime import datetime, timezone

    from edge.errors import ConfigError

    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not an ISO-8601 time; write e.g. 2026-01-31 or 2026-01-31T08:00Z") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return int(round(t.timestamp() * 1000))


def read_labels(path: str) -> dict[str, str]:
    """segment_id -> label from CSV (header segment_id,label), JSONL ({segment_id, label}) or a JSON object."""
    import csv
    import json
    from pathlib import Path

    from edge.errors import ConfigError

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"labels file {p} cannot be read ({err.strerror}); pass an existing file") from None
    try:
        if p.suffix == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
            return {r["segment_id"]: str(r["label"]) for r in rows}
        if p.suffix == ".jsonl":
            out = {}
            for line in text.splitlines():
                if line.strip():
                    obj = json.loads(line)
                    out[obj["segment_id"]] = str(obj["label"])
            return out
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return {str(k): str(v) for k, v in data.items()}
    except (KeyError, ValueError, TypeError) as err:
        raise ConfigError(f"labels file {p} is malformed ({err}); use CSV with a segment_id,label header, "
                          "JSONL with segment_id and label, or a JSON object {segment_id: label}") from None
