"""Edge service benchmarks: delivery latency, outbox throughput, start -> READY, steady state.

Rows (each beside a baseline measured in the same run):
- END event -> delivery at a subscriber (median, p99 ms) through the real outbox (fsync) and
  MqttLink on a loopback Mosquitto; baseline: a bare paho QoS 1 publish (no outbox).
- outbox throughput with fsync (synchronous=FULL, messages/s); baseline: synchronous=OFF.
- `laps-edge run --config` start -> READY=1 (sd_notify on a real socket) with a cold and a warm
  Numba cache; the ratio is warm/cold.
- steady-state RSS (MiB) and CPU (% of one core) of the service at model fps 10 on a paced
  640x480 video with the shipped default tokenizer on ORT CPU; baseline: the same pipeline in a
  bare paced loop without MQTT/outbox.

Run: `python -m benchmarks.edge_service` (needs /usr/sbin/mosquitto). A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_table, write_results
from tests.service.helpers import Mosquitto, Subscriber, wait_until, write_video

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "edge" / "shipped_models" / "default"

LAPS_EDGE = str(Path(sys.executable).parent / "laps-edge")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300, help="segments for the latency rows")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the start -> READY rows")
    parser.add_argument("--steady-s", type=float, default=12.0, help="seconds sampled for RSS/CPU")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="laps-bench-", dir=scratch_dir()))
    rows: list[dict] = []
    broker = Mosquitto(work / "broker", quiet=True).start()
    try:
        rows += latency_rows(broker.port, work, args.messages)
        rows += outbox_rows(work)
        video = write_video(work / "station640.avi", seconds=90, size=(640, 480))
        rows += ready_rows(broker.port, work, video, args.repeats)
        rows += steady_rows(broker.port, work, video, args.steady_s)
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows, "edge service (loopback Mosquitto, this machine)")
    write_results("edge_service", rows, extra={"notes": (
        "latency: END event handed to the runtime -> on_message at a subscriber in the same process; "
        "pipeline: the shipped default tokenizer (edge/shipped_models/default) on ORT CPU; source: generated "
        "640x480 MJPEG file, paced to 10 fps")})


# -- 1. END -> delivery ------------------------------------------------------------------------------
def latency_rows(port: int, work: Path, n: int) -> list[dict]:
    from edge.config import config_from_dict
    from edge.device_runtime import DeviceRuntime
    from tests.service.publisher import synthetic_segments

    sub = Subscriber(port, topic="laps/v1/+/+/segments")
    sub.wait_subscribed(10)
    cfg = config_from_dict({
        "device": {"site": "bench", "id": "dev-1"}, "source": {"spec": "none"},
        # No central ingest here: rows leave on the broker's PUBACK (delivery "central" waits for acks).
        "mqtt": {"host": "127.0.0.1", "port": port, "keepalive": 10, "delivery": "broker"},
        "metrics": {"interval_s": 3600.0}, "paths": {"state_dir": str(work / "lat"), "cache_dir": str(work / "lat")},
    })
    rt = DeviceRuntime(cfg)
    rt.start(model_version="synthetic", providers=[])
    assert rt.link.wait_connected(10), "broker not reachable"
    sent: dict[str, float] = {}
    for seg in synthetic_segments(n):
        sent[seg.segment_id] = time.monotonic()
        rt.emit(seg)
        time.sleep(0.02)  # segments end at most a few times a second; 50/s is already generous
    wait_until(lambda: len(sub.first_arrivals()) >= n, 20)
    rt.close()
    arrivals = sub.first_arrivals()
    service = [1e3 * (arrivals[k] - t) for k, t in sent.items() if k in arrivals]

    # Baseline: a bare paho QoS 1 publish of the same payload size, no outbox, no fsync.
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-raw",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    raw_sent: dict[str, float] = {}
    for i in range(n):
        key = f"raw-{i}"
        raw_sent[key] = time.monotonic()
        client.publish("laps/v1/bench/raw/segments", json.dumps({"segment_id": key, "pad": "x" * 400}), qos=1)
        time.sleep(0.02)
    wait_until(lambda: all(k in sub.first_arrivals() for k in raw_sent), 20)
    client.loop_stop()
    client.disconnect()
    sub.close()
    arrivals = sub.first_arrivals()
    raw = [1e3 * (arrivals[k] - t) for k, t in raw_sent.items() if k in arrivals]
    med, p99 = statistics.median(service), _p99(service)
    raw_med, raw_p99 = statistics.median(raw), _p99(raw)
    return [
        {"name": "END -> delivery, outbox(fsync)+MqttLink", "median_ms": med, "p99_ms": p99,
         "delivered": f"{len(service)}/{n}", "ratio_vs_baseline": med / raw_med},
        {"name": "baseline: bare paho QoS1 publish", "median_ms": raw_med, "p99_ms": raw_p99,
         "delivered": f"{len(raw)}/{n}", "ratio_vs_baseline": 1.0},
    ]


# -- 2. outbox throughput -------------------------------------------------------------------------------
def outbox_rows(work: Path, n: int = 400, repeats: int = 3) -> list[dict]:
    from edge.outbox import Outbox

    payload = b"x" * 500
    result = {}
    for mode in ("FULL", "OFF"):
        rates = []
        for r in range(repeats):
            ob = Outbox(work / f"outbox-{mode}-{r}.sqlite", synchronous=mode)
            t0 = time.perf_counter()
            for i in range(n):
                ob.put(f"k{i}", "t", payload)
            rates.append(n / (time.perf_counter() - t0))
            ob.close()
        result[mode] = statistics.median(rates)
    return [
        {"name": "outbox put, synchronous=FULL (fsync)", "messages_per_s": result["FULL"],
         "ratio_vs_baseline": result["FULL"] / result["OFF"]},
        {"name": "baseline: outbox put, synchronous=OFF", "messages_per_s": result["OFF"], "ratio_vs_baseline": 1.0},
    ]


# -- 3. start -> READY ------------------------------------------------------------------------------------
def ready_rows(port: int, work: Path, video: Path, repeats: int) -> list[dict]:
    cold, warm = [], []
    for r in range(repeats):
        cache = work / f"numba-{r}"
        cache.mkdir()
        cold.append(_time_to_ready(port, work, video, cache, f"cold{r}"))
        warm.append(_time_to_ready(port, work, video, cache, f"warm{r}"))
    c, w = statistics.median(cold), statistics.median(warm)
    return [
        {"name": "start -> READY, warm Numba cache", "seconds": w, "ratio_vs_baseline": w / c},
        {"name": "baseline: start -> READY, cold Numba cache", "seconds": c, "ratio_vs_baseline": 1.0},
    ]


def _time_to_ready(port: int, work: Path, video: Path, numba_dir: Path, tag: str) -> float:
    sock_path = work / f"notify-{tag}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(120)
    cfg = service_config(work / f"ready-{tag}.toml", port, work / f"state-{tag}", video)
    env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), NUMBA_CACHE_DIR=str(numba_dir))
    t0 = time.monotonic()
    proc = subprocess.Popen([LAPS_EDGE, "run", "--config", str(cfg)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            if "READY=1" in sock.recv(4096).decode().split("\n"):
                return time.monotonic() - t0
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
        sock.close()


# -- 4. steady state ----------------------------------------------------------------------------------------
def steady_rows(port: int, work: Path, video: Path, seconds: float) -> list[dict]:
    cfg = service_config(work / "steady.toml", port, work / "state-steady", video)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba-steady"))
    service = _measure(subprocess.Popen([LAPS_EDGE, "run", "--config", str(cfg)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), seconds)
    bare = _measure(subprocess.Popen([sys.executable, "-c", bare_loop_code(video)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), seconds)
    return [
        {"name": "service steady state, 640x480 source, 10 fps", "rss_mib": service[0], "cpu_percent": service[1],
         "ratio_vs_baseline": service[1] / bare[1] if bare[1] else None},
        {"name": "baseline: bare paced pipeline loop", "rss_mib": bare[0], "cpu_percent": bare[1],
         "ratio_vs_baseline": 1.0},
    ]


def bare_loop_code(video: Path) -> str:
    """Python source of the baseline: the shipped pipeline in a bare loop paced to the file's
    timestamps (no MQTT, outbox, metrics or watchdog; no keyframe ring, as the service without upload);
    run it with `python -c`."""
    return (
        "import time, sys\n"
        "from edge.pipeline import build_pipeline\n"
        "from edge.sources.factory import open_source\n"
        f"pipe = build_pipeline({str(DEFAULT_MODEL)!r}, providers='cpu', keep_keyframes=False); pipe.warm_up()\n"
        f"src = open_source({str(video)!r}, fps=pipe.fps, size=pipe.input_size); src.open()\n"
        "t0 = time.monotonic()\n"
        "for f in src:\n"
        "    d = t0 + f.timestamp_s - time.monotonic()\n"
        "    if d > 0: time.sleep(d)\n"
        "    pipe.process(f)\n"
    )


def _measure(proc: subprocess.Popen, seconds: float, settle_s: float = 5.0) -> tuple[float, float]:
    """(RSS MiB at the end, CPU % of one core over `seconds` after `settle_s` of warm-up)."""
    try:
        time.sleep(settle_s)
        c0, t0 = _cpu_s(proc.pid), time.monotonic()
        time.sleep(seconds)
        c1, t1 = _cpu_s(proc.pid), time.monotonic()
        rss = _rss_mib(proc.pid)
        return rss, 100.0 * (c1 - c0) / (t1 - t0)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


# -- helpers ----------------------------------------------------------------------------------------------
def service_config(path: Path, port: int, state: Path, video: Path, *, site: str = "bench",
                   delivery: str = "broker", metrics_interval_s: float = 5.0, device: str = "dev-1",
                   prometheus_port: int = 0) -> Path:
    """A device config on `video` (paced), the shipped model and the broker on `port`; `delivery`
    "broker" where no central ingest runs to acknowledge segments, "central" where one does.
    Several services on one broker need distinct `device` ids (and Prometheus ports)."""
    path.write_text(f"""
[device]
site = "{site}"
id = "{device}"
[source]
spec = "{video}"
pace = true
[model]
dir = "{DEFAULT_MODEL}"
providers = "cpu"
[mqtt]
host = "127.0.0.1"
port = {port}
delivery = "{delivery}"
[metrics]
interval_s = {metrics_interval_s}
prometheus_port = {prometheus_port}
[paths]
state_dir = "{state}"
cache_dir = "{state}/cache"
""")
    return path


def _p99(values: list[float]) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]


def scratch_dir() -> str:
    """.cache/ of the repository (git-ignored), created if needed: benchmark work files."""
    root = Path(__file__).resolve().parent.parent / ".cache"
    root.mkdir(exist_ok=True)
    return str(root)


if __name__ == "__main__":
    main()
