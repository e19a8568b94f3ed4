"""Export of the student: fixed-shape ONNX with metadata, torch/ORT parity, model-directory bundling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from edge.errors import ConfigError
from edge.model import load_model_directory, sha256_file
from edge.tracking.onnx_student import TRACKER_METADATA_KEY, TRACKER_NAME, OnnxStudentTracker
from export.tracker.onnx import OPSET, add_tracker_to_model_directory, build_metadata, export_tracker
from export.tracker.verify import FP32_MAX_POINT_ERROR_PX, verify_tracker

from .conftest import tiny_student

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "edge" / "models" / "default"
SIZE = (96, 72)


def _frames(n: int = 5) -> list[np.ndarray]:
    """A textured scene drifting 1.5 px right per frame (grey, 96x72)."""
    rng = np.random.default_rng(3)
    base = (rng.random((90, 140)) * 255).astype(np.float32)
    import cv2

    base = cv2.GaussianBlur(base, (0, 0), 1.5)
    out = []
    for k in range(n):
        m = np.float32([[1, 0, -10 - 1.5 * k], [0, 1, -8]])
        out.append(np.clip(cv2.warpAffine(base, m, SIZE), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_student()
    meta = build_metadata(model, n_points=16, grid=4, grid_margin=0.1, input_size=SIZE, fps=10.0,
                          model_version="tiny-test")
    path = export_tracker(model, meta, tmp_path_factory.mktemp("trk") / TRACKER_NAME)
    return model, meta, path


def test_export_embeds_metadata_and_pins_the_opset(exported):
    _, meta, path = exported
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    embedded = json.loads(props[TRACKER_METADATA_KEY])
    assert embedded["n_points"] == 16 and embedded["input_size"] == [96, 72]
    assert embedded["model_version"] == "tiny-test" and embedded["flops_per_frame"] > 0
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) == OPSET >= 16


def test_exported_graph_has_fixed_shapes(exported):
    _, _, path = exported
    proto = onnx.load(str(path))
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert all(d.dim_value > 0 for d in dims), value.name


def test_onnx_runtime_matches_torch_within_a_twentieth_of_a_pixel(exported, tmp_path):
    model, _, path = exported
    report = verify_tracker(model, path, _frames(), fp16_path=tmp_path / "tracker.fp16.onnx")
    assert report["fp32"]["steps"] == 4
    assert report["fp32"]["point_max_error_px"] < FP32_MAX_POINT_ERROR_PX
    assert report["passed"]
    assert (tmp_path / "tracker.fp16.onnx").is_file()
    assert np.isfinite(report["fp16"]["point_max_error_px"])


def test_adding_a_tracker_bumps_the_bundle_and_keeps_the_tokenizer_bytes(tmp_path):
    if not (DEFAULT_DIR / "manifest.json").is_file():
        pytest.skip("no default model directory in this checkout")
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_DIR, bundle)
    if (bundle / TRACKER_NAME).exists():
        (bundle / TRACKER_NAME).unlink()
        manifest = json.loads((bundle / "manifest.json").read_text())
        manifest["files"].pop(TRACKER_NAME, None)
        manifest.pop("tracker", None)
        (bundle / "manifest.json").write_text(json.dumps(manifest))
    before = load_model_directory(bundle)
    tokenizer_sha = sha256_file(bundle / "tokenizer.onnx")
    version = int(before.manifest["version"])
    add_tracker_to_model_directory(tiny_student(), bundle, model_version="tiny", bundle_version=version + 1)
    after = load_model_directory(bundle)
    assert int(after.manifest["version"]) == version + 1
    assert TRACKER_NAME in after.manifest["files"] and after.manifest["tracker"]["model_version"] == "tiny"
    assert sha256_file(bundle / "tokenizer.onnx") == tokenizer_sha
    assert after.metadata == before.metadata
    trk = OnnxStudentTracker(bundle, providers="cpu")
    assert trk.n_points == before.metadata.n_points


def test_bundle_version_must_increase(tmp_path):
    if not (DEFAULT_DIR / "manifest.json").is_file():
        pytest.skip("no default model directory in this checkout")
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_DIR, bundle)
    version = int(load_model_directory(bundle).manifest["version"])
    with pytest.raises(ConfigError, match="monotonic"):
        add_tracker_to_model_directory(tiny_student(), bundle, model_version="tiny", bundle_version=version)
