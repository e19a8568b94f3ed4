"""Per-device identity on MQTT: `laps-central devices add|revoke|list`, and a real Mosquitto
configured by nothing but the files it writes."""

from __future__ import annotations

import json
import os
import stat
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from central.cli import main as central_main
from central.config import MqttConfig
from central.devices import DeviceRegistry, RegistryView, read_registry
from central.ingest import IngestWorker
from central.store import Store
from central_testkit import Mosquitto, make_segments, segment_payloads, wait_until, write_central_config
from edge.config import load_config
from edge.device_runtime import DeviceRuntime
from tests.service.helpers import write_config


def _devices(tmp_path, *args: str) -> int:
    cfg = tmp_path / "central.toml"
    if not cfg.exists():
        write_central_config(cfg, port=1883, data_dir=tmp_path / "data")
    return central_main(["devices", *args, "--config", str(cfg)])


def test_add_issues_secrets_once_and_keeps_only_their_hashes(tmp_path, capsys):
    out = tmp_path / "issued"
    assert _devices(tmp_path, "add", "ws-07", "--site", "plant-a", "--out", str(out)) == 0
    user, password = (out / "ws-07.mqtt.cred").read_text().strip().split(":", 1)
    token = (out / "ws-07.upload.token").read_text().strip()
    assert user == "ws-07" and len(password) >= 24 and len(token) >= 32
    for f in ("ws-07.mqtt.cred", "ws-07.upload.token"):
        assert stat.S_IMODE(os.stat(out / f).st_mode) == 0o600
    folder = tmp_path / "data" / "devices"
    for f in ("registry.json", "mosquitto.passwd", "mosquitto.acl"):
        text = (folder / f).read_text()
        assert password not in text and token not in text
    assert (folder / "mosquitto.passwd").read_text().startswith("ws-07:$7$101$")
    assert "pattern write laps/v1/+/%u/segments" in (folder / "mosquitto.acl").read_text()
    assert "mosquitto.passwd" in capsys.readouterr().out


def test_list_and_revoke_and_a_revoked_name_can_be_added_again(tmp_path, capsys):
    _devices(tmp_path, "add", "ws-07", "--site", "plant-a", "--out", str(tmp_path / "a"))
    _devices(tmp_path, "add", "laps-central", "--role", "central", "--out", str(tmp_path / "a"))
    capsys.readouterr()
    assert _devices(tmp_path, "list", "--json") == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["name"], e["role"], e["site"], e["revoked"]) for e in listed] == [
        ("ws-07", "device", "plant-a", None), ("laps-central", "central", "", None)]
    assert _devices(tmp_path, "revoke", "ws-07") == 0
    assert "ws-07:" not in (tmp_path / "data" / "devices" / "mosquitto.passwd").read_text()
    assert _devices(tmp_path, "add", "ws-07", "--site", "plant-a", "--out", str(tmp_path / "b")) == 0
    assert read_registry(tmp_path / "data" / "devices" / "registry.json")["ws-07"].active


