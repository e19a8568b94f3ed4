"""`laps-central runs`: the clustering runs in the store, newest first."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Every `laps-central cluster` run saved in the store, newest first: its id, when it ran, the
model version, the saved embedding method, k (and whether it was given or chosen), how many
segments it assigned, its silhouette, and the selection. `export-dataset --run latest` takes
the first line; pass another id with --run."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list the clustering runs (id, date, model, method, k, segments)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central runs --config central.toml")
    p.add_argument("--config", required=True, help="central TOML configuration")
    p.add_argument("--json", action="store_true", help="one JSON object per run")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import json

    from central.config import load_central_config
    from central.store import Selection
    from central.store_protocol import open_store

    config = load_central_config(args.config)
    with open_store(config.store) as store:
        runs = store.cluster_runs()
    if args.json:
        for r in runs:  # the centres (for `library export`) are numbers for a program, not a listing
            print(json.dumps({**r, "params": {k: v for k, v in r["params"].items() if k != "primitives"}}))
        return 0
    if not runs:
        print(f"no clustering run in {config.store.location}; make one with laps-central cluster --config "
              f"{args.config} --out report/")
        return 0
    table = [("RUN", "CREATED", "MODEL", "METHOD", "K", "SEGMENTS", "SILHOUETTE", "SELECTION")]
    for r in runs:
        params = r["params"]
        chosen = "chosen" if params.get("k_curve") else "given"
        sil = (r["metrics"].get(r["method"]) or {}).get("silhouette_cosine")
        try:
            selection = Selection(**params.get("selection", {})).describe()
        except TypeError:
            selection = "?"
        table.append((r["run_id"], r["created"], r["model_version"], r["method"], f"{r['k']} ({chosen})",
                      f"{r['n_segments']:,}", "-" if sil is None else f"{sil:.3f}", selection))
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    for i, t in enumerate(table):
        print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip() + ("   <- latest" if i == 1 else ""))
    return 0
