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

Same style and helpers as `edge.messages` (compact JSON, ISO-8601 UTC with 'Z'): `DesiredMessage`
and `StatusMessage` are the one writer and the one reader of each schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from edge.messages import MessageError, WireMessage, _expect, _iso, _optional, _sha256, _show, utc_now_iso

DESIRED_SCHEMA = "laps.ota-desired/1"
STATUS_SCHEMA = "laps.ota-status/1"

#: progress states (an update is under way) and final states (it ended)
PROGRESS_STATES = ("downloading", "verifying", "self_testing", "swapping", "health_check")
FINAL_STATES = ("committed", "rolled_back", "refused", "failed")
STATUS_STATES = PROGRESS_STATES + FINAL_STATES
#: final states that count against a rollout (a "failed" download is retried, not the bundle's fault)
BUNDLE_FAILURES = ("rolled_back", "refused")


@dataclass(frozen=True)
class DesiredMessage(WireMessage):
    """The retained `laps.ota-desired/1` asking a device to run bundle `version` (see the module
    docstring). url: base URL of the bundle folder (a trailing '/' is dropped). issued: when
    central asked (default now). Checked on construction: a bad one is never published."""

    schema: ClassVar[str] = DESIRED_SCHEMA

    version: int
    url: str
    manifest_sha256: str
    rollout_id: str = ""
    issued: str = field(default_factory=lambda: utc_now_iso())

    def __post_init__(self) -> None:
        if isinstance(self.url, str):
            object.__setattr__(self, "url", self.url.rstrip("/"))
        _check_desired(self.to_dict())

    def to_dict(self) -> dict:
        return {"schema": DESIRED_SCHEMA, "version": self.version, "url": self.url,
                "manifest_sha256": self.manifest_sha256, "rollout_id": self.rollout_id, "issued": self.issued}

    @classmethod
    def from_json_or_none(cls, payload: bytes | str) -> "DesiredMessage | None":
        """A desired payload, or None for an empty (cleared) retained one."""
        return cls.from_json(payload) if payload else None

    @classmethod
    def from_dict(cls, msg: dict) -> "DesiredMessage":
        _check_desired(msg)
        return cls(version=msg["version"], url=msg["url"], manifest_sha256=msg["manifest_sha256"],
                   rollout_id=msg.get("rollout_id", ""), issued=msg["issued"])


@dataclass(frozen=True)
class StatusMessage(WireMessage):
    """A `laps.ota-status/1` (see the module docstring). version: the version this report is
    about (or None); installed: the committed version (or None). detail: one line (whitespace
    runs become one space). progress: 0..1 for downloads (4 decimals). timings_s: seconds per
    step (4 decimals). time: default now. Checked on construction."""

    schema: ClassVar[str] = STATUS_SCHEMA

    state: str
    device_id: str
    site: str
    boot_id: str
    version: int | None
    installed: int | None
    rollout_id: str = ""
    detail: str = ""
    progress: float | None = None
    timings_s: dict[str, float] = field(default_factory=dict)
    time: str = field(default_factory=lambda: utc_now_iso())

    def __post_init__(self) -> None:
        object.__setattr__(self, "detail", " ".join(str(self.detail).split()))
        if self.progress is not None:
            object.__setattr__(self, "progress", round(float(self.progress), 4))
        object.__setattr__(self, "timings_s", {k: round(float(v), 4) for k, v in (self.timings_s or {}).items()})
        _check_status(self.to_dict())

    def to_dict(self) -> dict:
        msg: dict[str, Any] = {
            "schema": STATUS_SCHEMA, "device_id": self.device_id, "site": self.site, "boot_id": self.boot_id,
            "time": self.time, "state": self.state, "version": self.version, "installed": self.installed,
            "rollout_id": self.rollout_id, "detail": self.detail,
        }
        if self.progress is not None:
            msg["progress"] = self.progress
        if self.timings_s:
            msg["timings_s"] = dict(self.timings_s)
        return msg

    @classmethod
    def from_dict(cls, msg: dict) -> "StatusMessage":
        _check_status(msg)
        return cls(state=msg["state"], device_id=msg["device_id"], site=msg["site"], boot_id=msg["boot_id"],
                   version=msg.get("version"), installed=msg.get("installed"), rollout_id=msg["rollout_id"],
                   detail=msg["detail"], progress=msg.get("progress"), timings_s=msg.get("timings_s", {}),
                   time=msg["time"])


def _check(msg: Any, schema: str) -> None:
    if not isinstance(msg, dict) or msg.get("schema") != schema:
        got = msg.get("schema") if isinstance(msg, dict) else msg
        raise MessageError(f"schema is {_show(got)}, expected {schema!r}")


def _check_desired(msg: dict) -> None:
    """Raise `MessageError` naming the first field that breaks `laps.ota-desired/1`."""
    _check(msg, DESIRED_SCHEMA)
    v = msg.get("version")
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise MessageError(f"version is {_show(v)}, expected an integer > 0")
    url = msg.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise MessageError(f"url is {_show(url)}, expected an http:// or https:// base URL")
    _sha256(msg, "manifest_sha256")
    if not isinstance(msg.get("rollout_id", ""), str):
        raise MessageError("rollout_id must be a string")
    _iso(msg, "issued")


def _check_status(msg: dict) -> None:
    """Raise `MessageError` naming the first field that breaks `laps.ota-status/1`."""
    _check(msg, STATUS_SCHEMA)
    if msg.get("state") not in STATUS_STATES:
        raise MessageError(f"state is {_show(msg.get('state'))}, expected one of {', '.join(STATUS_STATES)}")
    for key in ("device_id", "site", "boot_id", "time"):
        if not isinstance(msg.get(key), str) or not msg[key]:
            raise MessageError(f"{key} is {_show(msg.get(key))}, expected a non-empty string")
    _iso(msg, "time")
    for key in ("version", "installed"):
        v = msg.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise MessageError(f"{key} is {_show(v)}, expected an integer or null")
    for key in ("rollout_id", "detail"):
        _expect(msg, key, str, "a string")
    progress = _optional(msg, "progress", (int, float), "a number from 0 to 1")
    if progress is not None and not (math.isfinite(progress) and 0 <= progress <= 1):
        raise MessageError(f"field progress = {progress!r}; expected a number from 0 to 1")
    timings = _optional(msg, "timings_s", dict, "an object of seconds per step")
    for step, seconds in (timings or {}).items():
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise MessageError(f"field timings_s.{step} = {_show(seconds)}; expected a number of seconds")
