"""Soak: does the device service stay flat for hours? RSS, threads, descriptors, outbox depth.

Runs `laps-edge run --config` paced at the model's 10 fps on a generated 640x480 video (the
shipped default tokenizer on ORT CPU, LK tracker) against a real Mosquitto on a free loopback
port, with a real `laps-central ingest` that commits every segment and acknowledges it to the
device (`mqtt.delivery = "central"`, the default: a segment leaves the outbox on central's
`laps.ack/1`, so the acknowledgement path is soaked too) and a subscriber that reads every
segment and metrics message, for `--minutes` (default 30). Every `--sample-s` (default 60) it samples, from /proc/<pid>: RSS, threads and open file
descriptors, and the outbox depth (rows not yet confirmed by central included) from the service's
own `.../metrics` message; the ingest is sampled the same way, for information. After
`--warmup-minutes` (default 5: ONNX Runtime's arena, SQLite's page cache, paho's buffers and the
allocator reach their working size) it fits a least-squares line and reports the slope per minute.

Baseline, measured in the same run and at the same time: the same pipeline in a bare paced loop
(no MQTT, outbox, metrics or watchdog), so growth of the pipeline's own libraries (OpenCV, ONNX
Runtime, glibc) is told apart from growth of the service around it. `--no-baseline` skips it.

Target (issue 18): RSS slope after warm-up below 0.01 MiB/min over 30 minutes; threads and
descriptors flat. `--tracemalloc` runs the service under tracemalloc and prints the Python
allocation sites that grew between the end of warm-up and the end (a diagnosis run: tracemalloc
itself costs memory and a thread, so its figures are not the benchmark's).

Run: `python -m benchmarks.soak` (30 min; needs /usr/sbin/mosquitto), `--minutes 240` by hand.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import print_table, write_results
from benchmarks.edge_service import LAPS_EDGE, bare_loop_code, scratch_dir, service_config
from tests.service.helpers import Mosquitto, Subscriber, write_video

FPS = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default: %(default)s)")
    parser.add_argument("--warmup-minutes", type=float, default=5.0,
                        help="samples before this are not in the slope (default: %(default)s)")
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between samples (default: %(default)s)")
    parser.add_argument("--size", default="640x480", help="video size WxH (default: %(default)s)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare pipeline loop")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="diagnosis: run the service under tracemalloc and print what grew")
    parser.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/soak.json")
    args = parser.parse_args()
    if args.minutes <= 0 or args.sample_s <= 0 or not 0 <= args.warmup_minutes < args.minutes:
        parser.error("--minutes and --sample-s must be > 0 and 0 <= --warmup-minutes < --minutes")
    w, h = (int(v) for v in args.size.lower().split("x"))

    work = Path(tempfile.mkdtemp(prefix="laps-soak-", dir=scratch_dir()))
    video = soak_video(args.minutes + 2.0, (w, h))
    broker = Mosquitto(work / "broker", quiet=True).start()
    sub = Subscriber(broker.port, topic="laps/v1/#")
    sub.wait_subscribed(10)
    procs: dict[str, subprocess.Popen] = {}
    samples: dict[str, list[dict]] = {"service": [], "baseline": [], "ingest": []}
    snapshots = work / "snapshots"
    try:
        cfg = service_config(work / "soak.toml", broker.port, work / "state", video, site="soak", delivery="central",
                             metrics_interval_s=10.0)
        env = dict(os.environ, NUMBA_CACHE_DIR=str(work / "numba"))
        ingest_log = open(work / "ingest.log", "wb")
        procs["ingest"] = subprocess.Popen(
            [sys.executable, "-m", "central.cli", "ingest", "--config",
             str(central_config(work / "central.toml", broker.port, work / "central")),
             "--no-http", "--stats-interval", "60"], env=env, stdout=ingest_log, stderr=subprocess.STDOUT)
        log = open(work / "service.log", "wb")
        if args.tracemalloc:
            snapshots.mkdir()
            cmd = [sys.executable, "-c", _TRACEMALLOC_WRAPPER, str(snapshots), str(args.sample_s), str(cfg)]
        else:
            cmd = [LAPS_EDGE, "run", "--config", str(cfg)]
        procs["service"] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        if not args.no_baseline:
            procs["baseline"] = subprocess.Popen([sys.executable, "-c", bare_loop_code(video)], env=env,
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        smaps_first = smaps_last = None
        t0 = time.monotonic()
        n_samples = int(args.minutes * 60.0 / args.sample_s)
        print(f"soak: {args.minutes:g} min, a sample every {args.sample_s:g} s, work dir {work}", flush=True)
        for i in range(1, n_samples + 1):
            _sleep_until(t0 + i * args.sample_s, procs)
            minute = (time.monotonic() - t0) / 60.0
            for name, proc in procs.items():
                s = _sample(proc.pid)
                s["minute"] = minute
                if name == "service":
                    metrics = sub.payloads("metrics")
                    s["outbox_depth"] = metrics[-1]["outbox"]["depth"] if metrics else None
                    s["unconfirmed"] = metrics[-1]["outbox"].get("unconfirmed") if metrics else None
                    s["segments_delivered"] = len(sub.segment_ids())
                samples[name].append(s)
            if smaps_first is None and minute >= args.warmup_minutes:
                smaps_first = smaps_rss(procs["service"].pid)
            smaps_last = smaps_rss(procs["service"].pid)
            svc = samples["service"][-1]
            print(f"  {minute:6.1f} min  service RSS {svc['rss_mib']:.2f} MiB, {svc['threads']} threads, "
                  f"{svc['fds']} fds, outbox {svc['outbox_depth']}, {svc['segments_delivered']} segments"
                  + (f"  | baseline RSS {samples['baseline'][-1]['rss_mib']:.2f} MiB" if "baseline" in procs else "")
                  + f"  | ingest RSS {samples['ingest'][-1]['rss_mib']:.2f} MiB",
                  flush=True)
        for proc in procs.values():
            os.kill(proc.pid, signal.SIGTERM)
        rcs = {name: proc.wait(60) for name, proc in procs.items()}
        stored = stored_segments(work / "central" / "central.sqlite")
        log.close()
        ingest_log.close()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        sub.close()
        broker.stop()

    rows = [summary_row("service: laps-edge run --config, paced 10 fps, MQTT", samples["service"],
                        args.warmup_minutes, rcs["service"])]
    rows[0]["segments_seen_on_broker"] = len(sub.segment_ids())
    rows[0]["segments_stored_by_central"] = stored
    if samples["baseline"]:
        rows.append(summary_row("baseline: bare paced pipeline loop", samples["baseline"], args.warmup_minutes,
                                rcs["baseline"]))
    rows.append(summary_row("laps-central ingest (for information)", samples["ingest"], args.warmup_minutes,
                            rcs["ingest"]))
    print_table([{"minute": round(s["minute"], 1), **{k: v for k, v in s.items() if k != "minute"}}
                 | ({"baseline_rss_mib": samples["baseline"][i]["rss_mib"]} if samples["baseline"] else {})
                 for i, s in enumerate(samples["service"])], "samples (service)")
    print_table(rows, f"soak {args.minutes:g} min, slope after {args.warmup_minutes:g} min warm-up "
                      f"(target: RSS < 0.01 MiB/min, threads and fds flat)")
    if smaps_first is not None and smaps_last is not None:
        print("\nservice RSS by mapping, end of warm-up -> end (largest changes):")
        print("\n".join(report_smaps(smaps_first, smaps_last)) or "  none")
    if args.tracemalloc:
        report_tracemalloc(snapshots, args.warmup_minutes * 60.0 / args.sample_s)
    if not args.no_write and not args.tracemalloc:
        write_results("soak", rows, extra={
            "notes": (f"{args.minutes:g} min at {FPS:g} fps paced, {w}x{h} mp4v file, shipped default tokenizer on "
                      "ORT CPU, LK tracker, loopback Mosquitto with a subscriber, laps-central ingest acknowledging "
                      "each segment to the device (delivery = central); samples every "
                      f"{args.sample_s:g} s; slope = least squares over samples after {args.warmup_minutes:g} min; "
                      "2-core machine shared with other agents"),
            "samples": samples,
        })
    shutil.rmtree(work, ignore_errors=True)


def summary_row(name: str, samples: list[dict], warmup_minutes: float, rc: int) -> dict:
    """Slopes per minute (least squares) of RSS, threads, descriptors after the warm-up."""
    after = [s for s in samples if s["minute"] >= warmup_minutes]
    row = {"name": name, "minutes": samples[-1]["minute"] if samples else 0.0, "samples_in_fit": len(after)}
    if len(after) >= 2:
        x = [s["minute"] for s in after]
        row["rss_start_mib"] = after[0]["rss_mib"]
        row["rss_end_mib"] = after[-1]["rss_mib"]
        row["rss_slope_mib_per_min"] = slope(x, [s["rss_mib"] for s in after])
        row["threads_min_max"] = f"{min(s['threads'] for s in after)}-{max(s['threads'] for s in after)}"
        row["threads_slope_per_min"] = slope(x, [s["threads"] for s in after])
        row["fds_min_max"] = f"{min(s['fds'] for s in after)}-{max(s['fds'] for s in after)}"
        row["fds_slope_per_min"] = slope(x, [s["fds"] for s in after])
        depths = [s["outbox_depth"] for s in after if s.get("outbox_depth") is not None]
        if depths:
            row["outbox_depth_max"] = max(depths)
    row["exit_status"] = rc
    return row


def slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of y over x."""
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((a - mx) ** 2 for a in x)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx if sxx else 0.0


