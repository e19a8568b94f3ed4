"""`laps-central status`: the fleet at a glance, from the store (no broker needed)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
One line per device: its site and id, whether it is online (from the retained laps.state/1
each device publishes: online and source_lost = running, stopped = shut down cleanly, offline =
its last will, the broker lost it), when central last heard from it, and how many segments,
keyframe batches and quarantined messages the store holds from it. Devices registered with
`laps-central devices add` that never sent anything are listed too. Then the store's totals
and the newest clustering run. Read from the store the ingest writes: it works while the
ingest is down (states are as of its last run)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="devices (online/offline, last seen, segments, batches, quarantine) and totals",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central status --config central.toml")
    p.add_argument("--config", required=True, help="central TOML configuration")
    p.add_argument("--json", action="store_true", help="one JSON object per device, then one with the totals")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import json
    import time

    from central.config import load_central_config
    from central.fleet import ago, describe_state, device_rows
    from central.store_protocol import open_store

    config = load_central_config(args.config)
    with open_store(config.store) as store:
        rows = device_rows(store, config.devices_dir / "registry.json")
        counters = store.counters()
        links = store.link_counts()
        runs = store.cluster_runs()
    seen = {r["device_id"] for r in rows if r.get("last_seen_ms")}
    now_ms = int(time.time() * 1000)
    totals = {"store": config.store.location, "devices": len(rows), "segments": counters["stored"],
              "received": counters["received"], "duplicates": counters["duplicates"],
              "quarantined": counters["quarantined"], "media_linked": links["linked"],
              "media_waiting": links["waiting_for_segment"], "clustering_runs": len(runs),
              "latest_run": runs[0]["run_id"] if runs else None}
    if args.json:
        for r in rows:
            print(json.dumps(r))
        print(json.dumps({"totals": totals}))
        return 0
    if not rows:
        print(f"no device has sent anything to {config.store.location} yet, and none is registered; start the ingest "
              "(laps-central ingest) and point devices at its broker")
    else:
        table = [("SITE", "DEVICE", "STATE", "LAST SEEN", "SEGMENTS", "BATCHES", "QUARANTINED", "MODEL")]
        for r in rows:
            table.append((r["site"], r["device_id"], describe_state(r), ago(r.get("last_seen_ms", 0), now_ms),
                          f"{r['segments']:,}", f"{r['batches']:,}", f"{r['quarantined']:,}",
                          r.get("model_version") or "-"))
        widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
        for t in table:
            print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip())
    print(f"\nstore {config.store.location}: {counters['stored']:,} segments from {len(seen)} device(s); "
          f"{counters['received']:,} messages received, {counters['duplicates']:,} duplicates dropped, "
          f"{counters['quarantined']:,} quarantined; {links['linked']:,} keyframe/clip files linked, "
          f"{links['waiting_for_segment']:,} waiting for their segment")
    if runs:
        r = runs[0]
        print(f"latest clustering run {r['run_id']} ({r['created']}): k = {r['k']}, {r['n_segments']:,} segments, "
              f"{len(runs)} run(s) in all (laps-central runs)")
    else:
        print("no clustering run yet (laps-central cluster --config ... --out report/)")
    return 0

