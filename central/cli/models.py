"""`laps-central models add|list`: the model registry that turns stored codes back into z_q."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Segments travel as FSQ codes plus the model version that produced them; clustering needs that
version's model (its FSQ projection) to rebuild z_q. The registry is [paths] models_dir: one
folder per model version. It fills itself: the ingest and `cluster` register the model this
installation ships, and `rollout start` registers every bundle it rolls out (and its baseline).

  add PATH   register a model directory (`laps-export onnx`) or a bundle folder
             (`laps-export bundle build`); a version already registered is left as it is
  list       every registered version, its folder and FSQ codebook size"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="the model registry: add a model or bundle, list versions",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central models add bundles/42 --config central.toml")
    verbs = p.add_subparsers(dest="models_command", metavar="VERB", required=True)
    a = verbs.add_parser("add", help="register a model directory or bundle")
    a.add_argument("path", help="model directory or bundle folder (holds manifest.json)")
    a.add_argument("--config", required=True, help="central TOML configuration ([paths] models_dir)")
    a.set_defaults(func=handle_add)
    lst = verbs.add_parser("list", help="registered model versions")
    lst.add_argument("--config", required=True, help="central TOML configuration ([paths] models_dir)")
    lst.set_defaults(func=handle_list)


def handle_add(args: argparse.Namespace) -> int:
    from central.config import load_central_config
    from central.registry import register_model

    config = load_central_config(args.config)
    version, target = register_model(config.paths.models_dir, args.path)
    if target is None:
        print(f"model version {version} is already in the registry {config.paths.models_dir}; nothing to add")
    else:
        print(f"registered model version {version}: {target}")
    return 0


def handle_list(args: argparse.Namespace) -> int:
    from central.config import load_central_config
    from central.registry import ModelRegistry, register_shipped_model

    config = load_central_config(args.config)
    register_shipped_model(config.paths.models_dir)
    registry = ModelRegistry(config.paths.models_dir)
    if not registry.versions:
        print(f"the registry {config.paths.models_dir} holds no model; add one with `laps-central models add PATH`")
    for version in registry.versions:
        print(f"{version}  {registry.model(version).path}  ({registry.fsq(version).codebook_size} codes)")
    for folder, reason in registry.skipped.items():
        print(f"skipped {folder}: {reason}")
    return 0
