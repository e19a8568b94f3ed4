"""`laps-central library export`: a clustering run's primitives into a model directory for the devices."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
The loop back to the device. `export` writes the primitive library of a saved clustering run
(its cluster centres, the z-score statistics it assigned with and the embedding it used) into
a copy of the run's model directory (primitives.npz, listed in manifest.json). Bundle, sign
and roll out that folder as any model directory: every device that runs it labels each
finished segment with its nearest primitive and the distance, and sends the label in its
segment messages (laps.segment/2 `primitive`), which the ingest stores beside the segment.

Next steps:
  laps-export bundle build --model-dir DIR --calibration DIR/calibration.json --out bundles/N
  laps-export bundle sign --bundle bundles/N --key release.key
  laps-central rollout start --bundle bundles/N ..."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("library", help="export a clustering run's primitive library into a model directory",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central library export --config central.toml --run latest "
                              "--out models/with-library --name 0=reach --name 3=put-aside")
    verbs = p.add_subparsers(dest="library_command", metavar="VERB", required=True)
    e = verbs.add_parser("export", help="write a run's library into a copy of its model directory")
    e.add_argument("--config", required=True, help="central TOML configuration (store and [paths] models_dir)")
    e.add_argument("--run", default="latest", help="clustering run id, or 'latest' (default: %(default)s)")
    e.add_argument("--out", required=True, help="model directory to create (must not exist or be empty)")
    e.add_argument("--name", action="append", default=[], metavar="CLUSTER=NAME",
                   help="name a cluster (repeatable), e.g. 2=reach; unnamed clusters stay numbered")
    e.set_defaults(func=handle_export)


def handle_export(args: argparse.Namespace) -> int:
    from central.config import load_central_config
    from central.library_export import export_library
    from central.registry import ModelRegistry, register_shipped_model
    from central.store import Store

    config = load_central_config(args.config)
    names = parse_names(args.name)
    register_shipped_model(config.paths.models_dir)  # the run may be of the shipped model
    registry = ModelRegistry(config.paths.models_dir)
    with Store(config.store.path, synchronous=config.store.synchronous) as store:
        model = export_library(store, registry, args.out, run_id=args.run, names=names)
    lib = model.library
    calibration = f"{model.path}/calibration.json" if model.calibration is not None else "CALIBRATION_JSON"
    print(f"wrote {model.path}: model {model.metadata.model_version} with primitive library {lib.library_id} "
          f"({lib.k} primitives, {lib.method} embedding); bundle it with `laps-export bundle build --model-dir "
          f"{model.path} --calibration {calibration} --out bundles/NEW`, sign it and roll it out")
    return 0


def parse_names(items: list[str]) -> dict[int, str]:
    """['2=reach', ...] -> {2: 'reach'}; a one-line ConfigError for anything else."""
    from edge.errors import ConfigError

    out: dict[int, str] = {}
    for item in items:
        cluster, sep, name = item.partition("=")
        try:
            key = int(cluster)
        except ValueError:
            key = -1
        if not sep or key < 0 or not name.strip():
            raise ConfigError(f"--name {item!r} is not CLUSTER=NAME; write e.g. --name 2=reach")
        out[key] = name.strip()
    return out
