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
from edge.tracking.onnx_student import RESIDUAL_OUTPUT
from export.tracker.onnx import (
    DEFAULT_RESIDUAL_THRESHOLD,
    DEFAULT_VISIBILITY_THRESHOLD,
    OPSET,
    add_tracker_to_model_directory,
    build_metadata,
    export_tracker,
)
from export.tracker.verify import FP32_MAX_POINT_ERROR_PX, verify_tracker

from .conftest import tiny_student

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "edge" / "shipped_models" / "default"
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
    assert report["fp32"]["match_residual_max_diff"] < 1e-3


def test_the_keep_rule_ships_in_the_metadata_and_the_residual_is_an_output(exported):
    _, meta, path = exported
    assert (meta.visibility_threshold, meta.residual_threshold) == (DEFAULT_VISIBILITY_THRESHOLD,
                                                                    DEFAULT_RESIDUAL_THRESHOLD)
    assert RESIDUAL_OUTPUT in [o.name for o in onnx.load(str(path)).graph.output]
    trk = OnnxStudentTracker(path, providers="cpu")
    assert (trk.visibility_threshold, trk.residual_threshold) == (DEFAULT_VISIBILITY_THRESHOLD,
                                                                  DEFAULT_RESIDUAL_THRESHOLD)
    frames = _frames(3)
    trk.step(frames[0])
    assert np.isnan(trk.last_match_residual).all()  # a seeding step matches nothing
    trk.step(frames[1])
    assert np.isfinite(trk.last_match_residual).all() and (trk.last_match_residual >= 0).all()


def test_points_whose_match_residual_reaches_the_threshold_are_dropped(exported):
    _, _, path = exported
    frames = _frames(3)
    # Visibility logit cut far below anything: only the residual and the frame decide.
    open_trk = OnnxStudentTracker(path, providers="cpu", visibility_threshold=-1e9, residual_threshold=0.0)
    open_trk.step(frames[0])
    free = open_trk.step(frames[1])
    residual = open_trk.last_match_residual.copy()
    cut = float(np.median(residual))
    strict = OnnxStudentTracker(path, providers="cpu", visibility_threshold=-1e9, residual_threshold=cut)
    strict.step(frames[0])
    step = strict.step(frames[1])
    np.testing.assert_array_equal(step.visible, free.visible & (residual < cut))
    assert 0 < step.visible.sum() < free.visible.sum()
    np.testing.assert_array_equal(strict.last_reseeded, ~step.visible)


def test_points_that_moved_are_judged_by_the_moving_residual_cut(exported):
    _, meta, path = exported
    assert meta.moving_residual_threshold == 0.0 and meta.moving_px > 0  # off unless asked for
    frames = _frames(3)
    open_trk = OnnxStudentTracker(path, providers="cpu", visibility_threshold=-1e9, residual_threshold=0.0)
    open_trk.step(frames[0])
    free = open_trk.step(frames[1])
    residual = open_trk.last_match_residual.copy()
    motion = np.linalg.norm(free.velocity, axis=1)
    # The untrained student moves points anywhere: split them at their median motion instead of the
    # metadata's px, so both kinds are present.
    split = float(np.median(motion[free.visible]))
    moved = motion > split
    assert moved.any() and (~moved & free.visible).any()
    loose, tight = float(residual.max()) + 1.0, float(np.median(residual[moved]))
    trk = OnnxStudentTracker(path, providers="cpu", visibility_threshold=-1e9, residual_threshold=loose,
                             moving_residual_threshold=tight)
    trk.moving_px = split
    trk.step(frames[0])
    step = trk.step(frames[1])
    np.testing.assert_array_equal(step.visible, free.visible & np.where(moved, residual < tight, True))
    assert step.visible[~moved & free.visible].all() and not step.visible[moved].all()


def test_a_residual_threshold_needs_a_graph_with_a_residual(tmp_path):
    model = tiny_student()
    model.cfg.subpixel_iterations = 0
    meta = build_metadata(model, n_points=16, grid=4, grid_margin=0.1, input_size=SIZE, fps=10.0, model_version="x")
    assert meta.residual_threshold == 0.0  # nothing to cut on without the sub-pixel stage
    path = export_tracker(model, meta, tmp_path / TRACKER_NAME)
    trk = OnnxStudentTracker(path, providers="cpu")
    trk.step(_frames(2)[0])
    trk.step(_frames(2)[1])
    assert np.isnan(trk.last_match_residual).all()
    with pytest.raises(ConfigError, match="has no 'match_residual' output"):
        OnnxStudentTracker(path, providers="cpu", residual_threshold=0.5)
    with pytest.raises(ConfigError, match="residual_threshold -1 is not a number >= 0"):
        OnnxStudentTracker(path, providers="cpu", residual_threshold=-1.0)
    with pytest.raises(ConfigError, match="moving_residual_threshold 0.5 cannot apply"):
        OnnxStudentTracker(path, providers="cpu", moving_residual_threshold=0.5)


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
