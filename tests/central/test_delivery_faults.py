"""Done means of end-to-end delivery: a real device process streams segments through a real
Mosquitto (persistence on) into a real `laps-central ingest --workers 2` while the broker is
restarted and SIGKILLed, or the ingest is SIGKILLed; every segment the device committed to its
outbox is stored exactly once, and the device's outbox ends empty (central acknowledged all).

Mosquitto 2.0 does not restore `$share/...` subscriptions after a restart and loses what it
held since its last save on a SIGKILL, so without central's acknowledgements these runs lose
segments (measured on the previous release: 21 of 216). Each test prints its figures.
"""

from __future__ import annotations

import re
import time

import pytest

from central_testkit import IngestProcess, Mosquitto, store_counters, stored_ids, wait_until, write_central_config
from tests.service.helpers import DeviceProcess, outbox_keys, write_config

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SEGMENTS = 300
INTERVAL_S = 0.04


def _fleet(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    store = tmp_path / "central" / "central.sqlite"
    # The ingest comes back after the device, as it does whenever its back-off is the longer one: what
    # the device publishes in between meets no $share subscription and Mosquitto drops it.
    cfg = write_central_config(tmp_path / "central.toml", port=broker.port, data_dir=tmp_path / "central",
                               reconnect_min_s=1.5, reconnect_max_s=3.0)
    ingest = IngestProcess(cfg, tmp_path / "ingest.log", workers=2)
    assert wait_until(lambda: broker.log_text().count("$share/laps-central") >= 2, 30.0), ingest.log_text()[-2000:]
    device_cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state",
                              site="plant-f", device="ws-1", delivery="central", ack_timeout_s=2.0)
    return broker, ingest, store, device_cfg


def _finish(device, ingest, store, state_dir, started: float, label: str) -> None:
    assert device.wait(120) == 0, device.stderr[-3000:]
    elapsed = time.monotonic() - started
    sent = set(device.committed)
    assert len(sent) == SEGMENTS
    assert outbox_keys(state_dir) == set(), "central never acknowledged some segments"
    stored = stored_ids(store)
    counters = store_counters(store)
    assert ingest.stop() == 0, ingest.log_text()[-3000:]
    assert len(stored) == len(set(stored))
    lost = sent - set(stored)
    assert not lost, f"{len(lost)} of {len(sent)} segments lost"
    assert set(stored) == sent
    resent = re.search(r"(\d+) re-sent for want of central's ack", device.stderr)
    print(f"\n{label}: {len(sent)} segments sent, {resent.group(1) if resent else '?'} re-sent, {len(stored)} stored, "
          f"0 lost, {counters['duplicates']} duplicates removed, {counters['received']} messages received, "
          f"{elapsed:.1f} s")


def test_five_broker_restarts_and_two_sigkills_during_a_stream_lose_nothing(tmp_path):
    broker, ingest, store, device_cfg = _fleet(tmp_path)
    try:
        started = time.monotonic()
        device = DeviceProcess(device_cfg, segments=SEGMENTS, interval_s=INTERVAL_S, until_drained_s=90)
        faults = ["restart", "restart", "kill", "restart", "restart", "kill", "restart"]
        for fault in faults:
            assert wait_until(lambda: len(device.committed) >= 20 + 35 * faults.index(fault), 30)
            time.sleep(0.3)
            if fault == "kill":
                broker.kill()  # no save: sessions and queued messages since the last save are gone
                broker.start()
            else:
                broker.restart()
        assert len(device.committed) < SEGMENTS, "the stream ended before the faults did; slow it down"
        _finish(device, ingest, store, tmp_path / "state", started, "broker faults")
    finally:
        ingest.stop()
        broker.stop()


def test_the_ingest_killed_twice_during_a_stream_loses_nothing(tmp_path):
    broker, ingest, store, device_cfg = _fleet(tmp_path)
    try:
        started = time.monotonic()
        device = DeviceProcess(device_cfg, segments=SEGMENTS, interval_s=INTERVAL_S, until_drained_s=90)
        for at in (60, 160):
            assert wait_until(lambda: len(device.committed) >= at, 30)
            ingest.kill()  # whatever it received and had not committed was never acknowledged
            time.sleep(1.0)
            ingest.start()
        assert len(device.committed) < SEGMENTS, "the stream ended before the faults did; slow it down"
        _finish(device, ingest, store, tmp_path / "state", started, "ingest killed")
    finally:
        ingest.stop()
        broker.stop()
