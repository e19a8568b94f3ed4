"""The ONNX student backend meets the tracking contract LK meets (edge.tracking.base).

Runs the shipped default student (edge/shipped_models/default/tracker.onnx) on ONNX Runtime CPU; no
torch anywhere (the device has none).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError, ModelError
from edge.tracking import TRACKER_BACKENDS
from edge.tracking.base import grid_points
from edge.tracking.onnx_student import TRACKER_NAME, OnnxStudentTracker

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DIR = REPO / "edge" / "shipped_models" / "default"
W, H = 320, 240


@pytest.fixture(scope="module")
def tracker() -> OnnxStudentTracker:
    return OnnxStudentTracker(DEFAULT_DIR, providers="cpu", intra_op_threads=1)


def textured(shift_x: float = 0.0, shift_y: float = 0.0, seed: int = 0) -> np.ndarray:
    """A smooth random texture (BGR 320x240) translated by (shift_x, shift_y) px."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur((rng.random((H + 40, W + 40)) * 255).astype(np.float32), (0, 0), 2.0)
    base = cv2.normalize(base, None, 0, 255, cv2.NORM_MINMAX)
    m = np.float32([[1, 0, -20 + shift_x], [0, 1, -20 + shift_y]])
    grey = cv2.warpAffine(base, m, (W, H), flags=cv2.INTER_LINEAR).astype(np.uint8)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def test_onnx_is_a_selectable_backend():
    assert "onnx" in TRACKER_BACKENDS and "lk" in TRACKER_BACKENDS


def test_first_step_seeds_the_grid_visible_and_still(tracker):
    tracker.reset()
    step = tracker.step(textured())
    assert step.points.shape == (400, 2) and step.points.dtype == np.float32
    assert step.visible.shape == (400,) and step.visible.dtype == bool and step.visible.all()
    np.testing.assert_array_equal(step.points, grid_points(W, H, 20))
    assert not step.velocity.any()


def test_steps_return_the_contract_shapes_and_types(tracker):
    tracker.reset()
    tracker.step(textured())
    step = tracker.step(textured(1.0))
    assert step.points.shape == (400, 2) and step.velocity.shape == (400, 2)
    assert step.points.dtype == np.float32 and step.velocity.dtype == np.float32
    assert step.visible.dtype == bool


def test_a_translation_is_measured_as_the_velocity(tracker):
    tracker.reset()
    tracker.step(textured())
    step = tracker.step(textured(3.0, -2.0))
    inner = (step.points[:, 0] > 20) & (step.points[:, 0] < W - 20) & step.visible
    assert inner.mean() > 0.5
    v = np.median(step.velocity[inner], axis=0)
    np.testing.assert_allclose(v, [3.0, -2.0], atol=0.3)


def test_lost_points_are_reseeded_on_the_grid_with_zero_velocity(tracker):
    tracker.reset()
    tracker.step(textured(seed=1))
    # A different scene altogether: nothing can be followed reliably.
    step = tracker.step(textured(seed=2))
    lost = ~step.visible
    assert lost.mean() > 0.5
    np.testing.assert_array_equal(step.points[lost], grid_points(W, H, 20)[lost])
    assert not step.velocity[lost].any()
    np.testing.assert_array_equal(tracker.last_reseeded, lost)
    # re-seeded points are tracked again from the next frame
    nxt = tracker.step(textured(1.0, seed=2))
    assert nxt.visible[lost].mean() > 0.5


def test_reset_makes_the_next_step_seed_again(tracker):
    tracker.reset()
    tracker.step(textured())
    tracker.step(textured(2.0))
    tracker.reset()
    step = tracker.step(textured(5.0))
    assert step.visible.all() and not step.velocity.any()
    np.testing.assert_array_equal(step.points, grid_points(W, H, 20))


def test_grey_and_bgr_frames_give_the_same_tracks(tracker):
    a, b = textured(), textured(1.5)
    tracker.reset()
    tracker.step(a)
    colour = tracker.step(b)
    tracker.reset()
    tracker.step(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY))
    grey = tracker.step(cv2.cvtColor(b, cv2.COLOR_BGR2GRAY))
    np.testing.assert_array_equal(colour.points, grey.points)


def test_a_frame_of_another_size_is_refused_with_the_fix(tracker):
    tracker.reset()
    with pytest.raises(ValueError, match="resize frames"):
        tracker.step(np.zeros((480, 640, 3), np.uint8))


def test_a_grid_the_model_was_not_exported_for_is_a_config_error():
    with pytest.raises(ConfigError, match="10x10"):
        OnnxStudentTracker(DEFAULT_DIR, grid=10, providers="cpu")


def test_a_model_directory_without_a_tracker_names_the_fix(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_DIR, bundle)
    (bundle / TRACKER_NAME).unlink()
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"].pop(TRACKER_NAME)
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="--tracker lk"):
        OnnxStudentTracker(bundle, providers="cpu")


def test_a_tampered_tracker_file_is_refused(tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_DIR, bundle)
    with open(bundle / TRACKER_NAME, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelError, match="sha256"):
        OnnxStudentTracker(bundle, providers="cpu")


def test_the_pipeline_runs_end_to_end_with_the_student_and_never_imports_torch():
    code = (
        "import sys, numpy as np\n"
        "from edge.pipeline import build_pipeline\n"
        "from edge.sources.base import Frame\n"
        f"pipe = build_pipeline(model_dir={str(DEFAULT_DIR)!r}, tracker='onnx', providers='cpu',\n"
        "                      keep_keyframes=False)\n"
        "from edge.tracking.onnx_student import OnnxStudentTracker\n"
        "assert isinstance(pipe.tracker, OnnxStudentTracker)\n"
        "from edge.sources.factory import open_source\n"
        "from edge.loop import run_stream\n"
        "from edge.energy_trace import EnergyTraceRecorder\n"
        "trace = EnergyTraceRecorder(fps=pipe.fps, model_version=pipe.model_version)\n"
        "segs = run_stream(open_source('synthetic://assembly?seed=7&minutes=0.25&size=320x240', fps=10), pipe, [trace])\n"
        "assert len(trace) == 150, len(trace)\n"
        "assert 'torch' not in sys.modules\n"
        "print(len(segs))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout.strip().splitlines()[-1]) >= 0


def test_an_unknown_tracker_name_lists_onnx_among_the_choices():
    from edge.pipeline import build_pipeline

    with pytest.raises(ConfigError, match="lk, onnx"):
        build_pipeline(tracker="cotracker")
