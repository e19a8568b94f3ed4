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
    assert model_dir.calibration["params"]["theta_on"] == 0.05
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
