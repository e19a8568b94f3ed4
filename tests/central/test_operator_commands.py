"""The operator's view: `laps-central status` and `runs`, a --k-range checked against the
segments, and an ingest stats line a person can read."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from central.cli import main
from central.config import load_central_config
from central.ingest import run_ingest
from central.store import Store
from central_testkit import Publisher, make_segments, segment_payloads, wait_until, write_central_config
from edge.messages import StateMessage, Topics
from library_data import fill_store


@pytest.fixture
def configured(configured_central):
    return configured_central(24)


def test_a_k_range_beyond_the_segments_is_a_one_line_error(configured, tmp_path, capsys):
    assert main(["cluster", "--config", str(configured), "--out", str(tmp_path / "r"), "--k-range", "2-500",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--k-range 2-500" in err and "24 segments" in err and "--k-range 2-12" in err


def test_the_default_k_range_is_narrowed_to_what_the_segments_allow(tmp_path, registry_dir, capsys):
    cfg_path = write_central_config(tmp_path / "central.toml", port=1883, data_dir=tmp_path / "data",
                                    models_dir=registry_dir)
    with Store(load_central_config(cfg_path).store.path) as store:
        fill_store(store, tmp_path / "media", tmp_path / "spool", n=10)
    assert main(["cluster", "--config", str(cfg_path), "--out", str(tmp_path / "r"), "--n-init", "2",
                 "--methods", "transformer", "--quiet"]) == 0
    with Store(load_central_config(cfg_path).store.path) as store:
        assert max(k for k, _ in store.cluster_runs()[0]["params"]["k_curve"]) == 5


def test_runs_lists_every_clustering_run_newest_first(configured, tmp_path, capsys):
    for k in ("2", "3"):
        assert main(["cluster", "--config", str(configured), "--out", str(tmp_path / f"r{k}"), "--k", k,
                     "--n-init", "2", "--methods", "transformer", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["runs", "--config", str(configured)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:6] == ["RUN", "CREATED", "MODEL", "METHOD", "K", "SEGMENTS"]
    assert len(lines) == 3 and lines[1].endswith("<- latest")
    assert "3 (given)" in lines[1] and "2 (given)" in lines[2] and "transformer" in lines[1]
    assert " 24 " in lines[1]


def test_status_counts_each_device_batches_and_says_when_no_state_arrived(configured, capsys):
    assert main(["status", "--config", str(configured), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    devices = {r["device_id"]: r for r in rows if "device_id" in r}
    assert {d: (r["segments"], r["batches"], r["online"]) for d, r in devices.items()} == {
        "dev-1": (12, 1, None), "dev-2": (12, 1, None)}
    assert main(["status", "--config", str(configured)]) == 0
    assert "unknown (no state message)" in capsys.readouterr().out


@pytest.mark.broker
def test_status_shows_each_device_state_last_seen_segments_batches_and_quarantine(broker, tmp_path, registry_dir,
                                                                                   capsys, caplog):
    cfg_path = write_central_config(tmp_path / "central.toml", port=broker.port, data_dir=tmp_path / "data",
                                    models_dir=registry_dir)
    cfg = load_central_config(cfg_path)
    stop = threading.Event()
    caplog.set_level(logging.INFO, logger="central.ingest")
    ingest = threading.Thread(target=run_ingest, args=(cfg,), daemon=True,
                              kwargs={"http": False, "stop_event": stop, "stats_interval_s": 0.2})
    ingest.start()
    pub = Publisher(broker.port)
    try:
        assert wait_until(lambda: "$share/laps-central" in broker.log_text(), 15.0)
        items = segment_payloads(make_segments(3), site="plant-a", device="ws-01")
        items += segment_payloads(make_segments(2, seed=1), site="plant-a", device="ws-02")
        items.append((Topics("plant-a", "ws-02").segments, b"not json"))
        pub.publish_all(items)
        for device, state in (("ws-01", "online"), ("ws-02", "offline")):
            msg = StateMessage(state, device_id=device, site="plant-a", boot_id="b1", model_version="m1")
            pub.client.publish(Topics("plant-a", device).state, msg.to_json(), qos=1, retain=True).wait_for_publish(5)
        with Store(cfg.store.path) as store:
            assert wait_until(lambda: len(store.device_summary()) == 2 and all(
                d.state for d in store.device_summary()), 15.0)
            assert wait_until(lambda: "ingest totals: 5 segments stored of 6 messages received" in caplog.text, 5.0)
    finally:
        pub.close()
        stop.set()
        ingest.join(15)
    stats = [r.getMessage() for r in caplog.records if r.getMessage().startswith("ingest totals")]
    assert stats and "{" not in stats[-1] and "1 quarantined" in stats[-1]
    capsys.readouterr()
    assert main(["status", "--config", str(cfg_path), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    devices = {r["device_id"]: r for r in rows if "device_id" in r}
    assert devices["ws-01"]["online"] is True and devices["ws-01"]["segments"] == 3
    assert devices["ws-02"]["online"] is False and devices["ws-02"]["segments"] == 2
    assert devices["ws-02"]["quarantined"] == 1 and devices["ws-01"]["quarantined"] == 0
    assert devices["ws-01"]["last_seen"].startswith("20")
    assert rows[-1]["totals"]["segments"] == 5
    assert main(["status", "--config", str(cfg_path)]) == 0
    table = capsys.readouterr().out
    assert "online" in table and "offline (connection lost)" in table and "5 segments from 2 device(s)" in table