def soak_video(minutes: float, size: tuple[int, int]) -> Path:
    """A `minutes`-long 10 fps mp4v video of the test workstation (cached in .cache/: about
    1 MB per minute at 640x480)."""
    path = Path(scratch_dir()) / f"soak-{minutes:g}min-{size[0]}x{size[1]}.mp4"
    if not path.exists():
        tmp = path.with_suffix(".part.mp4")
        write_video(tmp, seconds=minutes * 60.0, fps=FPS, size=size, fourcc="mp4v")
        tmp.replace(path)
    return path


def stored_segments(store: Path) -> int:
    """Segments in the ingest's store (read-only)."""
    import sqlite3

    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10)
    try:
        return int(db.execute("SELECT COUNT(*) FROM segments").fetchone()[0])
    finally:
        db.close()


def central_config(path: Path, port: int, data_dir: Path) -> Path:
    """The ingest's config: its store under `data_dir`, the soak's broker, no batch endpoint."""
    path.write_text(f"""
[paths]
data_dir = "{data_dir}"
models_dir = "{data_dir / 'models'}"
[store]
path = "{data_dir / 'central.sqlite'}"
[mqtt]
host = "127.0.0.1"
port = {port}
[http]
enabled = false
""")
    return path


def _sample(pid: int) -> dict:
    """RSS (and its anonymous / file-backed parts), threads and open descriptors of `pid`."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    kib = lambda name: int(fields[name].split()[0]) / 1024.0  # noqa: E731 - kB -> MiB
    return {
        "rss_mib": kib("VmRSS"),
        "rss_anon_mib": kib("RssAnon"),
        "rss_file_mib": kib("RssFile"),
        "threads": int(fields["Threads"]),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
    }


def smaps_rss(pid: int) -> dict[str, float]:
    """RSS in MiB per mapping name ([heap], a library path, "[anon]" for nameless mappings)."""
    out: dict[str, float] = {}
    name = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not line.startswith(("Rss", "Size")):
            name = head[5] if len(head) >= 6 else "[anon]"
        elif line.startswith("Rss:"):
            out[name] = out.get(name, 0.0) + int(head[1]) / 1024.0
    return out


def report_smaps(first: dict[str, float], last: dict[str, float], top: int = 8) -> list[str]:
    """The mappings whose RSS changed most between two `smaps_rss` readings."""
    names = set(first) | set(last)
    diffs = sorted(((last.get(n, 0.0) - first.get(n, 0.0), n) for n in names), reverse=True)
    return [f"  {d:+8.2f} MiB  {n}" for d, n in diffs[:top] if abs(d) >= 0.01]


def _sleep_until(deadline: float, procs: dict[str, subprocess.Popen]) -> None:
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"error: the {name} process exited early (status {proc.returncode}); "
                                 "see its log in the work dir")
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))


#: argv: snapshot folder, seconds between snapshots, config file
_TRACEMALLOC_WRAPPER = """
import sys, threading, time, tracemalloc
folder, every, cfg = sys.argv[1], float(sys.argv[2]), sys.argv[3]
tracemalloc.start(12)
def dump():
    i = 0
    while True:
        time.sleep(every)
        tracemalloc.take_snapshot().dump(f"{folder}/snap-{i:04d}.pickle")
        i += 1
