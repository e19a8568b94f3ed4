"""`laps-central demo`: the whole fleet in one command, and the README's by-hand configs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from central.config import load_central_config
from central.demo import EXAMPLE_HTTP_PORT, EXAMPLE_MQTT_PORT, fleet_configs
from edge.config import load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.broker
def test_one_command_runs_the_fleet_and_leaves_a_report_and_dataset_of_every_device(tmp_path, tiny_model_dir):
    work = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "central.cli", "demo", "--workdir", str(work), "--devices", "2",
                           "--minutes", "0.3", "--model", str(tiny_model_dir), "--timeout", "240"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    report = work / "report" / "report.html"
    assert f"report:  {report}" in out and f"dataset: {work / 'dataset'}" in out
    page = report.read_text()
    assert "ws-01" in page and "ws-02" in page
    table = pq.read_table(work / "dataset" / "segments.parquet")
    assert set(table.column("device_id").to_pylist()) == {"ws-01", "ws-02"}
    assert table.num_rows >= 4 and min(table.column("cluster_id").to_pylist()) >= 0
    # every process it started is gone again
    pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
    assert len(pids) == 4  # broker, ingest, two devices
    for pid in pids:
        assert not _alive(pid), f"process {pid} was left running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie of another parent is not ours to reap; read its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_the_readme_fleet_configs_are_the_ones_the_demo_writes_and_point_at_each_other():
    folder = REPO / "examples" / "fleet"
    expected = fleet_configs(mqtt_port=EXAMPLE_MQTT_PORT, http_port=EXAMPLE_HTTP_PORT, devices=2, minutes=0.5)
    assert {p.name: p.read_text() for p in folder.iterdir()} == expected
    central = load_central_config(folder / "central.toml")
    listener = re.search(r"^listener (\d+) 127\.0\.0\.1$", expected["mosquitto.conf"], re.M)
    assert listener and int(listener.group(1)) == central.mqtt.port
    for name in ("ws-01.toml", "ws-02.toml"):
        device = load_config(folder / name)
        assert device.mqtt.port == central.mqtt.port and device.mqtt.host == central.mqtt.host
        assert device.upload.endpoint == f"http://{central.http.host}:{central.http.port}"
        assert not device.source.pace


def test_the_demo_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = subprocess.run([sys.executable, "-m", "central.cli", "demo", "--workdir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "did not make" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
