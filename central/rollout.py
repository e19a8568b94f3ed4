"""Staged OTA rollout of a signed bundle to the fleet (`laps-central rollout start|status|abort`).

    BundleServer   serves bundle folders over HTTP(S): GET/HEAD /bundles/<version>/<file>,
                   with Range (206) so devices resume interrupted downloads
    Rollout        publishes the retained `laps.ota-desired/1` per cohort: the canary devices,
                   then growing percentages of the rest, then all; follows `.../ota/status`;
                   a device that does not commit within `device_timeout_s` counts as failed;
                   once at least `min_devices` devices finished, a failure rate above
                   `max_failure_rate` aborts: every device that was sent the new version gets
                   the baseline desired back (or the retained desired is cleared)
    RolloutState   the JSON state file `<data_dir>/rollout/state.json` (written atomically on
                   every change): `rollout status` prints it, `rollout abort` sets a flag the
                   running rollout obeys (or aborts itself when no rollout process is alive)

Which devices count as failed: a status "rolled_back" or "refused" for the new version (the
bundle's fault), or no "committed" within the timeout. A "failed" status is a transport problem
the device retries by itself; it only shows in `status`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from central.http_server import HttpService, server_tls_context
from edge.broker import new_client
from edge.errors import ConfigError, LapsError
from edge.messages import Topics, parse_topic, utc_now_iso
from edge.ota.manifest import parse_manifest
from edge.ota.messages import BUNDLE_FAILURES, DesiredMessage, StatusMessage

log = logging.getLogger(__name__)

STATE_SCHEMA = "laps.rollout-state/1"
#: per-device states kept by the rollout (besides the device's own laps.ota-status/1 states)
WAITING, SENT, TIMED_OUT = "waiting", "sent", "timed_out"
DONE_OK = ("committed",)
DONE_BAD = BUNDLE_FAILURES + (TIMED_OUT,)


class RolloutError(LapsError):
    """A rollout cannot start or be changed as asked."""


# -- serving bundles -------------------------------------------------------------------------------------
class BundleServer:
    """Serves `{version: bundle folder}` at `<url>/bundles/<version>/<relpath>` (GET/HEAD, Range).

    cert/key: serve HTTPS. public_url: the base URL devices are sent, when not the bound
    address. workers/queue/timeout_s: as `central.http_server.HttpService` (downloads served at
    once, connections waiting, seconds a stalled connection is kept)."""

    def __init__(self, bundles: dict[int, Path], host: str = "127.0.0.1", port: int = 0,
                 cert: str = "", key: str = "", public_url: str = "", *, workers: int = 32, queue: int = 256,
                 timeout_s: float = 60.0) -> None:
        self.public_url = public_url.rstrip("/")
        self.bundles = {int(v): Path(p).resolve() for v, p in bundles.items()}
        self.requests: list[tuple[str, int]] = []
        self._http = HttpService(_bundle_handler(self), host=host, port=port, workers=workers, queue=queue,
                                 timeout_s=timeout_s, tls=server_tls_context(cert, key), name="bundle server")
        self.scheme = self._http.scheme

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        """The base URL devices are sent (public_url when set, else the bound address)."""
        return self.public_url or self._http.local_url

    def bundle_url(self, version: int) -> str:
        return f"{self.url}/bundles/{int(version)}"

    def start(self) -> "BundleServer":
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def resolve(self, path: str) -> Path | None:
        """The file for a request path, or None (unknown version, outside the bundle, missing)."""
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) < 3 or parts[0] != "bundles" or not parts[1].isdigit():
            return None
        root = self.bundles.get(int(parts[1]))
        if root is None:
            return None
        target = (root / "/".join(parts[2:])).resolve()
        if root not in target.parents or not target.is_file():
            return None
        return target


def _bundle_handler(server: BundleServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args) -> None:
            log.debug("bundle server: " + fmt, *args)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._serve(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            target = server.resolve(self.path)
            if target is None:
                return self._plain(404, b"no such bundle file\n")
            size = target.stat().st_size
            start, end, status = 0, size - 1, 200
            rng = self.headers.get("Range", "")
            if rng.startswith("bytes="):
                first, _, last = rng[6:].partition("-")
                try:
                    start = int(first) if first else max(size - int(last), 0)
                    end = min(int(last), size - 1) if (first and last) else size - 1
                except ValueError:
                    return self._plain(416, b"bad range\n")
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    server.requests.append((self.path, 416))
                    return
                status = 206
            length = max(end - start + 1, 0)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            server.requests.append((self.path, status))
            if not body:
                return
            with open(target, "rb") as fh:
                fh.seek(start)
                left = length
                while left > 0:
                    block = fh.read(min(left, 256 * 1024))
                    if not block:
                        break
                    try:
                        self.wfile.write(block)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    left -= len(block)

        def _plain(self, status: int, text: bytes) -> None:
            server.requests.append((self.path, status))
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    return Handler


# -- the plan and its state ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Bundle:
    """A bundle folder to ship: its version and the sha256 of its manifest bytes."""

    path: Path
    version: int
    manifest_sha256: str

    @classmethod
    def open(cls, path: str | os.PathLike) -> "Bundle":
        p = Path(path)
        try:
            raw = (p / "manifest.json").read_bytes()
        except OSError as err:
            raise RolloutError(f"bundle {p} has no readable manifest.json ({err.strerror}); build it with "
                               "`laps-export bundle build`") from None
        if not (p / "manifest.sig").is_file():
            raise RolloutError(f"bundle {p} is unsigned; sign it with `laps-export bundle sign` (devices refuse it)")
        m = parse_manifest(raw, str(p / "manifest.json"))
        return cls(p, m.version, hashlib.sha256(raw).hexdigest())


@dataclass
class RolloutPlan:
    """devices: "site/device" names. canary: names from `devices` updated first. stages:
    cumulative percentages of the remaining devices (the last is forced to 100).
    max_failure_rate: abort when failed / finished exceeds it ... once finished >= min_devices.
    device_timeout_s: a device that has not committed this long after its desired counts as failed."""

    bundle: Bundle
    devices: list[str]
    canary: list[str] = field(default_factory=list)
    stages: list[float] = field(default_factory=lambda: [10.0, 50.0, 100.0])
    max_failure_rate: float = 0.2
    min_devices: int = 3
    device_timeout_s: float = 1800.0
    baseline: Bundle | None = None
    rollout_id: str = ""

    def __post_init__(self) -> None:
        if not self.devices:
            raise RolloutError("no devices to roll out to; pass --devices site/device,... or --devices-file")
        for name in self.devices + self.canary:
            if name.count("/") != 1 or not all(name.split("/")):
                raise RolloutError(f"device {name!r} is not site/device; name each device as <site>/<device-id>")
        unknown = [c for c in self.canary if c not in self.devices]
        if unknown:
            raise RolloutError(f"canary device {unknown[0]!r} is not in --devices; list it there too")
        if not 0.0 <= self.max_failure_rate < 1.0:
            raise RolloutError(f"max failure rate {self.max_failure_rate} is not allowed; use 0 <= rate < 1")
        if self.min_devices < 1:
            raise RolloutError(f"min devices {self.min_devices} is not allowed; use >= 1")
        if any(not 0 < p <= 100 for p in self.stages) or self.stages != sorted(self.stages):
            raise RolloutError(f"stages {self.stages} must be increasing percentages in (0, 100]")
        self.rollout_id = self.rollout_id or f"r{self.bundle.version}-{uuid.uuid4().hex[:8]}"

    def cohorts(self) -> list[list[str]]:
        """Canary first, then the rest in a stable pseudo-random order, split at the stage
        percentages (cumulative), the last stage always reaching everyone."""
        rest = sorted((d for d in dict.fromkeys(self.devices) if d not in self.canary),
                      key=lambda d: hashlib.sha256(f"{self.rollout_id}:{d}".encode()).hexdigest())
        out = [list(dict.fromkeys(self.canary))] if self.canary else []
        done = 0
        stages = list(self.stages[:-1]) + [100.0] if self.stages else [100.0]
        for pct in stages:
            upto = min(len(rest), max(done + 1, math.ceil(len(rest) * pct / 100.0))) if rest else 0
            if upto > done:
                out.append(rest[done:upto])
                done = upto
        return [c for c in out if c]


class RolloutState:
    """The state file of the current (or last) rollout."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def load(self) -> dict | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise RolloutError(f"rollout state {self.path} is unreadable ({err}); delete it to start over") from None

    def save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)

    def request_abort(self, reason: str) -> dict:
        data = self.load()
        if data is None:
            raise RolloutError(f"no rollout recorded in {self.path}; nothing to abort")
        data["abort_requested"] = reason
        self.save(data)
        return data


