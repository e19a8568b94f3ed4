"""Streams per box: how many 10 fps cameras one machine sustains with the shipped models.

Runs N = 1, 2, 3, 4, 6, 8, ... (`--streams`) `laps-edge run --config` service processes at once (what N instances of
`laps-edge@<name>.service` are), each on its own generated 640x480 MJPEG file paced to 10 fps
as a camera delivers it, the shipped default tokenizer and LK tracker on ONNX Runtime CPU, a
loopback Mosquitto. Each service's rate is read from its own Prometheus endpoint
(`laps_edge_frames_total` at the start and end of the measuring window), CPU from /proc.
A stream keeps up when it processes >= 95 % of the 10 frames a second it is given; the run
stops at the first N where one does not (or after the last N).

Rows: one per N (frames/s of the slowest and the mean stream, total CPU in % of one core, mean
per-frame latency), with the single stream measured in the same run as the baseline
(`ratio_vs_one_stream`: the slowest stream's rate over the single stream's), and a summary row
with the number of streams sustained.

Run: `python -m benchmarks.streams_per_box` (needs /usr/sbin/mosquitto). About 1 minute per N.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import print_table, write_results
from benchmarks.edge_service import LAPS_EDGE, _cpu_s, scratch_dir, service_config
from tests.service.helpers import Mosquitto, free_port, wait_until, write_video

FPS = 10.0
KEEPS_UP = 0.95  # of the given frame rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", default="1,2,3,4,6,8,10,12,14,16",
                        help="the N to try, in order (comma-separated); stops at the first that falls behind")
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring window per N")
    parser.add_argument("--settle-s", type=float, default=5.0, help="wait after every stream runs, before measuring")
    args = parser.parse_args()
    counts = [int(v) for v in args.streams.split(",")]
    work = Path(tempfile.mkdtemp(prefix="laps-streams-", dir=scratch_dir()))
    rows: list[dict] = []
    broker = Mosquitto(work / "broker", quiet=True).start()
    try:
        # Long enough that no file ends inside start-up + settle + window, even when behind.
        videos = [write_video(work / f"cam{i}.avi", seconds=150, size=(640, 480)) for i in range(max(counts))]
        env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba"))  # shared, as one box's services compile once
        base = None
        for n in counts:
            row = measure(n, broker.port, work / f"n{n}", videos[:n], env, args.seconds, args.settle_s)
            base = base or row["fps_slowest_stream"]
            row["ratio_vs_one_stream"] = row["fps_slowest_stream"] / base
            rows.append(row)
            print(f"  {n} stream(s): slowest {row['fps_slowest_stream']:.2f} fps, CPU {row['cpu_percent_total']:.0f} %",
                  flush=True)
            if not row["keeps_up"]:
                break
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)
    sustained = max([r["streams"] for r in rows if r["keeps_up"]], default=0)
    behind = [r["streams"] for r in rows if not r["keeps_up"]]
    rows[0]["name"] += " (baseline)"
    rows.append({"name": f"streams sustained at {FPS:g} fps on this machine", "streams": sustained,
                 # the first N tried that fell behind (None: none did, the limit is higher)
                 "first_streams_behind": behind[0] if behind else None})
    print_table(rows, f"streams per box ({os.cpu_count()} cores, 640x480 files paced at {FPS:g} fps, shipped models, ORT CPU)")
    write_results("streams_per_box", rows, extra={"notes": (
        f"N `laps-edge run --config` processes at once, each on its own generated 640x480 MJPEG file paced to "
        f"{FPS:g} fps, the shipped default tokenizer (edge/shipped_models/default) with the LK tracker on ORT CPU, "
        f"loopback Mosquitto, upload off; fps from each service's Prometheus laps_edge_frames_total over the window; a stream "
        f"keeps up at >= {KEEPS_UP:.0%} of {FPS:g} fps; cpu_percent_total in % of one core, all services together; "
        "other work may share the machine")})


def measure(n: int, broker_port: int, folder: Path, videos: list[Path], env: dict, seconds: float,
            settle_s: float) -> dict:
    """Run `n` services at once, measure each one's frames/s over `seconds`; one result row."""
    folder.mkdir(parents=True)
    load_before = os.getloadavg()[0]
    ports = [free_port() for _ in range(n)]
    procs = []
    try:
        for i, (video, port) in enumerate(zip(videos, ports)):
            cfg = service_config(folder / f"cam{i}.toml", broker_port, folder / f"state{i}", video,
                                 device=f"cam{i}", prometheus_port=port)
            procs.append(subprocess.Popen([LAPS_EDGE, "run", "--config", str(cfg)], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait_until(lambda: all(_frames(p) > 0 for p in ports), 180, interval=0.5):
            raise RuntimeError(f"{n} services did not all start processing within 180 s")
        time.sleep(settle_s)
        f0 = [_frames(p) for p in ports]
        lat0 = [_latency_sum_count(p) for p in ports]
        c0, t0 = sum(_cpu_s(p.pid) for p in procs), time.monotonic()
        time.sleep(seconds)
        f1 = [_frames(p) for p in ports]
        lat1 = [_latency_sum_count(p) for p in ports]
        c1, t1 = sum(_cpu_s(p.pid) for p in procs), time.monotonic()
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(60)
    fps = [(b - a) / (t1 - t0) for a, b in zip(f0, f1)]
    lat_s = sum(b[0] - a[0] for a, b in zip(lat0, lat1))
    lat_n = sum(b[1] - a[1] for a, b in zip(lat0, lat1))
    return {
        "name": f"{n} stream(s) at {FPS:g} fps",
        "streams": n,
        "fps_slowest_stream": min(fps),
        "fps_mean_stream": sum(fps) / n,
        "cpu_percent_total": 100.0 * (c1 - c0) / (t1 - t0),
        "ms_per_frame_mean": 1000.0 * lat_s / lat_n if lat_n else None,
        "keeps_up": min(fps) >= KEEPS_UP * FPS,
        # Other work on the machine takes cores too: the 1-minute load before the services started.
        "load_avg_1min_before": load_before,
    }


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def _samples(port: int) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = _scrape(port)
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _frames(port: int) -> float:
    return _samples(port).get(("laps_edge_frames_total", ()), 0.0)


def _latency_sum_count(port: int) -> tuple[float, float]:
    """(sum of per-frame 'total' stage seconds, frames) since the service started."""
    s = _samples(port)
    key = (("stage", "total"),)
    return s.get(("laps_edge_stage_latency_seconds_sum", key), 0.0), s.get(("laps_edge_stage_latency_seconds_count", key), 0.0)


if __name__ == "__main__":
    main()
