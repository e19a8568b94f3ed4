"""Failure drills with a real Mosquitto and a real device process: nothing that reached the
outbox is lost (duplicates are allowed), evictions are reported, a wrong password backs off.

The device side is `python -m tests.service.publisher --synthetic-segments N`: the service's own outbox,
MQTT link and shutdown code fed by a synthetic segment generator. It prints
`committed <id>` once a segment is durable in the outbox; those ids must all arrive.
"""

from __future__ import annotations

import logging
import random
import time

import pytest

from edge.config import load_config
from edge.device_runtime import DeviceRuntime
from tests.service.publisher import synthetic_segments

from .helpers import DeviceProcess, Mosquitto, free_port, make_tls_files, outbox_keys, wait_until, write_config

pytestmark = pytest.mark.broker


def test_broker_restarted_five_times_while_publishing_loses_nothing(broker, subscriber_factory, tmp_path):
    sub = subscriber_factory(broker.port)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state")
    device = DeviceProcess(cfg, segments=60, interval_s=0.05, until_drained_s=20)
    for _ in range(5):
        time.sleep(0.5)
        broker.restart()  # same port; the subscriber's persistent session is restored
    assert device.wait(40) == 0, device.stderr[-2000:]
    assert len(device.committed) == 60
    assert wait_until(lambda: set(device.committed) <= sub.segment_ids(), 15), \
        f"missing {len(set(device.committed) - sub.segment_ids())} of 60"


def test_broker_frozen_longer_than_keepalive_loses_nothing(broker, subscriber_factory, tmp_path):
    sub = subscriber_factory(broker.port)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state", keepalive=2)
    # 150 segments take ~9 s to publish: the freeze comes while the device is still sending.
    device = DeviceProcess(cfg, segments=150, interval_s=0.06, until_drained_s=25)
    # Freeze only once the device is connected (a segment arrived), however slow its start-up.
    assert wait_until(lambda: sub.segment_ids(), 30), device.stderr[-2000:]
    broker.freeze()
    # paho pings after one keepalive of silence and gives up one keepalive later: 2 x 2 s < 5 s
    time.sleep(5.0)
    broker.resume()
    assert device.wait(40) == 0, device.stderr[-2000:]
    assert "connection to" in device.stderr and "lost" in device.stderr, device.stderr  # it noticed, reconnected
    assert wait_until(lambda: set(device.committed) <= sub.segment_ids(), 15), \
        f"missing {len(set(device.committed) - sub.segment_ids())} of {len(device.committed)}"


def test_device_sigkilled_five_times_loses_nothing_that_reached_the_outbox(broker, subscriber_factory, tmp_path):
    sub = subscriber_factory(broker.port)
    state = tmp_path / "state"
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=state)
    rng = random.Random(5)
    in_outbox: set[str] = set()
    committed: set[str] = set()
    for round_ in range(5):
        device = DeviceProcess(cfg, segments=-1, interval_s=0.03, seed=round_)
        assert wait_until(lambda: len(device.committed) >= 3, 15), device.stderr[-2000:]
        time.sleep(rng.uniform(0.0, 0.6))  # a random moment: mid-commit, mid-publish, mid-ack
        device.kill()
        committed |= set(device.committed)
        in_outbox |= outbox_keys(state)  # reached the outbox, whether or not it was printed
    final = DeviceProcess(cfg, segments=0, interval_s=0.0, until_drained_s=20)
    assert final.wait(40) == 0, final.stderr[-2000:]
    assert outbox_keys(state) == set()
    expected = committed | in_outbox
    assert len(expected) >= 15
    assert wait_until(lambda: expected <= sub.segment_ids(), 15), \
        f"missing {len(expected - sub.segment_ids())} of {len(expected)}"


