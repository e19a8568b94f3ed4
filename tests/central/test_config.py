"""The central configuration file."""

from __future__ import annotations

import pytest

from central.config import central_config_example, central_config_from_dict, load_central_config
from edge.errors import ConfigError


def test_the_example_config_loads_with_every_default(tmp_path):
    path = tmp_path / "central.toml"
    path.write_text(central_config_example())
    cfg = load_central_config(path)
    assert cfg.mqtt.shared_topic == "$share/laps-central/laps/v1/+/+/segments"
    assert cfg.store.synchronous == "full" and cfg.http.port == 8470


def test_relative_paths_are_resolved_against_the_config_folder(tmp_path):
    path = tmp_path / "etc" / "central.toml"
    path.parent.mkdir()
    path.write_text('[store]\npath = "db/central.sqlite"\n[paths]\ndata_dir = "data"\n')
    cfg = load_central_config(path)
    assert cfg.store.path == str(tmp_path / "etc" / "db" / "central.sqlite")
    assert cfg.media_dir == tmp_path / "etc" / "data" / "media"


def test_an_unknown_key_is_one_line_naming_the_key_and_the_known_ones():
    with pytest.raises(ConfigError) as err:
        central_config_from_dict({"mqtt": {"grup": "x"}}, origin="c.toml")
    text = str(err.value)
    assert "mqtt.grup" in text and "group" in text and "\n" not in text


@pytest.mark.parametrize("table, key", [
    ({"mqtt": {"group": "a/b"}}, "mqtt.group"),
    ({"mqtt": {"port": 70000}}, "mqtt.port"),
    ({"mqtt": {"topic": "laps/v1/#"}}, "mqtt.topic"),
    ({"store": {"synchronous": "off"}}, "store.synchronous"),
    ({"http": {"port": "80"}}, "http.port"),
])
def test_a_bad_value_names_the_key_and_what_is_allowed(table, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        central_config_from_dict(table)


def test_a_missing_file_says_how_to_get_one(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_central_config(tmp_path / "nope.toml")


def test_each_worker_gets_its_own_stable_client_id():
    for table in ({}, {"mqtt": {"client_id": "central-a"}}):
        cfg = central_config_from_dict(table).mqtt
        assert cfg.client_id_for(0) != cfg.client_id_for(1)
        assert cfg.client_id_for(1) == cfg.client_id_for(1)
    assert central_config_from_dict({"mqtt": {"client_id": "central-a"}}).mqtt.client_id_for(0) == "central-a"


def test_credentials_come_from_the_credentials_file(tmp_path):
    secret = tmp_path / "cred"
    secret.write_text("ingest:pa55\n")
    cfg = central_config_from_dict({"mqtt": {"credentials_file": str(secret)}}).mqtt
    assert cfg.credentials() == ("ingest", "pa55")


def test_sections_built_in_code_or_replaced_are_checked_like_a_file():
    import dataclasses

    from central.config import HttpConfig, MqttConfig, StoreConfig

    with pytest.raises(ConfigError, match=r"key http\.workers = 0 "):
        HttpConfig(workers=0)
    with pytest.raises(ConfigError, match=r"key store\.synchronous = 'off' .* 'full', 'normal'"):
        dataclasses.replace(central_config_from_dict({}).store, synchronous="off")
    with pytest.raises(ConfigError, match=r"key mqtt\.group = 'a/b' "):
        MqttConfig(group="a/b")
    assert StoreConfig(path="x.sqlite").path == "x.sqlite"


def test_a_media_dir_set_apart_from_the_data_dir_is_where_batches_go(tmp_path):
    path = tmp_path / "etc" / "central.toml"
    path.parent.mkdir()
    path.write_text('[paths]\ndata_dir = "data"\nmedia_dir = "../shared/media"\n'
                    '[store]\nurl = "postgresql://laps@db:5432/laps"\n')
    cfg = load_central_config(path)
    assert cfg.media_dir.resolve() == tmp_path / "shared" / "media"  # several hosts mount one folder here
    assert cfg.store.backend == "postgresql" and cfg.store.location == "postgresql://laps@db:5432/laps"


def test_a_password_in_the_store_url_never_shows_in_its_location():
    cfg = central_config_from_dict({"store": {"url": "postgresql://laps:s3cret@db:5432/laps"}})
    assert cfg.store.location == "postgresql://laps:***@db:5432/laps"
