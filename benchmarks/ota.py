"""OTA benchmarks: desired -> committed on a device, bundle size, download resume overhead.

Rows (each beside a baseline measured in the same run):
- `desired` published -> "committed" status received, on a real device process (CPU path,
  ORT CPU, the shipped default model as the bundle, a loopback Mosquitto and bundle server,
  health window 2 s / 10 frames at 10 fps); median over repeats, each a new version. Baseline:
  a plain HTTP download of the same bundle files (no signature, self-test or health window).
  The per-step split (median seconds) comes from the device's own `timings_s`.
- bundle size: bytes a device downloads (every file + manifest + signature); baseline: the
  model directory it was built from.
- download resume overhead: a transfer cut at 50 % and resumed with Range (both halves timed,
  the partial file re-hashed) vs a clean download of the same file (tokenizer.onnx, loopback).

Run: `python -m benchmarks.ota` from the repo root (needs /usr/sbin/mosquitto). About a minute.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import median_time_s, print_table, write_results

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "ota"))  # the OTA test kit: real devices, bundles, broker

from ota_testkit import (  # noqa: E402
    DEFAULT_MODEL,
    Device,
    DesiredPublisher,
    Mosquitto,
    Subscriber,
    final_status,
    make_bundle,
    seed_model,
    wait_until,
    write_device_config,
)


class _Cut(Exception):
    """Raised from the progress callback to cut a transfer at a byte count (client side)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="updates on the device (default: %(default)s)")
    args = parser.parse_args()
    from central.rollout import BundleServer
    from export.bundle import keygen

    rows = []
    with tempfile.TemporaryDirectory(prefix="laps-ota-bench-") as tmp:
        tmp = Path(tmp)
        key, pub = keygen(tmp / "release")
        versions = list(range(2, 2 + args.repeats))
        bundles = {v: make_bundle(tmp / f"b{v}", v, [key]) for v in versions}
        server = BundleServer(bundles).start()
        broker = Mosquitto(tmp / "broker").start()
        try:
            rows.append(_update_row(tmp, broker, server, bundles, pub))
            rows.append(_size_row(bundles[versions[0]]))
            rows.append(_resume_row(tmp, server, bundles[versions[0]]))
        finally:
            server.stop()
            broker.stop()
    print_table(rows, "OTA: update latency, bundle size, download resume")
    write_results("ota", rows)


def _update_row(tmp: Path, broker, server, bundles: dict[int, Path], pub: Path) -> dict:
    from edge.ota.download import download_file
    from edge.ota.manifest import parse_manifest

    sub = Subscriber(broker.port, topic="laps/v1/+/+/ota/status")
    sub.wait_subscribed()
    cfg = write_device_config(tmp / "dev.toml", port=broker.port, state_dir=tmp / "dev", device="bench",
                              trusted=[pub], model_dir=seed_model(tmp / "seed"), health_window_s=2.0,
                              health_min_frames=10)
    device = Device(cfg, tmp / "dev.log")
    desired = DesiredPublisher(broker.port)
    latencies, splits = [], []
    try:
        wait_until(lambda: "pipeline warm" in device.log_text(), 60)
        time.sleep(1.0)  # the frame loop is running
        for version, bundle in bundles.items():
            t0 = time.monotonic()
            desired.desire("bench", bundle, server.bundle_url(version))
            if not wait_until(lambda v=version: final_status(sub, "bench", v) is not None, 120, interval=0.01):
                raise RuntimeError(f"no final status for {version}:\n{device.log_text()[-2000:]}")
            final = final_status(sub, "bench", version)
            if final["state"] != "committed":
                raise RuntimeError(f"version {version} was not committed: {final}")
            latencies.append(time.monotonic() - t0)
            splits.append(final.get("timings_s", {}))
    finally:
        desired.close()
        device.stop()
        sub.close()
    first = next(iter(bundles.values()))
    manifest = parse_manifest((first / "manifest.json").read_bytes())

    def plain_download() -> None:
        out = Path(tempfile.mkdtemp(dir=tmp))
        for rel, (digest, size) in manifest.files.items():
            download_file(f"{server.bundle_url(manifest.version)}/{rel}", out / rel, sha256=digest, size=size)

    baseline = median_time_s(plain_download, repeats=5)
    median = statistics.median(latencies)
    row = {"name": "desired -> committed (CPU, default bundle)", "median_s": median,
           "baseline_plain_download_s": baseline, "ratio": median / baseline, "repeats": len(latencies),
           "health_window_s": 2.0}
    for step in ("verify_manifest_s", "download_s", "hashes_s", "prepare_s", "self_test_s", "restart_s", "health_s"):
        values = [s[step] for s in splits if step in s]
        if values:
            row[step] = statistics.median(values)
    return row


def _size_row(bundle: Path) -> dict:
    from edge.model import load_model_directory

    wire = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    md = load_model_directory(DEFAULT_MODEL)
    model = sum(e["size"] for e in md.manifest["files"].values()) + (DEFAULT_MODEL / "manifest.json").stat().st_size
    return {"name": "bundle size (default model)", "bundle_bytes": wire, "baseline_model_dir_bytes": model,
            "ratio": wire / model, "files": sum(1 for p in bundle.rglob("*") if p.is_file())}


def _resume_row(tmp: Path, server, bundle: Path) -> dict:
    from edge.model import sha256_file
    from edge.ota.download import download_file
    from edge.ota.manifest import parse_manifest

    version = parse_manifest((bundle / "manifest.json").read_bytes()).version
    src = bundle / "tokenizer.onnx"
    size, digest = src.stat().st_size, sha256_file(src)
    url = f"{server.bundle_url(version)}/tokenizer.onnx"
    n = [0]

    def clean() -> None:
        dest = Path(tempfile.mkdtemp(dir=tmp)) / "tokenizer.onnx"
        download_file(url, dest, sha256=digest, size=size)

    def cut_and_resume() -> None:
        dest = Path(tempfile.mkdtemp(dir=tmp)) / "tokenizer.onnx"
        got = [0]

        def cut(k: int) -> None:
            got[0] += k
            if got[0] >= size // 2:
                raise _Cut()

        try:
            download_file(url, dest, sha256=digest, size=size, on_bytes=cut)
        except _Cut:
            pass
        n[0] = download_file(url, dest, sha256=digest, size=size)  # resumes with Range

    base = median_time_s(clean, repeats=7)
    resumed = median_time_s(cut_and_resume, repeats=7)
    return {"name": "download resume (cut at 50%, tokenizer.onnx)", "median_ms": resumed * 1000,
            "baseline_clean_ms": base * 1000, "ratio": resumed / base, "bytes": size,
            "resumed_bytes": n[0]}


if __name__ == "__main__":
    main()