def test_outbox_cap_reached_offline_evicts_oldest_and_reports_it(tmp_path, subscriber_factory, caplog):
    port = free_port()  # nothing listens yet: the device is offline
    cfg = load_config(write_config(tmp_path / "edge.toml", port=port, state_dir=tmp_path / "state",
                                   extra="\n[outbox]\nmax_bytes = 4096\n", metrics_interval=3600))
    rt = DeviceRuntime(cfg)
    ids = []
    with caplog.at_level(logging.WARNING, logger="edge.outbox"):
        rt.start(model_version="synthetic", providers=[])
        for seg in synthetic_segments(20):
            rt.emit(seg)
            ids.append(seg.segment_id)
    assert "evicted" in caplog.text and "max_bytes=4096" in caplog.text
    kept = rt.outbox.keys()
    evicted = rt.outbox.stats().evicted_total
    assert evicted == 20 - len(kept) and evicted > 0
    assert kept == ids[evicted:]  # the oldest went first
    broker = Mosquitto(tmp_path / "broker", port=port).start()
    try:
        sub = subscriber_factory(port)
        assert wait_until(lambda: rt.outbox.depth == 0, 10)
        rt.publish_metrics()
        assert wait_until(lambda: sub.payloads("metrics"), 5)
        metrics = sub.payloads("metrics")[-1]
        assert metrics["outbox"]["evicted_total"] == evicted
        assert sub.segment_ids() == set(ids[evicted:])
    finally:
        rt.close()
        broker.stop()


def tls_broker(tmp_path) -> tuple[Mosquitto, str]:
    ca, cert, key = make_tls_files(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "broker", users={"dev-1": "right-password"}, tls=(ca, cert, key)).start()
    return broker, ca


def tls_config(tmp_path, port: int, ca: str, password: str, auth_retry_s: float = 2.0):
    cred = tmp_path / "mqtt.cred"
    cred.write_text(f"dev-1:{password}\n")
    return load_config(write_config(
        tmp_path / "edge.toml", port=port, state_dir=tmp_path / "state",
        mqtt_extra=f'credentials_file = "{cred}"\nauth_retry_s = {auth_retry_s}\n\n[mqtt.tls]\nca = "{ca}"',
    ))


def test_tls_with_the_right_password_delivers(tmp_path, subscriber_factory):
    broker, ca = tls_broker(tmp_path)
    try:
        sub = subscriber_factory(broker.port, tls_ca=ca, username="dev-1", password="right-password")
        rt = DeviceRuntime(tls_config(tmp_path, broker.port, ca, "right-password"))
        rt.start(model_version="synthetic", providers=[])
        ids = [rt.emit(seg).segment_id for seg in synthetic_segments(5)]
        assert wait_until(lambda: set(ids) <= sub.segment_ids(), 10)
        rt.close()
    finally:
        broker.stop()


def test_tls_with_a_wrong_password_gives_one_clear_error_and_backs_off(tmp_path, caplog):
    broker, ca = tls_broker(tmp_path)
    try:
        cfg = tls_config(tmp_path, broker.port, ca, "wrong-password", auth_retry_s=2.0)
        rt = DeviceRuntime(cfg)
        with caplog.at_level(logging.ERROR, logger="edge.mqtt_link"):
            rt.start(model_version="synthetic", providers=[])
            time.sleep(5.0)
            link = rt.link
            attempts = link.counters["connect_attempts"]
            rt.close()
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        text = errors[0].getMessage()
        assert "refused the login of user 'dev-1'" in text and "mqtt.credentials_file" in text
        assert "wrong-password" not in text
        # reconnect_min_s is 0.2 s: without the back-off that would be ~25 attempts in 5 s
        assert 2 <= attempts <= 3
        assert broker.connection_attempts() == attempts
        assert link.counters["auth_failures"] == attempts
    finally:
        broker.stop()


def test_tls_without_the_ca_says_the_certificate_is_not_trusted(tmp_path):
    broker, ca = tls_broker(tmp_path)
    try:
        from edge.broker import TlsConfig
        from edge.config import MqttConfig
        from edge.mqtt_link import probe_broker

        cfg = MqttConfig(host="127.0.0.1", port=broker.port, tls=TlsConfig(enabled=True))
        ok, text = probe_broker(cfg, "dev-1", None, timeout_s=3)
        assert not ok
        assert "not trusted" in text and "mqtt.tls.ca" in text
    finally:
        broker.stop()
