"""Helpers of the central tests (imported by the tests and by conftest.py): the service tests'
real-Mosquitto helper, segment messages exactly as the device builds them, a QoS 1 publisher,
and a central configuration file writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from edge.messages import SegmentMessage, Topics
from edge.segments import Segment, utc_iso, uuid7
from tests.service.helpers import Mosquitto, Subscriber, free_port, wait_until

__all__ = ["Mosquitto", "Subscriber", "free_port", "wait_until"]  # re-exported for the central tests

MODEL_VERSION = "tiny-central-test"


def make_segments(n: int, *, seed: int = 0, steps: int = 12, codes: list[list[int]] | None = None,
                  origin: datetime | None = None, keyframes: int = 0) -> list[Segment]:
    """`n` segments one after another (5 s apart), with given or random codes (< 1920)."""
    rng = np.random.default_rng(seed)
    origin = origin or datetime(2026, 1, 5, 8, 0, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        c = codes[i] if codes is not None else rng.integers(0, 1920, size=steps).tolist()
        start = i * 50
        end = start + len(c)
        ms = int((origin + timedelta(seconds=start / 10)).timestamp() * 1000)
        out.append(Segment(
            segment_id=str(uuid7(ms)), start_frame=start, end_frame=end, start_s=start / 10, end_s=end / 10, fps=10.0,
            start_utc=utc_iso(origin, start / 10), end_utc=utc_iso(origin, end / 10), codes=[int(v) for v in c],
            energy_mean=1.0, energy_max=2.0, keyframes=list(range(start, start + keyframes)),
            model_version=MODEL_VERSION,
        ))
    return out


def motif_motion(kind: int, rng: np.random.Generator, steps: int = 12) -> str:
    """An encoded summary of `steps` steps where the points of one image quadrant (0-3) move
    right at ~3 px/step and the rest stay still: one 'primitive' per quadrant."""
    from edge.motion_summary import MotionSummary, encode_motion

    grid = 20
    summary = MotionSummary(grid)
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    inside = ((rows < grid // 2) == (kind < 2)) & ((cols < grid // 2) == (kind % 2 == 0))
    out = []
    for _ in range(steps):
        v = np.zeros((grid * grid, 2), np.float32)
        v[inside, 0] = 3.0 + rng.normal(0, 0.3)
        v[inside, 1] = rng.normal(0, 0.3)
        out.append(summary.step(v, np.ones(grid * grid, bool)))
    return encode_motion(MotionSummary.segment(np.stack(out)))


def segment_payloads(segments: list[Segment], site: str = "site-a", device: str = "dev-1") -> list[tuple[str, bytes]]:
    """(topic, payload) per segment exactly as the device publishes them."""
    topics = Topics(site, device)
    return [(topics.segments, SegmentMessage.from_segment(s, device_id=device, site=site, boot_id="boot-1", seq=i).to_json())
            for i, s in enumerate(segments)]


class Publisher:
    """A plain paho publisher (QoS 1) that waits for every PUBACK."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"test-pub-{uuid7()}", protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish_all(self, items: list[tuple[str, bytes]], timeout: float = 20.0) -> None:
        infos = [self.client.publish(t, p, qos=1) for t, p in items]
        for info in infos:
            info.wait_for_publish(timeout)
            assert info.is_published()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_central_config(path: Path, *, port: int, data_dir: Path, models_dir: Path | None = None,
                         http_port: int = 0, group: str = "laps-central", extra: str = "",
                         reconnect_min_s: float = 0.1, reconnect_max_s: float = 0.5, store_url: str = "",
                         client_id: str = "") -> Path:
    """A central config: SQLite in data_dir, or the store at `store_url`; `extra` lands in [http]."""
    path.write_text(f"""
[paths]
data_dir = "{data_dir}"
models_dir = "{models_dir or data_dir / 'models'}"

[store]
path = "{data_dir / 'central.sqlite'}"
url = "{store_url}"

[mqtt]
host = "127.0.0.1"
port = {port}
group = "{group}"
client_id = "{client_id}"
keepalive = 2
reconnect_min_s = {reconnect_min_s}
reconnect_max_s = {reconnect_max_s}

[http]
host = "127.0.0.1"
port = {http_port}
{extra}
""")
    return path


class IngestProcess:
    """`laps-central ingest` as a real subprocess (`python -m central.cli ingest`), logging to a file."""

    def __init__(self, config: Path, log_path: Path, workers: int = 1) -> None:
        self.cmd = [sys.executable, "-m", "central.cli", "ingest", "--config", str(config), "--workers", str(workers),
                    "--no-http", "--stats-interval", "1"]
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        """SIGTERM and wait: the exit status (0 for a clean stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def stored_ids(store_path: Path) -> list[str]:
    """Every segment id in a central store (read-only; [] before the file exists)."""
    if not store_path.exists():
        return []
    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=10)
    try:
        return [r[0] for r in db.execute("SELECT segment_id FROM segments")]
    finally:
        db.close()


def store_counters(store_path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=10)
    try:
        return {n: int(v) for n, v in db.execute("SELECT name, value FROM counters")}
    finally:
        db.close()
