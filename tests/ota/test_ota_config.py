"""The `[ota]` section of the device config: what is required, what is refused."""

from __future__ import annotations

import pytest

from edge.config import config_from_dict
from edge.errors import ConfigError


def cfg(ota: dict, base_dir=None):
    return config_from_dict({"device": {"site": "s", "id": "d"}, "source": {"spec": "synthetic://assembly"},
                             "ota": ota}, origin="dev.toml", base_dir=base_dir)


def test_ota_is_off_by_default():
    assert config_from_dict({"device": {"site": "s", "id": "d"}, "source": {"spec": "x"}}).ota.enabled is False


def test_enabling_ota_without_a_trusted_key_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="key ota.trusted_keys = \\[\\] is not allowed: expected at least one"):
        cfg({"enabled": True})


def test_a_threshold_above_the_number_of_keys_is_refused(keys):
    with pytest.raises(ConfigError, match="ota.threshold = 2 is not allowed"):
        cfg({"enabled": True, "trusted_keys": [str(keys["release"][1])], "threshold": 2})


def test_relative_key_paths_resolve_against_the_config_folder(keys):
    pub = keys["release"][1]
    c = cfg({"enabled": True, "trusted_keys": [pub.name]}, base_dir=pub.parent)
    assert c.ota.trusted_keys == [str(pub)]
    assert c.ota_root.name == "ota"


def test_a_trusted_keys_value_that_is_not_a_list_of_strings_is_refused():
    with pytest.raises(ConfigError, match="ota.trusted_keys .* expected a list of strings"):
        cfg({"enabled": True, "trusted_keys": "k.pub"})


def test_the_service_and_doctor_start_on_the_stores_current_model_once_there_is_one(keys, seed_dir, tmp_path):
    from edge.ota.store import OtaStore
    from edge.service import configured_model_dir

    c = cfg({"enabled": True, "trusted_keys": [str(keys["release"][1])], "root": str(tmp_path / "ota")})
    assert configured_model_dir(c) is not None and "ota" not in configured_model_dir(c)  # not seeded yet
    OtaStore(tmp_path / "ota").seed(seed_dir)
    assert configured_model_dir(c) == str(tmp_path / "ota" / "current")