@pytest.mark.parametrize("args, says", [
    (("add", "ws-07", "--out", "X"), "site '' is not a site id"),
    (("add", "bad/name", "--site", "s", "--out", "X"), "name 'bad/name'"),
    (("revoke", "nobody"), "'nobody' is not registered"),
])
def test_mistakes_end_in_one_line_and_exit_2(tmp_path, capsys, args, says):
    args = tuple(str(tmp_path / "out") if a == "X" else a for a in args)
    assert _devices(tmp_path, *args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and says in err and "\n" not in err


def test_adding_a_registered_name_again_refuses_and_overwrites_no_secret(tmp_path, capsys):
    _devices(tmp_path, "add", "ws-07", "--site", "plant-a", "--out", str(tmp_path / "a"))
    before = (tmp_path / "a" / "ws-07.mqtt.cred").read_text()
    assert _devices(tmp_path, "add", "ws-07", "--site", "plant-a", "--out", str(tmp_path / "a")) == 2
    assert "already exists" in capsys.readouterr().err
    assert _devices(tmp_path, "add", "ws-07", "--site", "plant-a", "--out", str(tmp_path / "b")) == 2
    assert "already registered" in capsys.readouterr().err
    assert (tmp_path / "a" / "ws-07.mqtt.cred").read_text() == before


# -- a real broker configured by the generated files -----------------------------------------------
class _Client:
    """A paho client that records CONNACK, PUBACK reason codes and messages."""

    def __init__(self, port: int, user: str | None, password: str | None, name: str) -> None:
        self.connack = None
        self.pubacks: dict[int, str] = {}
        self.messages: list[tuple[str, bytes]] = []
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        if user:
            c.username_pw_set(user, password)
        c.on_connect = lambda cl, u, f, rc, p: setattr(self, "connack", rc)
        c.on_publish = lambda cl, u, mid, rc, p: self.pubacks.__setitem__(mid, str(rc))
        c.on_message = lambda cl, u, m: self.messages.append((m.topic, bytes(m.payload)))
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        assert wait_until(lambda: self.connack is not None, 5)

    def publish(self, topic: str, payload: bytes) -> str:
        mid = self.client.publish(topic, payload, qos=1).mid
        assert wait_until(lambda: mid in self.pubacks, 5)
        return self.pubacks[mid]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _login(port: int, user: str | None, password: str | None) -> str:
    """The broker's CONNACK reason for one login attempt."""
    c = _Client(port, user, password, f"login-{time.monotonic_ns()}")
    c.close()
    return str(c.connack)


@pytest.mark.broker
def test_a_broker_configured_by_the_generated_files_keeps_every_device_to_its_own_topics(tmp_path):
    registry = DeviceRegistry(tmp_path / "devices")
    ws07 = registry.add("ws-07", site="plant-a")                       # mosquitto_passwd -U
    ws99 = registry.add("ws-99", site="plant-a", hasher="builtin")     # the format written here
    central = registry.add("laps-central", role="central")
    broker = Mosquitto(tmp_path / "broker", auth_files=(registry.passwd_path, registry.acl_path)).start()
    store = Store(tmp_path / "c.sqlite")
    cfg = MqttConfig(host="127.0.0.1", port=broker.port, keepalive=2, reconnect_min_s=0.1, reconnect_max_s=0.5,
                     username="laps-central", password=central.mqtt_password)
    ingest = IngestWorker(cfg, store, registry=RegistryView(registry.registry_path))
    ingest.start()
    clients: list[_Client] = []
    rt = None
    try:
        assert ingest.wait_subscribed(10), ingest.last_error
        # The device service, logged in as itself, delivers end to end (segments in, acks back).
        cred = tmp_path / "ws-07.cred"
        cred.write_text(f"ws-07:{ws07.mqtt_password}\n")
        rt = DeviceRuntime(load_config(write_config(
            tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state", site="plant-a", device="ws-07",
            delivery="central", mqtt_extra=f'credentials_file = "{cred}"')))
        rt.start(model_version="synthetic", providers=[])
        segs = make_segments(3)
        for seg in segs:
            rt.emit(seg)
        assert wait_until(lambda: rt.outbox.depth == 0, 15), rt.link.stats()
        assert sorted(store.segment_ids()) == sorted(s.segment_id for s in segs)

        # ws-07 forging other devices: refused by the broker itself (PUBACK "Not authorized").
        forger = _Client(broker.port, "ws-07", ws07.mqtt_password, "forger")
        clients.append(forger)
        [(_, forged)] = segment_payloads(make_segments(1, seed=7), site="plant-z", device="evil-01")
        assert forger.publish("laps/v1/plant-z/evil-01/segments", forged) == "Not authorized"
        [(topic99, as99)] = segment_payloads(make_segments(1, seed=8), site="plant-a", device="ws-99")
        assert forger.publish(topic99, as99) == "Not authorized"
        assert forger.publish("laps/v1/plant-a/ws-07/acks", b"{}") == "Not authorized"  # only central acks
        # its own id on another site passes the %u rule; central refuses it against the registry
        [(other_site, payload)] = segment_payloads(make_segments(1, seed=9), site="plant-z", device="ws-07")
        assert forger.publish(other_site, payload) == "Success"
        assert wait_until(lambda: store.counters()["quarantined"] == 1, 10)
        assert "registered at site 'plant-a'" in store.quarantine()[0][1]
        # a stranger and an anonymous client cannot even log in
        assert _login(broker.port, "evil-01", "guess") == "Not authorized"
        assert _login(broker.port, None, None) == "Not authorized"
        # another device cannot read ws-07's acks
        eavesdropper = _Client(broker.port, "ws-99", ws99.mqtt_password, "ws-99")
        clients.append(eavesdropper)
        eavesdropper.client.subscribe("laps/v1/#", qos=1)
        rt.emit(make_segments(1, seed=10)[0])
        assert wait_until(lambda: rt.outbox.depth == 0, 10)
        time.sleep(0.3)
        assert eavesdropper.messages == []
        assert store.count() == 4  # nothing forged was stored

        # a revoked device is locked out once the broker re-reads its files
        assert _login(broker.port, "ws-99", ws99.mqtt_password) == "Success"
        registry.revoke("ws-99")
        broker.reload()
        assert wait_until(lambda: _login(broker.port, "ws-99", ws99.mqtt_password) == "Not authorized", 10, 0.5)
    finally:
        if rt is not None:
            rt.close()
        for c in clients:
            c.close()
        ingest.stop()
        store.close()
        broker.stop()
