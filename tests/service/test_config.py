"""The device config: checked whenever a section is built (file or code); one-line errors naming key, value, fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfig, load_config
from edge.errors import ConfigError
from .helpers import MINIMAL_EDGE_TOML, write_toml

REPO = Path(__file__).resolve().parents[2]
MINIMAL = MINIMAL_EDGE_TOML
write = write_toml


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_documented_example_loads_with_the_documented_defaults():
    cfg = load_config(REPO / "examples" / "laps-edge.toml")
    assert isinstance(cfg, EdgeConfig)
    assert cfg.device.site == "plant-a" and cfg.device.id == "ws-07"
    assert cfg.mqtt.effective_port == 1883
    assert cfg.outbox_path == Path("/var/lib/laps-edge/outbox.sqlite")
    assert cfg.numba_cache_dir == Path("/var/cache/laps-edge/numba")
    assert cfg.client_id == "laps-edge-plant-a-ws-07"
    assert not cfg.upload.enabled
    assert cfg.paths.min_free_bytes == 64 * 1024 * 1024
    assert cfg.source.resume and not cfg.source.allow_truncated


def test_disk_floor_and_file_choices_are_checked(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[paths]\nmin_free_bytes = -1\n")
    assert "paths.min_free_bytes = -1" in msg
    msg = error_of(tmp_path, MINIMAL.replace('spec = "/dev/video0"', 'spec = "/dev/video0"\nallow_truncated = "yes"'))
    assert "source.allow_truncated = 'yes'" in msg and "true or false" in msg


def test_minimal_config_needs_only_device_and_source(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.source.spec == "/dev/video0"
    assert cfg.mqtt.keepalive == 30 and cfg.mqtt.max_inflight == 20
    assert cfg.outbox.max_bytes == 64 * 1024 * 1024


def test_unknown_key_is_rejected_with_the_allowed_keys(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt]\nhots = 'x'\n")
    assert "mqtt.hots is not known" in msg and "host" in msg and str(tmp_path) in msg


def test_unknown_section_is_rejected(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[mqqt]\nhost = 'x'\n")
    assert "key mqqt is not known" in msg


def test_out_of_range_port_names_key_value_and_range(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt]\nport = 70000\n")
    assert "mqtt.port = 70000" in msg and "1 to 65535" in msg


def test_wrong_type_names_the_expected_type(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt]\nkeepalive = 'thirty'\n")
    assert "mqtt.keepalive = 'thirty'" in msg and "an integer" in msg


def test_boolean_is_not_accepted_as_a_number(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[outbox]\nmax_bytes = true\n")
    assert "outbox.max_bytes = True" in msg


def test_missing_required_section_says_what_to_add(tmp_path):
    msg = error_of(tmp_path, "[device]\nsite = 'a'\nid = 'b'\n")
    assert "key source is required" in msg and "[source]" in msg


def test_device_id_with_topic_wildcard_is_rejected(tmp_path):
    msg = error_of(tmp_path, MINIMAL.replace('"ws-07"', '"ws/07+"'))
    assert "device.id = 'ws/07+'" in msg and "topic level" in msg


def test_tracker_must_be_a_known_backend(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[model]\ntracker = 'cotracker'\n")
    assert "model.tracker = 'cotracker'" in msg and "'lk'" in msg


def test_missing_model_directory_is_reported(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[model]\ndir = 'no-such-model'\n")
    assert "model.dir" in msg and "no-such-model" in msg and "existing model directory" in msg


@pytest.mark.parametrize("table, expected", [("", "shipped"), ("\n[model]\ndir = 'default'\n", "shipped"),
                                             ("\n[model]\ndir = 'none'\n", None)])
def test_model_dir_default_runs_the_shipped_model_and_none_the_velocity_proxy(tmp_path, table, expected):
    from edge.model import resolve_model_spec, shipped_model_dir
    from edge.service import configured_model_dir

    cfg = load_config(write(tmp_path, MINIMAL + table))
    assert cfg.model.dir in ("default", "none")  # words, not resolved against the config folder
    want = str(shipped_model_dir()) if expected == "shipped" else None
    assert resolve_model_spec(cfg.model.dir) == want
    assert configured_model_dir(cfg) == want


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "models" / "m1").mkdir(parents=True)
    cfg = load_config(write(tmp_path, MINIMAL + "\n[model]\ndir = 'models/m1'\n[paths]\nstate_dir = 'state'\n"))
    assert cfg.model.dir == str(tmp_path / "models" / "m1")
    assert cfg.paths.state_dir == str(tmp_path / "state")


def test_tls_port_defaults_to_8883(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    cfg = load_config(write(tmp_path, MINIMAL + "\n[mqtt.tls]\nca = 'ca.pem'\n"))
    assert cfg.mqtt.tls.active and cfg.mqtt.effective_port == 8883


def test_unreadable_tls_file_is_reported(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt.tls]\nca = 'missing-ca.pem'\n")
    assert "mqtt.tls.ca" in msg and "readable PEM" in msg


def test_client_cert_without_key_is_rejected(tmp_path):
    (tmp_path / "c.pem").write_text("x")
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt.tls]\ncert = 'c.pem'\n")
    assert "both mqtt.tls.cert and mqtt.tls.key" in msg


def test_password_and_credentials_file_together_are_rejected(tmp_path):
    (tmp_path / "cred").write_text("u:p\n")
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt]\nusername = 'u'\npassword = 'p'\ncredentials_file = 'cred'\n")
    assert "not both" in msg


def test_password_is_never_echoed_in_errors(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt]\npassword = 'hunter2'\n")
    assert "hunter2" not in msg and "mqtt.username" in msg


def test_credentials_file_holds_user_and_password(tmp_path):
    (tmp_path / "cred").write_text("device-7:s3cr:et\n")
    cfg = load_config(write(tmp_path, MINIMAL + "\n[mqtt]\ncredentials_file = 'cred'\n"))
    creds = cfg.mqtt.credentials()
    assert (creds.username, creds.password) == ("device-7", "s3cr:et")


def test_credentials_file_with_configured_username_holds_only_the_password(tmp_path):
    (tmp_path / "cred").write_text("pa:ss\n")
    cfg = load_config(write(tmp_path, MINIMAL + "\n[mqtt]\nusername = 'dev'\ncredentials_file = 'cred'\n"))
    assert cfg.mqtt.credentials().password == "pa:ss"


def test_relative_credentials_file_is_looked_up_in_systemd_credentials_directory(tmp_path, monkeypatch):
    creds_dir = tmp_path / "creds"
    creds_dir.mkdir()
    (creds_dir / "mqtt").write_text("u:p\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds_dir))
    cfg = load_config(write(tmp_path, MINIMAL + "\n[mqtt]\ncredentials_file = 'mqtt'\n"))
    assert cfg.mqtt.credentials_file == str(creds_dir / "mqtt")


def test_missing_credentials_file_is_reported_at_load(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt]\ncredentials_file = 'nope'\n")
    assert "mqtt.credentials_file" in msg and "username:password" in msg


def test_reconnect_max_below_min_is_rejected(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt]\nreconnect_min_s = 5.0\nreconnect_max_s = 1.0\n")
    assert "mqtt.reconnect_max_s = 1.0" in msg


def test_upload_endpoint_must_be_http_url(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[upload]\nendpoint = 'ftp://x'\n")
    assert "upload.endpoint = 'ftp://x'" in msg and "http://" in msg


def test_threshold_values_must_be_numbers(tmp_path):
    msg = error_of(tmp_path, MINIMAL + "\n[model.thresholds]\ntheta_on = 'high'\n")
    assert "model.thresholds.theta_on = 'high'" in msg


def test_malformed_toml_is_one_line_with_position(tmp_path):
    msg = error_of(tmp_path, "[device\nsite = 1\n")
    assert "not valid TOML" in msg and "line" in msg


def test_missing_file_says_how_to_start(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; copy examples/laps-edge.toml"):
        load_config(tmp_path / "nope.toml")


# -- every way of building a section is checked, not only loading a file ------------------------
def test_replacing_a_loaded_value_with_a_bad_one_is_refused_naming_the_key(tmp_path):
    import dataclasses

    cfg = load_config(write(tmp_path, MINIMAL))
    with pytest.raises(ConfigError, match=r"^config: key mqtt\.port = 70000 is not allowed: expected .*65535"):
        dataclasses.replace(cfg.mqtt, port=70000)
    with pytest.raises(ConfigError, match=r"key source\.reconnect_max_s = 0\.5 .* >= source\.reconnect_min_s"):
        dataclasses.replace(cfg.source, reconnect_max_s=0.5)
    with pytest.raises(ConfigError, match=r"key outbox\.max_bytes = 10 "):
        dataclasses.replace(cfg.outbox, max_bytes=10)
    with pytest.raises(ConfigError, match=r"key model\.tracker = 'cotracker' .* one of 'lk'"):
        dataclasses.replace(cfg.model, tracker="cotracker")


def test_building_a_section_in_code_checks_types_ranges_choices_and_paths(tmp_path):
    from edge.broker import TlsConfig
    from edge.config import DeviceConfig, MetricsConfig, ModelConfig, SourceConfig

    with pytest.raises(ConfigError, match=r"key device\.id = 'a/b' .* topic level"):
        DeviceConfig(site="s", id="a/b")
    with pytest.raises(ConfigError, match=r"key source\.fps = '10' is not allowed: expected a number"):
        SourceConfig(spec="x", fps="10")
    with pytest.raises(ConfigError, match=r"key metrics\.prometheus_port = -1 "):
        MetricsConfig(prometheus_port=-1)
    with pytest.raises(ConfigError, match=r"key model\.dir = '.*nowhere' .* existing model directory"):
        ModelConfig(dir=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"key mqtt\.tls\.ca = .* readable PEM file"):
        TlsConfig(ca=str(tmp_path / "missing.pem"))


def test_a_section_built_in_code_accepts_an_integer_for_a_number_and_stores_a_float():
    from edge.config import SourceConfig

    assert SourceConfig(spec="x", fps=10).fps == 10.0 and isinstance(SourceConfig(spec="x", fps=10).fps, float)


def test_a_refused_value_in_a_file_names_the_file_and_the_key_where_it_sits(tmp_path):
    (tmp_path / "c.pem").write_text("x")
    msg = error_of(tmp_path, MINIMAL + "\n[mqtt.tls]\ncert = 'c.pem'\nkey = 'missing.pem'\n")
    assert msg.startswith(f"config {tmp_path / 'edge.toml'}: key mqtt.tls.key = ")
