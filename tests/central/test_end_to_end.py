"""End to end: a device process segments a synthetic video and publishes through a real
Mosquitto; the central ingest stores every segment once, the batch upload lands and links, and
the stored segments become a clustered, reported, exported primitive library.

One device run (module fixture) serves every test here: it is the slow part (~10 s)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from central.cluster_run import run_clustering
from central.clustering import ClusterOptions
from central.config import load_central_config
from central.dataset_export import export_dataset
from central.ingest import run_ingest
from central.registry import ModelRegistry, add_model
from central.report import write_report
from central.store import Store
from central_testkit import Mosquitto, Publisher, Subscriber, free_port, wait_until, write_central_config

pytestmark = pytest.mark.broker

SOURCE = "synthetic://assembly?seed=901&minutes=0.5&size=320x240"


class Fleet:
    """What the module fixture leaves behind for the tests to inspect."""

    def __init__(self, root: Path, broker: Mosquitto, config_path: Path, recorded: list[tuple[str, bytes]],
                 device_rc: int, device_log: str) -> None:
        self.root, self.broker, self.config_path = root, broker, config_path
        self.config = load_central_config(config_path)
        self.recorded, self.device_rc, self.device_log = recorded, device_rc, device_log

    @property
    def sent_ids(self) -> list[str]:
        return [json.loads(p)["segment_id"] for _, p in self.recorded]

    def store(self) -> Store:
        return Store(self.config.store.path)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("fleet")
    broker = Mosquitto(root / "broker").start()
    stop = threading.Event()
    ingest = None
    recorder = Subscriber(broker.port, topic="laps/v1/+/+/segments")
    try:
        recorder.wait_subscribed()
        http_port = free_port()
        cfg_path = write_central_config(root / "central.toml", port=broker.port, data_dir=root / "central",
                                        http_port=http_port)
        add_model(load_central_config(cfg_path).paths.models_dir, tiny_model_dir)
        ingest = threading.Thread(target=run_ingest, args=(load_central_config(cfg_path),),
                                  kwargs={"stop_event": stop, "stats_interval_s": 0.5}, daemon=True)
        ingest.start()
        assert wait_until(lambda: "$share/laps-central" in broker.log_text(), 15.0), "ingest did not subscribe"
        device_cfg = root / "device.toml"
        device_cfg.write_text(f"""
[device]
site = "plant-e2e"
id = "ws-1"
[source]
spec = "{SOURCE}"
[model]
dir = "{tiny_model_dir}"
providers = "cpu"
[mqtt]
host = "127.0.0.1"
port = {broker.port}
keepalive = 2
reconnect_min_s = 0.2
reconnect_max_s = 1.0
drain_timeout_s = 5.0
[upload]
endpoint = "http://127.0.0.1:{http_port}"
interval_s = 0.3
[metrics]
interval_s = 1.0
[paths]
state_dir = "{root / 'device-state'}"
cache_dir = "{root / 'device-cache'}"
""")
        proc = subprocess.run([sys.executable, "-m", "edge.cli", "run", "--config", str(device_cfg)],
                              capture_output=True, text=True, timeout=180)
        recorded = [(t, p) for t, p, _, _ in recorder.messages if t.endswith("/segments")]
        fleet = Fleet(root, broker, cfg_path, recorded, proc.returncode, proc.stderr[-3000:])
        with fleet.store() as store:
            wait_until(lambda: store.count() >= len(set(fleet.sent_ids)) > 0, 20.0)
        yield fleet
    finally:
        stop.set()
        if ingest is not None:
            ingest.join(15)
        recorder.close()
        broker.stop()


def test_the_device_publishes_segments_with_codes(fleet):
    assert fleet.device_rc == 0, fleet.device_log
    assert len(fleet.recorded) >= 5
    assert all(json.loads(p)["codes"] for _, p in fleet.recorded)


def test_the_ingest_stores_every_published_segment_exactly_once(fleet):
    with fleet.store() as store:
        stored = store.segment_ids()
        assert sorted(stored) == sorted(set(fleet.sent_ids))
        assert len(stored) == len(set(stored))
        assert store.counters()["quarantined"] == 0


def test_duplicates_sent_on_purpose_are_dropped(fleet):
    with fleet.store() as store:
        before_count = store.count()
        before = store.counters()
        pub = Publisher(fleet.broker.port)
        try:
            pub.publish_all(fleet.recorded + fleet.recorded)
        finally:
            pub.close()
        n = len(fleet.recorded)
        assert wait_until(lambda: store.counters()["received"] >= before["received"] + 2 * n, 15.0)
        assert store.count() == before_count
        assert store.counters()["duplicates"] == before["duplicates"] + 2 * n


def test_the_batch_upload_lands_and_links_keyframes_to_their_segments(fleet):
    with fleet.store() as store:
        links = store.link_counts()
        assert links["linked"] > 0 and links["waiting_for_segment"] == 0
        sent = {json.loads(p)["segment_id"]: json.loads(p) for _, p in fleet.recorded}
        media = store.media(sent)
        with_media = {sid: files for sid, files in media.items() if files}
        assert with_media
        for sid, files in with_media.items():
            assert sorted(f.frame for f in files if f.kind == "keyframe") == sorted(
                k["frame"] for k in sent[sid]["keyframes"])
            for f in files:
                assert (fleet.config.media_dir / f.path).stat().st_size == f.size


def test_the_stored_segments_become_a_clustered_reported_and_exported_library(fleet, tmp_path):
    with fleet.store() as store:
        registry = ModelRegistry(fleet.config.paths.models_dir)
        run = run_clustering(store, registry, options=ClusterOptions(k=3, n_init=4))
        assert len(run.segment_ids) == store.count()
        report = write_report(run, tmp_path / "report", store=store, media_dir=fleet.config.media_dir)
        assert "Cluster 2" in report.read_text()
        info = export_dataset(store, fleet.config.media_dir, tmp_path / "dataset")
    table = pq.read_table(tmp_path / "dataset" / "segments.parquet")
    assert table.num_rows == info["rows"] == len(run.segment_ids)
    assert set(table.column("cluster_id").to_pylist()) == {0, 1, 2}
    paths = [p for row in table.column("keyframe_paths").to_pylist() for p in row]
    assert paths and all((fleet.config.media_dir / p).is_file() for p in paths)
