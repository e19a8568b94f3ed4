"""Helpers for the edge service tests: a REAL Mosquitto broker, a real subscriber, a real HTTP receiver.

The broker is the Debian package's `/usr/sbin/mosquitto`, started on a free loopback port with
a generated config (persistence on, so a restarted broker keeps the subscriber's session as a
production broker would), and always ended by its own pid — never by name.
"""

from __future__ import annotations

import textwrap

import datetime as dt
import getpass
import ipaddress
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Mosquitto:
    """One mosquitto process on 127.0.0.1:`port`, restartable on the same port.

    users: {name: password} -> a password file and no anonymous access.
    auth_files: (password_file, acl_file) made elsewhere (`laps-central devices`) -> used as they
    are, no anonymous access; `reload()` makes the broker re-read them.
    tls: (ca, cert, key) paths -> the listener speaks TLS.
    quiet: errors-only log and no persistence (for benchmarks; tests read the full log).
    """

    def __init__(self, workdir: Path, port: int | None = None, users: dict[str, str] | None = None,
                 tls: tuple[str, str, str] | None = None, quiet: bool = False,
                 auth_files: tuple[Path, Path] | None = None) -> None:
        if not os.path.exists(MOSQUITTO):
            pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log_path = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen | None = None
        # quiet (benchmarks): no per-message debug log and no persistence file, as a tuned
        # production broker; the tests read the full log (connections, subscriptions).
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false" if quiet else "persistence true",
            f"persistence_location {self.dir}/",
            f"log_dest file {self.log_path}",
            "log_type error" if quiet else "log_type all",
            "connection_messages true",
            "max_queued_messages 1000000",
        ]
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")
        if users:
            pw = self.dir / "passwd"
            pw.write_text("")
            for name, password in users.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), name, password], check=True,
                               capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        elif auth_files:
            lines += ["allow_anonymous false", f"password_file {auth_files[0]}", f"acl_file {auth_files[1]}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            ca, cert, key = tls
            lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}", "require_certificate false"]
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self) -> "Mosquitto":
        assert self.proc is None, "already running"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        if not wait_until(self._listening, 10.0):
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {err}")
        return self

    def _listening(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM our own pid (mosquitto saves its persistence file), SIGKILL if it hangs."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a frozen broker cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL our own pid: no persistence save, sessions since the last autosave are gone."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def reload(self) -> None:
        """SIGHUP our own pid: Mosquitto re-reads its password and ACL files."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGHUP)

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def connection_attempts(self) -> int:
        """TCP connections the broker accepted so far (one per client connect attempt)."""
        return self.log_text().count("New connection from")


class Subscriber:
    """A real paho subscriber with a persistent session: records every message by topic kind."""

    def __init__(self, port: int, topic: str = "laps/v1/#", client_id: str | None = None,
                 tls_ca: str | None = None, username: str | None = None, password: str | None = None,
                 host: str = "127.0.0.1") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.messages: list[tuple[str, bytes, bool, float]] = []
        self._lock = threading.Lock()
        self.topic = topic
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-sub-{os.getpid()}-{time.monotonic_ns()}",
                                  protocol=mqtt.MQTTv5)
        if tls_ca:
            self.client.tls_set(ca_certs=tls_ca)
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async(host, port, keepalive=2, clean_start=False, properties=props)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic, qos=1)
            self.subscribed.set()

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), time.monotonic()))

    def wait_subscribed(self, timeout: float = 5.0) -> None:
        assert self.subscribed.wait(timeout), "test subscriber could not connect"
        time.sleep(0.1)  # SUBACK round trip

    def payloads(self, kind: str) -> list[dict]:
        with self._lock:
            msgs = list(self.messages)
        return [json.loads(p) for t, p, _, _ in msgs if t.endswith("/" + kind) and p]

    def segment_ids(self) -> set[str]:
        return {m["segment_id"] for m in self.payloads("segments")}

    def first_arrivals(self, kind: str = "segments") -> dict[str, float]:
        """{segment_id: monotonic time its first copy arrived} for messages of topic kind `kind`."""
        with self._lock:
            msgs = list(self.messages)
        out: dict[str, float] = {}
        for t, p, _, when in msgs:
            if t.endswith("/" + kind) and p:
                out.setdefault(json.loads(p)["segment_id"], when)
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def make_tls_files(folder: Path, clients: tuple[str, ...] = ()) -> tuple[str, str, str]:
    """A CA and a server certificate for localhost/127.0.0.1 signed by it (cryptography).
    clients: common names of client certificates to sign too, written as <cn>.pem and <cn>.key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "laps-test-ca")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    for cn in clients:
        client_key = ec.generate_private_key(ec.SECP256R1())
        client_cert = (
            x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name).public_key(client_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        (folder / f"{cn}.pem").write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{cn}.key").write_bytes(client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tuple(str(p) for p in paths)  # type: ignore[return-value]


def write_config(path: Path, *, port: int, state_dir: Path, extra: str = "", mqtt_extra: str = "",
                 source: str = "synthetic:seed=900", site: str = "test-site", device: str = "dev-1",
                 keepalive: int = 2, metrics_interval: float = 0.5, delivery: str = "broker",
                 ack_timeout_s: float = 30.0) -> Path:
    """A device config TOML for tests (short keepalive and back-off). delivery "broker": rows
    leave the outbox on the broker's PUBACK, as a test without a central ingest needs;
    "central" waits for the ingest's acks (re-sent after ack_timeout_s)."""
    path.write_text(
        f"""
[device]
site = "{site}"
id = "{device}"

[source]
spec = "{source}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0

[mqtt]
host = "127.0.0.1"
port = {port}
keepalive = {keepalive}
reconnect_min_s = 0.2
reconnect_max_s = 1.0
drain_timeout_s = 2.0
delivery = "{delivery}"
ack_timeout_s = {ack_timeout_s}
{mqtt_extra}

[metrics]
interval_s = {metrics_interval}

[paths]
state_dir = "{state_dir}"
cache_dir = "{state_dir}/cache"
{extra}
"""
    )
    return path



class DeviceProcess:
    """`python -m tests.service.publisher` as a real subprocess; collects the ids it reports committed."""

    def __init__(self, config: Path, segments: int, interval_s: float, until_drained_s: float = 0.0,
                 seed: int = 0) -> None:
        self.committed: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.service.publisher", "--config", str(config), "--synthetic-segments", str(segments),
             "--interval-s", str(interval_s), "--until-drained-s", str(until_drained_s), "--seed", str(seed)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.stderr = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._err_reader = threading.Thread(target=self._read_err, daemon=True)
        self._err_reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith("committed "):
                self.committed.append(line.split()[1])

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read()

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.wait()

    def wait(self, timeout: float = 30.0) -> int:
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        self._err_reader.join(5)
        return rc


def outbox_keys(state_dir: Path) -> set[str]:
    path = state_dir / "outbox.sqlite"
    if not path.exists():
        return set()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {k for (k,) in db.execute("SELECT key FROM outbox")}
    finally:
        db.close()


class BatchReceiver:
    """A real HTTP server on loopback that stores `PUT /v1/batches/<device>/<sha256>` bodies.

    It checks the body's sha256 against the path (400 on mismatch), answers 201 for a new
    batch and 200 for one it already holds (idempotent). `fail_next` answers 503 that many times.
    """

    def __init__(self, folder: Path) -> None:
        import hashlib
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.requests: list[tuple[str, int]] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def do_PUT(self) -> None:
                parts = self.path.strip("/").split("/")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    return self._answer(503, b"busy")
                if len(parts) != 4 or parts[:2] != ["v1", "batches"]:
                    return self._answer(404, b"no such path")
                device, sha = parts[2], parts[3]
                if hashlib.sha256(body).hexdigest() != sha:
                    return self._answer(400, b"sha256 mismatch")
                target = receiver.folder / device / f"{sha}.tar"
                if target.exists():
                    return self._answer(200, b"already stored")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
                return self._answer(201, b"stored")

            def _answer(self, code: int, text: bytes) -> None:
                receiver.requests.append((self.path, code))
                self.send_response(code)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stored(self, device: str) -> list[Path]:
        return sorted((self.folder / device).glob("*.tar"))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def write_video(path: Path, seconds: float, fps: float = 10.0, size: tuple[int, int] = (320, 240),
                fourcc: str = "MJPG") -> Path:
    """A video of `size` (w, h) in `fourcc` (MJPEG AVI by default; "mp4v" for long ones): a
    textured square (a quarter of the height) at rest for 2 s, moving for 2 s, alternately."""
    w, h = size
    side = h // 4
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    rng = np.random.default_rng(900)
    texture = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    background = rng.integers(40, 80, (h, w, 3), dtype=np.uint8)
    x0, y0 = w // 8, (h - side) // 2
    x = x0
    for i in range(int(seconds * fps)):
        if (i // 20) % 2 == 1:
            x = x0 + int(3 * w / 8 * abs(np.sin(i / 4.0)))
        img = background.copy()
        img[y0:y0 + side, x:x + side] = texture
        writer.write(img)
    writer.release()
    return path


#: The smallest valid device configuration (no broker contacted, a camera that may be absent).
MINIMAL_EDGE_TOML = """
[device]
site = "plant-a"
id = "ws-07"

[source]
spec = "/dev/video0"
"""


def write_toml(tmp_path: Path, text: str, name: str = "edge.toml") -> Path:
    """Write `text` (dedented) to tmp_path/name; returns the path."""
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p
