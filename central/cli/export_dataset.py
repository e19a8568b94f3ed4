"""`laps-central export-dataset`: the clustered segments as Parquet and JSONL for VLA pre-training."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Write one record per segment of a clustering run's selection: cluster id, FSQ code sequence,
time span, site and device, model version, keyframe and clip paths (schema
laps.primitive-dataset/1, documented in the README and in central/dataset_export.py).
Output: <out>/segments.parquet, <out>/segments.jsonl and <out>/dataset.json (run, row count,
cluster sizes, media root). Paths are relative to the media folder unless --absolute-paths."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-dataset", help="export clustered segments as Parquet/JSONL",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central export-dataset --config central.toml --out dataset/ --run latest")
    p.add_argument("--config", required=True, help="central TOML configuration")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--run", default="latest", help="clustering run id, or 'latest' (default: %(default)s)")
    p.add_argument("--format", default="parquet,jsonl",
                   help="comma-separated: parquet, jsonl (default: %(default)s)")
    p.add_argument("--clustered-only", action="store_true",
                   help="leave out segments the run did not assign (no codes, or stored after the run)")
    p.add_argument("--absolute-paths", action="store_true", help="write absolute keyframe/clip paths")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from central.config import load_central_config
    from central.dataset_export import export_dataset
    from central.store import Store

    config = load_central_config(args.config)
    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    with Store(config.store.path, synchronous=config.store.synchronous) as store:
        info = export_dataset(store, config.media_dir, args.out, run_id=args.run, formats=formats,
                              clustered_only=args.clustered_only, absolute_paths=args.absolute_paths,
                              progress=not args.quiet)
    print(f"exported {info['rows']} segments of run {info['run_id']} (k = {info['k']}, model {info['model_version']}) "
          f"to {args.out}: {', '.join(info['files'])}")
    return 0
