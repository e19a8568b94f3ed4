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
    from dataclasses import asdict

    from central.config import load_central_config
    from central.devices import read_registry
    from central.store import Store, ms_to_iso

    config = load_central_config(args.config)
    registered = {e.name: e for e in read_registry(config.devices_dir / "registry.json").values()
                  if e.role == "device"}
    with Store(config.store.path, synchronous=config.store.synchronous) as store:
        devices = store.device_summary()
        counters = store.counters()
        links = store.link_counts()
        runs = store.cluster_runs()
    seen = {d.device_id for d in devices}
    now_ms = int(time.time() * 1000)
    rows = []
    for d in devices:
        entry = registered.get(d.device_id)
        # Without any registered device central accepts every device on its own topic: nobody is "unregistered".
        rows.append({**asdict(d), "online": d.online,
                     "registered": (entry is not None and entry.active) if registered else None,
                     "last_seen": ms_to_iso(d.last_seen_ms) if d.last_seen_ms else ""})
    for name, entry in sorted(registered.items()):
        if name not in seen:
            rows.append({"site": entry.site, "device_id": name, "state": "", "online": None, "segments": 0,
                         "batches": 0, "quarantined": 0, "last_seen": "", "last_seen_ms": 0,
                         "registered": entry.active, "model_version": ""})
    totals = {"store": str(config.store.path), "devices": len(rows), "segments": counters["stored"],
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
        print(f"no device has sent anything to {config.store.path} yet, and none is registered; start the ingest "
              "(laps-central ingest) and point devices at its broker")
    else:
        table = [("SITE", "DEVICE", "STATE", "LAST SEEN", "SEGMENTS", "BATCHES", "QUARANTINED", "MODEL")]
        for r in rows:
            table.append((r["site"], r["device_id"], _state(r), _ago(r.get("last_seen_ms", 0), now_ms),
                          f"{r['segments']:,}", f"{r['batches']:,}", f"{r['quarantined']:,}",
                          r.get("model_version") or "-"))
        widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
        for t in table:
            print("  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip())
    print(f"\nstore {config.store.path}: {counters['stored']:,} segments from {len(seen)} device(s); "
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


def _state(row: dict) -> str:
    state = row.get("state") or ""
    if not state:
        return "never seen" if not row.get("last_seen_ms") else "unknown (no state message)"
    words = {"online": "online", "source_lost": "online, source lost", "stopped": "offline (stopped)",
             "offline": "offline (connection lost)"}
    text = words.get(state, state)
    return text + ", not registered" if row.get("registered") is False else text


def _ago(ms: int, now_ms: int) -> str:
    """'2026-01-05T08:00:00Z (3 min ago)'; '-' for never."""
    if not ms:
        return "-"
    from central.store import ms_to_iso

    s = max(0, (now_ms - ms) // 1000)
    ago = f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h" if s < 172800 else f"{s // 86400} d"
    return f"{ms_to_iso(ms)[:19]}Z ({ago} ago)"
