"""The broker settings the device and central share (`edge.broker`): one set of rules for both
config files, one reader of a credentials file, one paho client set-up."""

from __future__ import annotations

import pytest

from central.config import central_config_from_dict
from edge.broker import BrokerConfig, Credentials, TlsConfig, new_client
from edge.config import config_from_dict
from edge.errors import ConfigError


def edge_mqtt(tmp_path, **mqtt):
    return config_from_dict({"device": {"id": "d", "site": "s"}, "source": {"spec": "/dev/video0"}, "mqtt": mqtt},
                            base_dir=tmp_path).mqtt


def central_mqtt(tmp_path, **mqtt):
    return central_config_from_dict({"mqtt": mqtt}, base_dir=tmp_path).mqtt


@pytest.mark.parametrize("load", [edge_mqtt, central_mqtt])
def test_both_sides_read_a_credentials_file_by_the_same_rules(tmp_path, load):
    (tmp_path / "cred").write_text("ingest:pa:55\n")
    assert load(tmp_path, credentials_file="cred").credentials() == Credentials("ingest", "pa:55")
    (tmp_path / "only-password").write_text("secret\n")
    assert load(tmp_path, credentials_file="only-password", username="u").credentials() == ("u", "secret")
    with pytest.raises(ConfigError, match="must hold 'username:password'"):
        load(tmp_path, credentials_file="only-password").credentials()
    (tmp_path / "empty-user").write_text(":secret\n")
    with pytest.raises(ConfigError, match="empty user name or password"):
        load(tmp_path, credentials_file="empty-user").credentials()


@pytest.mark.parametrize("load", [edge_mqtt, central_mqtt])
def test_both_sides_look_up_a_relative_credentials_file_in_the_systemd_credentials_directory(
        tmp_path, monkeypatch, load):
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt.cred").write_text("dev:pw\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load(tmp_path, credentials_file="mqtt.cred").credentials() == ("dev", "pw")


@pytest.mark.parametrize("load", [edge_mqtt, central_mqtt])
@pytest.mark.parametrize("mqtt, problem", [
    ({"password": "x"}, "mqtt.password"),
    ({"client_id": "a/b"}, "mqtt.client_id"),
    ({"reconnect_min_s": 5.0, "reconnect_max_s": 1.0}, "mqtt.reconnect_max_s"),
    ({"tls": {"cert": "c.pem"}}, "mqtt.tls.cert"),
])
def test_both_sides_refuse_the_same_broker_mistakes(tmp_path, load, mqtt, problem):
    with pytest.raises(ConfigError, match=problem):
        load(tmp_path, **mqtt)


def test_a_configured_client_carries_login_tls_and_the_last_will():
    cfg = BrokerConfig(host="broker", tls=TlsConfig(enabled=True))
    client = new_client(cfg, "dev-1", credentials=Credentials("dev", "pw"), will=("laps/v1/s/d/state", b"{}"))
    assert client.username == "dev" and client.password == "pw"
    assert client._ssl_context is not None and client._will_topic == b"laps/v1/s/d/state"
    assert cfg.effective_port == 8883 and BrokerConfig().effective_port == 1883