def state_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / "rollout" / "state.json"


# -- the rollout ---------------------------------------------------------------------------------------
class Rollout:
    """Runs a `RolloutPlan` against a broker until it completes or aborts.

    mqtt: central's `[mqtt]` config section (host, port, credentials, TLS). server: the running
    `BundleServer` holding the bundle (and the baseline). state: where progress is written.
    """

    def __init__(self, plan: RolloutPlan, mqtt_cfg, server: BundleServer, state: RolloutState,
                 poll_s: float = 0.1) -> None:
        self.plan, self.cfg, self.server, self.state_file = plan, mqtt_cfg, server, state
        self.poll_s = poll_s
        self._statuses: queue.Queue[tuple[str, StatusMessage]] = queue.Queue()
        self._connected = threading.Event()
        self.stop_event = threading.Event()
        self.data: dict = {}
        self._client = None

    # -- public ---------------------------------------------------------------------------------------
    def run(self) -> str:
        """Roll out; returns "completed" or "aborted" (or "stopped" on `stop_event`)."""
        plan = self.plan
        cohorts = plan.cohorts()
        now = time.time()
        self.data = {
            "schema": STATE_SCHEMA, "rollout_id": plan.rollout_id, "version": plan.bundle.version,
            "bundle": str(plan.bundle.path), "baseline": plan.baseline.version if plan.baseline else None,
            "state": "running", "pid": os.getpid(), "started": utc_now_iso(), "stage": 0,
            "stages": len(cohorts), "max_failure_rate": plan.max_failure_rate, "min_devices": plan.min_devices,
            "device_timeout_s": plan.device_timeout_s, "abort_requested": "", "reason": "",
            "devices": {d: {"cohort": i, "state": WAITING, "since": now, "detail": "", "installed": None}
                        for i, cohort in enumerate(cohorts) for d in cohort},
        }
        self._save()
        self._connect()
        try:
            for i, cohort in enumerate(cohorts):
                self.data["stage"] = i + 1
                log.info("rollout %s: stage %d/%d, %d device(s): %s", plan.rollout_id, i + 1, len(cohorts),
                         len(cohort), ", ".join(cohort))
                for name in cohort:
                    self._publish_desired(name, plan.bundle)
                    self.data["devices"][name].update(state=SENT, since=time.time(), detail="desired published")
                self._save()
                outcome = self._follow(cohort)
                if outcome != "next":
                    return outcome
            return self._finish("completed", "every device committed")
        finally:
            self._disconnect()

    # -- following ------------------------------------------------------------------------------------
    def _follow(self, cohort: list[str]) -> str:
        devices = self.data["devices"]
        while True:
            if self.stop_event.is_set():
                return self._finish("stopped", "stopped by the operator (desired left as is)")
            changed = self._drain_statuses()
            now = time.time()
            for name in cohort:
                d = devices[name]
                if d["state"] not in DONE_OK + DONE_BAD and now - d["since"] > self.plan.device_timeout_s:
                    d.update(state=TIMED_OUT, detail=f"no commit within {self.plan.device_timeout_s:g} s")
                    changed = True
            if changed:
                self._save()
            requested = (self.state_file.load() or {}).get("abort_requested")
            if requested:
                return self._abort(f"aborted by the operator: {requested}")
            started = [d for d in devices.values() if d["state"] != WAITING]
            finished = [d for d in started if d["state"] in DONE_OK + DONE_BAD]
            failed = [d for d in finished if d["state"] in DONE_BAD]
            if len(finished) >= self.plan.min_devices and len(failed) / len(finished) > self.plan.max_failure_rate:
                return self._abort(f"{len(failed)} of {len(finished)} finished device(s) failed, over the "
                                   f"{self.plan.max_failure_rate:.0%} limit")
            if all(devices[n]["state"] in DONE_OK + DONE_BAD for n in cohort):
                return "next"
            time.sleep(self.poll_s)

    def _drain_statuses(self) -> bool:
        changed = False
        while True:
            try:
                name, msg = self._statuses.get_nowait()
            except queue.Empty:
                return changed
            d = self.data["devices"].get(name)
            if d is None or d["state"] == WAITING:
                continue
            d["installed"] = msg.installed
            if msg.version != self.plan.bundle.version:
                continue
            if d["state"] in DONE_OK + DONE_BAD and msg.state not in DONE_OK + DONE_BAD:
                continue  # a late progress report does not reopen a finished device
            d.update(state=msg.state, detail=msg.detail, reported=msg.time)
            changed = True

    def _abort(self, reason: str) -> str:
        log.error("rollout %s aborted: %s", self.plan.rollout_id, reason)
        for name, d in self.data["devices"].items():
            if d["state"] == WAITING:
                continue
            if self.plan.baseline is not None:
                self._publish_desired(name, self.plan.baseline)
            else:
                self._clear_desired(name)
            d["desired_reset"] = True
        return self._finish("aborted", reason)

    def _finish(self, state: str, reason: str) -> str:
        self.data.update(state=state, reason=reason, finished=utc_now_iso())
        self._save()
        log.info("rollout %s %s: %s", self.plan.rollout_id, state, reason)
        return state

    def _save(self) -> None:
        current = self.state_file.load() or {}
        if current.get("rollout_id") == self.plan.rollout_id and current.get("abort_requested"):
            self.data["abort_requested"] = current["abort_requested"]
        self.state_file.save(self.data)

    # -- MQTT -----------------------------------------------------------------------------------------
    def _connect(self) -> None:
        self._client = connect_client(self.cfg, f"laps-central-rollout-{uuid.uuid4().hex[:8]}",
                                      on_message=self._on_message, subscribe="laps/v1/+/+/ota/status",
                                      connected=self._connected)
        if not self._connected.wait(15.0):
            self._disconnect()
            raise RolloutError(f"cannot reach the MQTT broker {self.cfg.host}:{self.cfg.effective_port} for the "
                               "rollout; check [mqtt] in the central config")

    def _disconnect(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None

    def _on_message(self, client, userdata, msg) -> None:
        try:
            site, device, kind = parse_topic(msg.topic)
            status = StatusMessage.from_json(msg.payload)
        except LapsError as err:
            log.warning("ignoring a malformed OTA status on %s: %s", msg.topic, err)
            return
        self._statuses.put((f"{site}/{device}", status))

    def _publish_desired(self, name: str, bundle: Bundle) -> None:
        site, device = name.split("/")
        msg = DesiredMessage(bundle.version, self.server.bundle_url(bundle.version), bundle.manifest_sha256,
                             rollout_id=self.plan.rollout_id)
        self._client.publish(Topics(site, device).ota_desired, msg.to_json(), qos=1, retain=True).wait_for_publish(10)

    def _clear_desired(self, name: str) -> None:
        site, device = name.split("/")
        self._client.publish(Topics(site, device).ota_desired, b"", qos=1, retain=True).wait_for_publish(10)


def connect_client(cfg, client_id: str, *, on_message=None, subscribe: str = "", connected: threading.Event | None = None):
    """A started paho MQTT v5 client for central's `[mqtt]` section (credentials, TLS)."""
    client = new_client(cfg, client_id)

    def on_connect(c, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the rollout client: %s", reason)
            return
        if subscribe:
            c.subscribe(subscribe, qos=1)
        if connected is not None:
            connected.set()

    client.on_connect = on_connect
    if on_message is not None:
        client.on_message = on_message
    client.connect_async(cfg.host, cfg.effective_port, keepalive=cfg.keepalive)
    client.loop_start()
    return client


def abort_without_runner(data: dict, mqtt_cfg) -> dict:
    """Abort a rollout whose process is gone: clear the retained desired of every device that was
    sent the new version (the baseline's bundle server died with that process, so no desired can
    point at it), and mark the state aborted. Returns the new state."""
    connected = threading.Event()
    client = connect_client(mqtt_cfg, f"laps-central-rollout-abort-{uuid.uuid4().hex[:8]}", connected=connected)
    try:
        if not connected.wait(15.0):
            raise RolloutError(f"cannot reach the MQTT broker {mqtt_cfg.host}:{mqtt_cfg.effective_port}; "
                               "check [mqtt] in the central config")
        for name, d in data.get("devices", {}).items():
            if d.get("state") != WAITING:
                site, device = name.split("/")
                client.publish(Topics(site, device).ota_desired, b"", qos=1, retain=True).wait_for_publish(10)
                d["desired_reset"] = True
    finally:
        client.loop_stop()
        client.disconnect()
    data.update(state="aborted", reason=data.get("abort_requested") or "aborted by the operator",
                finished=utc_now_iso())
    return data


def process_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def format_status(data: dict) -> str:
    """A human-readable table of where each device stands."""
    devices = data.get("devices", {})
    counts: dict[str, int] = {}
    for d in devices.values():
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    lines = [
        f"rollout {data.get('rollout_id')}: version {data.get('version')} ({data.get('state')}"
        + (f": {data.get('reason')}" if data.get("reason") else "") + f"), stage {data.get('stage')}/{data.get('stages')}",
        "  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())),
        f"  {'device':32} {'cohort':>6} {'state':12} {'installed':>14}  detail",
    ]
    for name, d in sorted(devices.items(), key=lambda kv: (kv[1]["cohort"], kv[0])):
        installed = "" if d.get("installed") is None else str(d["installed"])
        lines.append(f"  {name:32} {d['cohort']:>6} {d['state']:12} {installed:>14}  {d.get('detail', '')[:100]}")
    return "\n".join(lines)


def load_devices(spec: str | None, path: str | None) -> list[str]:
    """Device names from a comma list and/or a file (one site/device per line, # comments)."""
    names: list[str] = []
    if spec:
        names += [n.strip() for n in spec.split(",") if n.strip()]
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"--devices-file {path} cannot be read ({err.strerror}); pass a file with one "
                              "site/device per line") from None
        names += [ln.split("#", 1)[0].strip() for ln in text.splitlines() if ln.split("#", 1)[0].strip()]
    return list(dict.fromkeys(names))
