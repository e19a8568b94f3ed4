"""Helpers of the OTA tests: real bundles with real Ed25519 keys, real device processes
(`python -m edge.cli run --config`), the service tests' real Mosquitto (reused from
tests/service/helpers.py) and a retained-desired publisher.

The model in every bundle is the shipped default model (7 MB ONNX + golden vectors): its golden
self-test is real and takes about a second, faster than training a tiny one with torch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge.messages import Topics
from edge.ota.messages import DesiredMessage
from tests.service.helpers import Mosquitto, Subscriber, wait_until

__all__ = ["Mosquitto", "Subscriber", "wait_until"]  # re-exported for the OTA tests and benchmark

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "edge" / "shipped_models" / "default"
SITE = "ota-site"



# -- bundles ----------------------------------------------------------------------------------------
def seed_model(dest: Path, version: int = 1) -> Path:
    """A copy of the default model directory with manifest version `version`: what a device runs
    before any update. The tests number their bundles from 2 up, whatever version the shipped
    default carries."""
    import shutil

    from edge.model import load_model_directory, write_manifest

    md = load_model_directory(DEFAULT_MODEL)
    shutil.copytree(DEFAULT_MODEL, dest, ignore=shutil.ignore_patterns("trt-cache"))
    write_manifest(dest, md.metadata, bundle_id=md.bundle_id, version=version)
    return dest


def make_bundle(dest: Path, version: int, sign_keys: list[Path], *, break_golden: bool = False,
                rollback_from: tuple[int, ...] = (), source: Path = DEFAULT_MODEL) -> Path:
    """A real bundle of the default model at `version`, signed with each private key given.

    break_golden: the golden clip's expected codes are shifted before the manifest is written
    (a correctly signed bundle whose model does not reproduce its own golden vectors: the
    self-test must catch it)."""
    from export.bundle import build_bundle, sign_bundle

    model_dir = source
    if break_golden:
        import shutil

        from edge.model import load_model_directory, write_manifest

        model_dir = dest.parent / f"{dest.name}-model"
        shutil.copytree(source, model_dir)
        path = model_dir / "golden" / "golden.npz"
        with np.load(path) as data:
            golden = {k: data[k] for k in data.files}
        golden["clip_codes"] = (golden["clip_codes"] + 1) % 1920
        np.savez_compressed(path, **golden)
        md = load_model_directory(source)
        write_manifest(model_dir, md.metadata, bundle_id=md.bundle_id, version=md.manifest["version"])
    build_bundle(model_dir, model_dir / "calibration.json", dest, version=version, rollback_from=rollback_from)
    for key in sign_keys:
        sign_bundle(dest, key)
    return dest


def manifest_sha256(bundle: Path) -> str:
    import hashlib

    return hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()


# -- devices ----------------------------------------------------------------------------------------
def write_device_config(path: Path, *, port: int, state_dir: Path, device: str, trusted: list[Path], model_dir: Path,
                        threshold: int = 1, health_window_s: float = 1.0, health_min_frames: int = 5,
                        latency_budget_ms: float = 2000.0, max_download_bytes: int = 64 * 1024 * 1024) -> Path:
    """A device config with OTA on: a paced synthetic workstation (10 fps, like a camera),
    short MQTT back-off, a health window of about a second; `model_dir` seeds the OTA store
    (`seed_model`)."""
    keys = ", ".join(json.dumps(str(k)) for k in trusted)
    path.write_text(f"""
[device]
site = "{SITE}"
id = "{device}"

[source]
spec = "synthetic://assembly?seed=901&minutes=30&fps=10&nuisances=none"
pace = true

[model]
dir = "{model_dir}"
providers = "cpu"

[mqtt]
host = "127.0.0.1"
port = {port}
keepalive = 5
reconnect_min_s = 0.2
reconnect_max_s = 1.0
drain_timeout_s = 1.0

[metrics]
interval_s = 30

[paths]
state_dir = "{state_dir}"
cache_dir = "{REPO}/.cache/ota-tests"

[ota]
enabled = true
trusted_keys = [{keys}]
threshold = {threshold}
health_window_s = {health_window_s}
health_min_frames = {health_min_frames}
health_grace_s = 20
latency_budget_ms = {latency_budget_ms}
max_download_bytes = {max_download_bytes}
disk_reserve_bytes = 0
download_timeout_s = 5
retry_max_s = 1
""")
    return path


class Device:
    """One real device service process (`python -m edge.cli run --config FILE`)."""

    def __init__(self, config: Path, log: Path, env: dict | None = None, preexec=None,
                 kill_at: str | None = None) -> None:
        self.config, self.log_path = config, log
        self._log = open(log, "ab")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        # kill_at: SIGKILL at that OTA step (tests/ota/kill_at.py), as a power cut would.
        entry = ["-m", "edge.cli"] if kill_at is None else [str(REPO / "tests" / "ota" / "kill_at.py"), kill_at]
        self.proc = subprocess.Popen([sys.executable, *entry, "run", "--config", str(config)],
                                     cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=preexec)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        """SIGTERM our own pid (a clean stop), SIGKILL if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def ota_state(state_dir: Path) -> dict:
    """The device's OTA state file (what `laps-edge ota status` reads)."""
    path = state_dir / "ota" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def current_version(state_dir: Path) -> int | None:
    try:
        return int(Path(os.readlink(state_dir / "ota" / "current")).name)
    except OSError:
        return None


class DesiredPublisher:
    """Publishes the retained desired message of devices, as `laps-central rollout` would."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"test-desired-{os.getpid()}-{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def desire(self, device: str, bundle: Path, url: str, *, version: int | None = None,
               sha256: str | None = None) -> DesiredMessage:
        from edge.ota.manifest import parse_manifest

        v = version if version is not None else parse_manifest((bundle / "manifest.json").read_bytes()).version
        msg = DesiredMessage(v, url, sha256 or manifest_sha256(bundle), rollout_id="test")
        self.client.publish(Topics(SITE, device).ota_desired, msg.to_json(), qos=1, retain=True).wait_for_publish(5)
        return msg

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def statuses(sub, device: str, version: int | None = None) -> list[dict]:
    """The ota/status messages of one device (optionally about one version), oldest first."""
    out = [m for m in sub.payloads("ota/status") if m.get("device_id") == device]
    return [m for m in out if version is None or m.get("version") == version]


def final_status(sub, device: str, version: int) -> dict | None:
    """The device's last final status (committed, rolled_back, refused, failed) about `version`."""
    finals = [m for m in statuses(sub, device, version) if m["state"] in ("committed", "rolled_back", "refused", "failed")]
    return finals[-1] if finals else None


class CuttingServer:
    """A real HTTP server on loopback serving one file with Range support, whose first
    `cuts` full responses announce the whole length but close the connection after
    `cut_at` bytes (a network drop mid-transfer). `ranges` records each Range header."""

    def __init__(self, path: Path, cut_at: int, cuts: int = 1) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        data = Path(path).read_bytes()
        self.ranges: list[str] = []
        self.cuts_left = cuts
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                rng = self.headers.get("Range", "")
                outer.ranges.append(rng)
                start = int(rng[6:].split("-")[0]) if rng.startswith("bytes=") else 0
                body = data[start:]
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if outer.cuts_left > 0 and not rng:
                    outer.cuts_left -= 1
                    self.wfile.write(body[:cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/file"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
