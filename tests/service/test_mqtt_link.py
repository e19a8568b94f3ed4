"""The MQTT link against a real Mosquitto: QoS 1 forwarding, PUBACK-only acknowledgement,
max_inflight, retained birth, clean stop without the last will, the will on a killed device."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edge.config import MqttConfig
from edge.messages import AckMessage, MetricsMessage, QuarantinedSegment, StateMessage, Topics
from edge.mqtt_link import MqttLink
from edge.outbox import Outbox

from .helpers import wait_until, write_config

pytestmark = pytest.mark.broker
TOPICS = Topics("site-a", "dev-1")


def mqtt_cfg(port: int, **kw) -> MqttConfig:
    base = dict(host="127.0.0.1", port=port, keepalive=2, reconnect_min_s=0.2, reconnect_max_s=1.0,
                drain_timeout_s=2.0)
    base.update(kw)
    return MqttConfig(**base)


def state(s: str) -> dict:
    return StateMessage(s, device_id="dev-1", site="site-a", boot_id="boot-1")


@pytest.fixture
def outbox(tmp_path):
    ob = Outbox(tmp_path / "outbox.sqlite")
    yield ob
    ob.close()


def put_segments(ob: Outbox, n: int, prefix: str = "seg") -> list[str]:
    keys = [f"{prefix}-{i:04d}" for i in range(n)]
    for k in keys:
        ob.put(k, TOPICS.segments, json.dumps({"segment_id": k}).encode())
    return keys


def test_outbox_rows_reach_a_subscriber_and_then_leave_the_outbox(broker, subscriber_factory, outbox):
    sub = subscriber_factory(broker.port)
    link = MqttLink(mqtt_cfg(broker.port), client_id="dev-1", topics=TOPICS, outbox=outbox, will=state("offline"))
    link.start()
    keys = put_segments(outbox, 25)
    link.wake()
    assert wait_until(lambda: outbox.depth == 0, 10)
    assert wait_until(lambda: sub.segment_ids() == set(keys), 5)
    assert wait_until(lambda: link.stats()["acked"] == 25, 5)  # counted just after the row is deleted
    link.stop()


def test_rows_stay_until_puback_and_at_most_max_inflight_are_unacknowledged(broker, outbox):
    link = MqttLink(mqtt_cfg(broker.port, max_inflight=5, keepalive=30), client_id="dev-1", topics=TOPICS,
                    outbox=outbox)
    link.start()
    assert link.wait_connected(5)
    broker.freeze()  # no PUBACK can come back
    try:
        put_segments(outbox, 30)
        link.wake()
        assert wait_until(lambda: link.inflight_count() == 5, 5)
        time.sleep(0.5)
        assert link.counters["published"] == 5  # never more than max_inflight on the wire
        assert outbox.depth == 30  # published is not delivered: nothing acknowledged yet
    finally:
        broker.resume()
    assert wait_until(lambda: outbox.depth == 0, 10)
    link.stop()


def test_retained_birth_is_seen_by_a_later_subscriber(broker, subscriber_factory, outbox):
    link = MqttLink(mqtt_cfg(broker.port), client_id="dev-1", topics=TOPICS, outbox=outbox, will=state("offline"))
    link.set_state(state("online"))
    link.start()
    assert link.wait_connected(5)
    time.sleep(0.3)
    late = subscriber_factory(broker.port)
    assert wait_until(lambda: late.payloads("state"), 5)
    assert late.payloads("state")[-1]["state"] == "online"
    assert late.messages[-1][2] is True  # delivered as a retained message
    link.stop()


def test_clean_stop_publishes_stopped_and_does_not_fire_the_will(broker, subscriber_factory, outbox):
    sub = subscriber_factory(broker.port)
    link = MqttLink(mqtt_cfg(broker.port), client_id="dev-1", topics=TOPICS, outbox=outbox, will=state("offline"))
    link.set_state(state("online"))
    link.start()
    assert wait_until(lambda: sub.payloads("state"), 5)
    link.stop(final_state=state("stopped"))
    time.sleep(2.0)  # longer than the keepalive: a will would have been sent by now
    assert [m["state"] for m in sub.payloads("state")] == ["online", "stopped"]
    assert "Received DISCONNECT from dev-1" in broker.log_text()


def test_stop_drains_the_outbox_first(broker, subscriber_factory, outbox):
    sub = subscriber_factory(broker.port)
    link = MqttLink(mqtt_cfg(broker.port), client_id="dev-1", topics=TOPICS, outbox=outbox)
    link.start()
    assert link.wait_connected(5)
    keys = put_segments(outbox, 40)
    link.stop(final_state=state("stopped"))  # no wake(): stop itself must flush the rows
    assert outbox.depth == 0
    assert wait_until(lambda: sub.segment_ids() == set(keys), 5)


def test_killed_device_process_gets_the_last_will_offline(broker, subscriber_factory, tmp_path):
    sub = subscriber_factory(broker.port)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state",
                       site="site-a", device="dev-1")
    proc = subprocess.Popen([sys.executable, "-m", "tests.service.publisher", "--config", str(cfg), "--synthetic-segments",
                             "-1", "--interval-s", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert wait_until(lambda: any(m["state"] == "online" for m in sub.payloads("state")), 10)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        assert wait_until(lambda: sub.payloads("state")[-1]["state"] == "offline", 5)
        assert "last will" in sub.payloads("state")[-1]["detail"]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
        proc.stdout.close()


def test_metrics_go_out_at_qos0_without_the_outbox(broker, subscriber_factory, outbox):
    sub = subscriber_factory(broker.port)
    link = MqttLink(mqtt_cfg(broker.port), client_id="dev-1", topics=TOPICS, outbox=outbox)
    link.start()
    assert link.wait_connected(5)
    link.publish_metrics(MetricsMessage(device_id="dev-1", site="site-a", boot_id="boot-1", fps=10.0,
                                        stage_latency_ms={}, outbox={"depth": 0, "evicted_total": 0}, model_version="m",
                                        providers=[], source_state="online", uptime_s=0, frames_total=0,
                                        segments_total=0))
    assert wait_until(lambda: sub.payloads("metrics"), 5)
    assert outbox.stats().put_total == 0
    link.stop()


def test_end_to_end_rows_leave_only_on_centrals_ack_and_are_resent_until_then(broker, subscriber_factory, outbox):
    from edge.segments import uuid7

    sub = subscriber_factory(broker.port, topic=TOPICS.segments)
    central = subscriber_factory(broker.port, topic="nothing/here")  # used only to publish acks
    link = MqttLink(mqtt_cfg(broker.port, delivery="central", ack_timeout_s=0.5), client_id="dev-1",
                    topics=TOPICS, outbox=outbox)
    link.start()
    ids = [str(uuid7()) for _ in range(3)]
    for sid in ids:
        outbox.put(sid, TOPICS.segments, json.dumps({"segment_id": sid}).encode(), end_to_end=True)
    link.wake()
    assert wait_until(lambda: outbox.unconfirmed() == 3, 10)
    assert outbox.depth == 3  # the broker has them; central has not said so
    # no ack within ack_timeout_s: every row goes out again
    assert wait_until(lambda: link.counters["resent"] >= 3, 10)
    assert wait_until(lambda: all(sum(1 for m in sub.payloads("segments") if m["segment_id"] == s) >= 2
                                  for s in ids), 10)
    ack = AckMessage(site="site-a", device_id="dev-1", segment_ids=[ids[0].upper(), ids[1]],
                     quarantined=[QuarantinedSegment(ids[2], "field start.utc is not a valid time")])
    central.client.publish(TOPICS.acks, ack.to_json(), qos=1).wait_for_publish(5)
    # the link thread counts after the outbox commit: wait for both, not for the rows alone
    assert wait_until(lambda: outbox.depth == 0 and link.counters["confirmed"] == 3, 10)
    assert link.counters["quarantined_by_central"] == 1
    assert outbox.stats().confirmed_total == 3
    link.stop()


def test_an_ack_for_another_device_deletes_nothing(broker, subscriber_factory, outbox):
    from edge.segments import uuid7

    central = subscriber_factory(broker.port, topic="nothing/here")
    link = MqttLink(mqtt_cfg(broker.port, delivery="central"), client_id="dev-1", topics=TOPICS, outbox=outbox)
    link.start()
    sid = str(uuid7())
    outbox.put(sid, TOPICS.segments, b"{}", end_to_end=True)
    link.wake()
    assert wait_until(lambda: outbox.unconfirmed() == 1, 10)
    wrong = AckMessage(site="site-a", device_id="dev-2", segment_ids=[sid])
    central.client.publish(TOPICS.acks, wrong.to_json(), qos=1).wait_for_publish(5)
    time.sleep(0.5)
    assert outbox.depth == 1
    link.stop(drain_timeout_s=0.0)
