"""The fleet's devices as an operator sees them: what the store knows of each device (its
retained `laps.state/1`, last message, counts) joined with the device registry, in words.

One source for `laps-central status` and the fleet dashboard (`laps-central serve`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from central.devices import read_registry
from central.store import ms_to_iso
from central.store_protocol import CentralStore

#: a device's newest laps.state/1 in words (online and source_lost = running)
STATE_WORDS = {"online": "online", "source_lost": "online, source lost", "stopped": "offline (stopped)",
               "offline": "offline (connection lost)"}


def device_rows(store: CentralStore, registry_path: str | Path) -> list[dict]:
    """One dict per device: the fields of `central.store.DeviceSummary` plus "online" (True,
    False, None = no state yet), "registered" (True/False; None while the registry lists no
    device, when central accepts every device) and "last_seen" (ISO-8601 UTC, "" = never).
    Registered devices that never sent anything come last, with zero counts."""
    registered = {e.name: e for e in read_registry(Path(registry_path)).values() if e.role == "device"}
    devices = store.device_summary()
    seen = {d.device_id for d in devices}
    rows = []
    for d in devices:
        entry = registered.get(d.device_id)
        rows.append({**asdict(d), "online": d.online,
                     "registered": (entry is not None and entry.active) if registered else None,
                     "last_seen": ms_to_iso(d.last_seen_ms) if d.last_seen_ms else ""})
    for name, entry in sorted(registered.items()):
        if name not in seen:
            rows.append({"site": entry.site, "device_id": name, "state": "", "online": None, "segments": 0,
                         "batches": 0, "quarantined": 0, "last_seen": "", "last_seen_ms": 0,
                         "last_segment_end_ms": 0, "registered": entry.active, "model_version": ""})
    return rows


def describe_state(row: dict) -> str:
    """A device row's state in words: "online", "offline (stopped)", "never seen", ...,
    with ", not registered" for a device the registry does not list."""
    state = row.get("state") or ""
    if not state:
        return "never seen" if not row.get("last_seen_ms") else "unknown (no state message)"
    text = STATE_WORDS.get(state, state)
    return text + ", not registered" if row.get("registered") is False else text


def ago(ms: int, now_ms: int) -> str:
    """'2026-01-05T08:00:00Z (3 min ago)'; '-' for never. ms, now_ms: Unix ms."""
    if not ms:
        return "-"
    s = max(0, (now_ms - ms) // 1000)
    text = f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s // 3600} h" if s < 172800 else f"{s // 86400} d"
    return f"{ms_to_iso(ms)[:19]}Z ({text} ago)"