threading.Thread(target=dump, name="tracemalloc", daemon=True).start()
from edge.cli import main
sys.exit(main(["run", "--config", cfg]))
"""


def report_tracemalloc(folder: Path, warmup_index: float, top: int = 15) -> None:
    """Print the allocation sites that grew most between the end of warm-up and the last snapshot."""
    import tracemalloc

    snaps = sorted(folder.glob("snap-*.pickle"))
    if len(snaps) < 2:
        print("tracemalloc: fewer than two snapshots")
        return
    first = snaps[min(int(warmup_index), len(snaps) - 2)]
    a, b = tracemalloc.Snapshot.load(str(first)), tracemalloc.Snapshot.load(str(snaps[-1]))
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    a, b = a.filter_traces(filters), b.filter_traces(filters)
    total_a = sum(s.size for s in a.statistics("filename"))
    total_b = sum(s.size for s in b.statistics("filename"))
    print(f"\ntracemalloc: traced Python memory {total_a / 2**20:.2f} -> {total_b / 2**20:.2f} MiB "
          f"({first.name} -> {snaps[-1].name})")
    for stat in b.compare_to(a, "traceback")[:top]:
        if stat.size_diff <= 0:
            continue
        print(f"  +{stat.size_diff / 1024:.1f} KiB ({stat.count_diff:+d} blocks)")
        for line in stat.traceback.format()[-8:]:
            print("     " + line)


if __name__ == "__main__":
    main()
