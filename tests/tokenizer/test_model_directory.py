"""Model directories: every file verified against the manifest's sha256 before use."""

import json
import shutil

import pytest

from edge.errors import ModelError
from edge.model import load_model_directory
from edge.tokenizer import TokenizerRuntime


@pytest.fixture
def copy(model_dir, tmp_path):
    dst = tmp_path / "model"
    shutil.copytree(model_dir.path, dst)
    return dst


def test_layout_has_manifest_onnx_calibration_and_golden(model_dir):
    files = set(model_dir.manifest["files"])
    assert {"tokenizer.onnx", "calibration.json", "golden/golden.npz"} <= files
    assert model_dir.calibration.params.theta_on == 0.05
    assert model_dir.manifest["model"]["window"] == 6


def test_a_tampered_file_is_refused(copy):
    onnx = copy / "tokenizer.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    onnx.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="tokenizer.onnx has sha256 .* tampered") as err:
        load_model_directory(copy)
    assert "\n" not in str(err.value)


def test_a_truncated_file_is_refused(copy):
    cal = copy / "calibration.json"
    cal.write_bytes(cal.read_bytes()[:-3])
    with pytest.raises(ModelError, match="calibration.json is .* bytes but the manifest says"):
        load_model_directory(copy)


def test_a_missing_listed_file_is_refused(copy):
    (copy / "golden" / "golden.npz").unlink()
    with pytest.raises(ModelError, match="listed in the manifest but missing"):
        load_model_directory(copy)


def test_a_directory_without_manifest_is_refused(copy):
    (copy / "manifest.json").unlink()
    with pytest.raises(ModelError, match="manifest.json is missing"):
        load_model_directory(copy)


def test_a_nonexistent_directory_is_refused(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model_directory(tmp_path / "nope")


def test_manifest_metadata_that_differs_from_the_onnx_file_is_refused(copy):
    # Re-hashing after editing the manifest's metadata passes the sha256 checks; the runtime must
    # still notice that the ONNX file embeds other metadata.
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model"]["velocity_scale_px"] = 9.0
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="differs from manifest.json"):
        TokenizerRuntime(copy, providers="cpu")


def test_update_manifest_keeps_the_records_and_bumps_only_what_it_is_asked(copy):
    from edge.model import read_manifest, update_manifest

    before = read_manifest(copy)
    (copy / "notes.txt").write_text("a deliberate change\n")
    md = update_manifest(copy, version=before["version"] + 1, records={"tracker": {"kind": "test"}})
    after = read_manifest(copy)
    assert after["version"] == before["version"] + 1 and after["bundle_id"] == before["bundle_id"]
    assert after["model"] == before["model"] and after["tracker"] == {"kind": "test"}
    assert set(after["files"]) == set(before["files"]) | {"notes.txt"}
    # A later rewrite keeps the record it was not told about.
    update_manifest(copy)
    assert read_manifest(copy)["tracker"] == {"kind": "test"} and md.version == str(before["version"] + 1)


def test_a_model_directory_manifest_is_a_valid_bundle_manifest_byte_for_byte(copy):
    from edge.model.directory import manifest_bytes
    from edge.ota.manifest import parse_manifest

    raw = (copy / "manifest.json").read_bytes()
    assert manifest_bytes(json.loads(raw)) == raw  # the one encoding: signatures can cover these bytes
    assert parse_manifest(raw).files.keys() == set(json.loads(raw)["files"])


def test_the_engine_cache_never_enters_the_manifest(copy):
    from edge.model import read_manifest, update_manifest

    (copy / "trt-cache").mkdir()
    (copy / "trt-cache" / "tokenizer.engine").write_bytes(b"engine")
    update_manifest(copy)
    assert not any(rel.startswith("trt-cache/") for rel in read_manifest(copy)["files"])
