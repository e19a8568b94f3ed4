"""calibration.json: written by calibration and export through `edge.calibration_file`, read by the device."""

import json
import shutil
from pathlib import Path

import pytest

from calibration.recordings import EnergyRecording, data_hash, resolve_model
from calibration.sweep import SweepSpace
from calibration.unsupervised import calibrate_unsupervised
from edge.calibration_file import SCHEMA, CalibrationFile
from edge.energy import HysteresisParams
from edge.errors import ConfigError, ModelError
from edge.model import install_calibration, load_model_directory, read_manifest
from edge.pipeline import build_pipeline

from .makers import bursty_series

SMALL = SweepSpace(ratio_off=(0.9,), up_steps=(2,), down_steps=(2,), alpha=(0.7,), max_theta=32)
SHIPPED_CALIBRATION = Path(__file__).resolve().parents[2] / "edge" / "shipped_models" / "default" / "calibration.json"


def _file(model_version="velocity-energy") -> tuple:
    e, p, _ = bursty_series(530, 300)
    recs = [EnergyRecording("cam1", "cam1.mp4", e, p, 10.0, model_version, "trace")]
    cal = calibrate_unsupervised(recs, SMALL)
    model = resolve_model("none")
    if model_version != model.model_version:
        model = type(model)("dir", model_version, 10.0, (64, 48), 16)
    return cal, cal.to_file(recs, model, data_hash(recs))


def test_round_trip_gives_the_same_file_and_the_parameters_the_device_runs(tmp_path):
    cal, written = _file()
    path = written.write(tmp_path / "calibration.json")
    back = CalibrationFile.read(path)
    assert back == written and back.params == cal.params
    assert back.to_dict() == json.loads(path.read_text())


def test_the_file_carries_its_provenance(tmp_path):
    cal, written = _file()
    data = json.loads(written.write(tmp_path / "c.json").read_text())
    assert data["schema"] == SCHEMA and data["model_version"] == "velocity-energy"
    assert data["theta_off"] == pytest.approx(cal.params.theta_off)
    assert len(data["data"]["sha256"]) == 64
    assert data["criterion"] == "youden" and data["score"] == pytest.approx(cal.score)
    assert set(data["proxy_quality"]) >= {"youden_j", "f1", "otsu_threshold", "otsu_separability", "weak"}
    assert data["created"].endswith("Z") and data["tool"] == "laps-calibrate" and data["tool_version"]


def test_the_device_pipeline_runs_with_the_calibration_file(tmp_path):
    cal, written = _file()
    path = written.write(tmp_path / "calibration.json")
    assert build_pipeline(None, calibration_path=str(path), keep_keyframes=False).params == cal.params


def test_a_laps_calibrate_file_as_written_before_the_owner_still_loads(tmp_path):
    # What calibration/calibration_file.py wrote: the record, json.dumps(indent=2), provenance flat.
    params = HysteresisParams(theta_on=0.52, ratio_off=0.9)
    record = {
        "schema": "laps.calibration/1", "params": params.to_dict(), "theta_off": params.theta_off,
        "model_version": "velocity-energy", "fps": 10.0, "mode": "unsupervised", "criterion": "youden",
        "score": 0.95, "proxy_quality": {"youden_j": 0.95, "weak": False}, "labelled": None,
        "unsupervised_params": None, "split": None,
        "data": {"sha256": "f" * 64, "recordings": [], "seconds": 30.0},
        "sweep": {"parameter_sets": 32}, "warnings": ["a warning"], "created": "2026-12-01T10:00:00Z",
        "tool": "laps-calibrate", "tool_version": "0.1.0",
    }
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    back = CalibrationFile.read(path)
    assert back.params == params
    assert (back.model_version, back.mode, back.score, back.warnings) == ("velocity-energy", "unsupervised", 0.95,
                                                                           ("a warning",))
    assert back.details["data"]["sha256"] == "f" * 64
    assert back.to_dict() == record  # nothing is lost on the way through


def test_a_laps_export_file_as_written_before_the_owner_still_loads(tmp_path):
    # What laps-export onnx wrote: {"params", "provenance"}, json.dumps(indent=1), no schema.
    params = HysteresisParams(theta_on=0.18, split_window=10, split_theta=0.13)
    record = {"params": params.to_dict(),
              "provenance": {"method": "theta_on search", "sources": ["synthetic://assembly?seed=500"],
                             "tracker": "lk", "energy": "newest-token latent energy", "f1_at_2s": 0.79,
                             "model_version": "small-2026.11-1"}}
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    back = CalibrationFile.read(path)
    assert back.params == params and back.model_version == "small-2026.11-1"
    assert back.details["f1_at_2s"] == 0.79 and back.details["tracker"] == "lk"
    assert build_pipeline(None, calibration_path=str(path), keep_keyframes=False).params == params


def test_the_shipped_model_calibration_still_loads():
    back = CalibrationFile.read(SHIPPED_CALIBRATION)
    assert back.params.theta_on > 0 and back.model_version


def test_a_bare_parameter_object_still_loads(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"theta_on": 0.3, "alpha": 0.5}), encoding="utf-8")
    assert CalibrationFile.read(path).params == HysteresisParams(theta_on=0.3, alpha=0.5)


def test_a_missing_or_broken_calibration_file_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        CalibrationFile.read(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON") as err:
        CalibrationFile.read(tmp_path / "bad.json")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("content, problem", [
    ({"schema": "laps.calibration/9", "params": {"theta_on": 1.0}}, "schema 'laps.calibration/9'"),
    ({"schema": "laps.calibration/1", "params": {"theta_on": 1.0, "gain": 2}}, "unknown hysteresis parameter"),
    ({"provenance": {}}, "no 'params' object"),
    ([1, 2], "not an object"),
])
def test_a_file_the_device_would_refuse_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(ConfigError, match=problem) as err:
        CalibrationFile.read(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_install_updates_the_manifest_so_the_model_verifies(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    before = read_manifest(model_dir)
    cal, written = _file("tiny-cal-test")
    install_calibration(model_dir, written)
    loaded = load_model_directory(model_dir)
    assert loaded.calibration == written
    assert loaded.version == str(before["version"]) and loaded.bundle_id == before["bundle_id"]
    assert build_pipeline(str(model_dir), keep_keyframes=False, providers="cpu").params == cal.params


def test_install_refuses_a_calibration_of_another_model(tiny_model_dir):
    _, written = _file()
    with pytest.raises(ModelError, match="velocity-energy"):
        install_calibration(tiny_model_dir, written)


def test_install_refuses_a_signed_directory(tiny_model_dir, tmp_path):
    model_dir = tmp_path / "m"
    shutil.copytree(tiny_model_dir, model_dir)
    (model_dir / "manifest.sig").write_text("{}")
    _, written = _file("tiny-cal-test")
    with pytest.raises(ModelError, match="signed"):
        install_calibration(model_dir, written)
