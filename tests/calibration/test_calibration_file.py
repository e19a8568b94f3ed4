"""calibration.json: written by calibration, read by the device."""

import json

import pytest

from calibration.calibration_file import (
    SCHEMA,
    calibration_record,
    install_into_model,
    read_calibration,
    write_calibration,
)
from calibration.recordings import EnergyRecording, data_hash, resolve_model
from calibration.sweep import SweepSpace
from calibration.unsupervised import calibrate_unsupervised
from edge.errors import ConfigError, ModelError
from edge.model import load_model_directory
from edge.pipeline import build_pipeline, load_calibration

from .makers import bursty_series

SMALL = SweepSpace(ratio_off=(0.9,), up_steps=(2,), down_steps=(2,), alpha=(0.7,), max_theta=32)


def _record(model_version="velocity-energy"):
    e, p, _ = bursty_series(530, 300)
    recs = [EnergyRecording("cam1", "cam1.mp4", e, p, 10.0, model_version, "trace")]
    cal = calibrate_unsupervised(recs, SMALL)
    model = resolve_model("none")
    if model_version != model.model_version:
        model = type(model)("dir", model_version, 10.0, (64, 48), 16)
    return cal, calibration_record(cal, recs, model, data_hash(recs))


def test_round_trip_is_read_by_the_devices_load_calibration(tmp_path):
    cal, record = _record()
    path = write_calibration(tmp_path / "calibration.json", record)
    assert load_calibration(str(path)) == cal.params
    back = read_calibration(path)
    assert back.params == cal.params and back.record == json.loads(path.read_text())


def test_the_file_carries_its_provenance(tmp_path):
    cal, record = _record()
    data = json.loads(write_calibration(tmp_path / "c.json", record).read_text())
    assert data["schema"] == SCHEMA and data["model_version"] == "velocity-energy"
    assert len(data["data"]["sha256"]) == 64
    assert data["criterion"] == "youden" and data["score"] == pytest.approx(cal.score)
    assert set(data["proxy_quality"]) >= {"youden_j", "f1", "otsu_threshold", "otsu_separability", "weak"}
    assert data["created"].endswith("Z") and data["tool"] == "laps-calibrate" and data["tool_version"]


def test_the_device_pipeline_runs_with_the_calibration_file(tmp_path):
    cal, record = _record()
    path = write_calibration(tmp_path / "calibration.json", record)
    assert build_pipeline(None, calibration_path=str(path), keep_keyframes=False).params == cal.params


def test_a_missing_or_broken_calibration_file_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_calibration(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON") as err:
        read_calibration(tmp_path / "bad.json")
    assert "\n" not in str(err.value)


def test_install_into_model_updates_the_manifest_so_the_model_verifies(tiny_model_dir, tmp_path):
    import shutil

    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    cal, record = _record("tiny-cal-test")
    install_into_model(model_dir, record)
    loaded = load_model_directory(model_dir)
    assert loaded.calibration["params"] == cal.params.to_dict()
    assert build_pipeline(str(model_dir), keep_keyframes=False, providers="cpu").params == cal.params


def test_install_refuses_a_calibration_of_another_model(tiny_model_dir):
    _, record = _record()
    with pytest.raises(ModelError, match="velocity-energy"):
        install_into_model(tiny_model_dir, record)
