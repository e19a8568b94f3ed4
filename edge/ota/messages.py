"""The OTA wire formats: `laps.ota-desired/1` (central -> device) and `laps.ota-status/1`.

    laps/v1/<site>/<device>/ota/desired   retained, QoS 1, written by `laps-central rollout`
        {"schema": "laps.ota-desired/1", "version": int, "url": base URL of the bundle folder
         (the device GETs <url>/manifest.json, <url>/manifest.sig, <url>/<file>),
         "manifest_sha256": hex of the exact manifest.json bytes, "rollout_id": str, "issued": ISO}
        An empty retained payload clears it (nothing desired).
    laps/v1/<site>/<device>/ota/status    QoS 1 through the device outbox
        {"schema": "laps.ota-status/1", "device_id", "site", "boot_id", "time",
         "state": one of STATUS_STATES, "version": the version this report is about (or null),
         "installed": the committed version, "rollout_id", "detail": one line, "progress": 0..1
         for downloads, "timings_s": {step: seconds}}

Same style and helpers as `edge.messages` (compact JSON, ISO-8601 UTC with 'Z').
"""

from __future__ import annotations

import re
from typing import Any

from edge.messages import MessageError, decode, utc_now_iso

DESIRED_SCHEMA = "laps.ota-desired/1"
STATUS_SCHEMA = "laps.ota-status/1"

#: progress states (an update is under way) and final states (it ended)
PROGRESS_STATES = ("downloading", "verifying", "self_testing", "swapping", "health_check")
FINAL_STATES = ("committed", "rolled_back", "refused", "failed")
STATUS_STATES = PROGRESS_STATES + FINAL_STATES
#: final states that count against a rollout (a "failed" download is retried, not the bundle's fault)
BUNDLE_FAILURES = ("rolled_back", "refused")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def desired_message(version: int, url: str, manifest_sha256: str, rollout_id: str = "") -> dict:
    """The retained `laps.ota-desired/1` message asking a device to run bundle `version`."""
    msg = {"schema": DESIRED_SCHEMA, "version": int(version), "url": url.rstrip("/"),
           "manifest_sha256": manifest_sha256, "rollout_id": rollout_id, "issued": utc_now_iso()}
    validate_desired(msg)
    return msg


def parse_desired(payload: bytes | str) -> dict | None:
    """Decode and validate a desired payload; None for an empty (cleared) one."""
    if not payload:
        return None
    msg = decode(payload)
    validate_desired(msg)
    return msg


def validate_desired(msg: dict) -> None:
    """Raise `MessageError` naming the first field that breaks `laps.ota-desired/1`."""
    if msg.get("schema") != DESIRED_SCHEMA:
        raise MessageError(f"schema is {msg.get('schema')!r}, expected {DESIRED_SCHEMA!r}")
    v = msg.get("version")
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise MessageError(f"version is {v!r}, expected an integer > 0")
    url = msg.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise MessageError(f"url is {url!r}, expected an http:// or https:// base URL")
    if not isinstance(msg.get("manifest_sha256"), str) or not _SHA256.match(msg["manifest_sha256"]):
        raise MessageError(f"manifest_sha256 is {msg.get('manifest_sha256')!r}, expected 64 lowercase hex digits")
    if not isinstance(msg.get("rollout_id", ""), str):
        raise MessageError("rollout_id must be a string")


def status_message(
    state: str,
    *,
    device_id: str,
    site: str,
    boot_id: str,
    version: int | None,
    installed: int | None,
    rollout_id: str = "",
    detail: str = "",
    progress: float | None = None,
    timings_s: dict[str, float] | None = None,
) -> dict:
    """A `laps.ota-status/1` message (see the module docstring)."""
    msg: dict[str, Any] = {
        "schema": STATUS_SCHEMA, "device_id": device_id, "site": site, "boot_id": boot_id,
        "time": utc_now_iso(), "state": state, "version": version, "installed": installed,
        "rollout_id": rollout_id, "detail": " ".join(str(detail).split()),
    }
    if progress is not None:
        msg["progress"] = round(float(progress), 4)
    if timings_s:
        msg["timings_s"] = {k: round(float(v), 4) for k, v in timings_s.items()}
    validate_status(msg)
    return msg


def parse_status(payload: bytes | str) -> dict:
    msg = decode(payload)
    validate_status(msg)
    return msg


def validate_status(msg: dict) -> None:
    """Raise `MessageError` naming the first field that breaks `laps.ota-status/1`."""
    if msg.get("schema") != STATUS_SCHEMA:
        raise MessageError(f"schema is {msg.get('schema')!r}, expected {STATUS_SCHEMA!r}")
    if msg.get("state") not in STATUS_STATES:
        raise MessageError(f"state is {msg.get('state')!r}, expected one of {', '.join(STATUS_STATES)}")
    for key in ("device_id", "site", "boot_id", "time"):
        if not isinstance(msg.get(key), str) or not msg[key]:
            raise MessageError(f"{key} is {msg.get(key)!r}, expected a non-empty string")
    for key in ("version", "installed"):
        v = msg.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise MessageError(f"{key} is {v!r}, expected an integer or null")
