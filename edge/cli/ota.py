"""`laps-edge ota status`: what the OTA store holds (installed, committed, pending, deny-listed).

Reads `<ota.root>/state.json` and the `current`/`previous` links; needs no broker and does not
touch a running service.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ota", help="over-the-air model updates: show the device's OTA state",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-edge ota status --config /etc/laps-edge/laps-edge.toml")
    verbs = p.add_subparsers(dest="ota_command", metavar="VERB", required=True)
    s = verbs.add_parser("status", help="installed, committed, pending and deny-listed versions")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", help="device TOML configuration (its [ota] root)")
    where.add_argument("--root", help="the OTA store folder itself")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--history", type=int, default=10, metavar="N", help="last N events (default: %(default)s)")
    s.set_defaults(func=handle_status)


def handle_status(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from edge.errors import ConfigError
    from edge.ota.store import OtaStore

    if args.config:
        from edge.config import load_config

        root = load_config(args.config).ota_root
    else:
        root = Path(args.root)
    if not (root / "state.json").exists() and not (root / "bundles").is_dir():
        raise ConfigError(f"no OTA store at {root}; it is created by `laps-edge run --config` with [ota] enabled = true")
    store = OtaStore(root)
    state = store.load()
    installed = sorted(int(p.name) for p in store.bundles.iterdir() if p.name.isdigit())
    staging = sorted(p.name for p in store.staging.iterdir() if p.is_dir())
    info = {
        "root": str(root), "committed": state.committed, "pending": state.pending,
        "current": store.linked_version("current"), "previous": store.linked_version("previous"),
        "installed": installed, "staging": staging,
        "deny": {str(k): v for k, v in sorted(state.deny.items())},
        "history": state.history[-args.history:] if args.history > 0 else [],
    }
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    consistent = state.pending is None and info["current"] == state.committed
    lines = [
        f"OTA store {root}",
        f"  committed  {state.committed}",
        f"  current    {info['current']}" + ("" if consistent else "  (update in progress or interrupted)"),
        f"  previous   {info['previous']}",
        f"  pending    {state.pending if state.pending is not None else '-'}",
        f"  installed  {', '.join(map(str, installed)) or '-'}",
        f"  staging    {', '.join(staging) or '-'}",
        "  deny-listed " + ("-" if not state.deny else ""),
    ]
    lines += [f"    {v}: {reason}" for v, reason in sorted(state.deny.items())]
    if info["history"]:
        lines.append("  history")
        lines += [f"    {h['time']}  {h['event']:12} {h['version']}  {h.get('detail', '')}" for h in info["history"]]
    print("\n".join(lines))
    return 0
