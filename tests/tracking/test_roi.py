"""Regions of interest: polygons parse or fail in one line; both tracker backends leave the grid
points outside the region untracked (invisible, still, at their grid position) and keep N and the
grid order; the pipeline refuses a region that holds no grid point."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError
from edge.pipeline import build_pipeline
from edge.tracking.base import grid_points
from edge.tracking.lk import LucasKanadeTracker
from edge.tracking.onnx_student import OnnxStudentTracker
from edge.tracking.roi import RegionOfInterest

REPO = Path(__file__).resolve().parents[2]
W, H = 320, 240
#: the lower half of the frame
LOWER_HALF = "0,0.5 1,0.5 1,1 0,1"


def texture(shift_x: float = 0.0, seed: int = 0) -> np.ndarray:
    """A smooth random texture (H, W, 3) uint8 moved right by `shift_x` pixels (whole frame)."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((H, W + 20)).astype(np.float32), (0, 0), 2.0)
    t = (t - t.min()) / (t.max() - t.min()) * 255.0
    m = np.float32([[1, 0, shift_x], [0, 1, 0]])
    moved = cv2.warpAffine(t, m, (W + 20, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return cv2.cvtColor(np.clip(moved[:, 10:10 + W], 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def one_line_error(text) -> str:
    with pytest.raises(ConfigError) as info:
        RegionOfInterest.parse(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_text_form_round_trips_several_polygons():
    roi = RegionOfInterest.parse("0,0 0.5,0 0.5,0.5; 0.5,0.5 1,0.5 1,1 0.5,1")
    assert len(roi.polygons) == 2
    assert roi.polygons[1] == ((0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.5, 1.0))
    assert RegionOfInterest.parse(roi.to_texts()) == roi


@pytest.mark.parametrize("text, words", [
    ("0,0 1,0", "has 2 vertices"),
    ("0,0 a,b 1,1", "'a,b' is not \"x,y\""),
    ("0,0 320,0 320,240", "outside the image"),
    ("0,0 0.5,0.5 1,1", "no area"),
    ("0,0 1,0 nan,1", "outside the image"),
])
def test_a_bad_polygon_is_a_one_line_error_with_the_fix(text, words):
    message = one_line_error(text)
    assert words in message and "normalised image coordinates" in message and "e.g." in message


def test_mask_is_the_same_for_the_same_normalised_grid_at_any_resolution():
    roi = RegionOfInterest.parse("0.2,0.2 0.8,0.2 0.5,0.9")
    small = roi.mask(grid_points(320, 240, 20), 320, 240)
    large = roi.mask(grid_points(1280, 960, 20), 1280, 960)
    assert np.array_equal(small, large) and 0 < small.sum() < 400


def test_mask_counts_points_on_the_edge_as_inside():
    roi = RegionOfInterest.parse("0,0 1,0 1,1 0,1")
    assert roi.mask(grid_points(W, H, 20, margin=0.0), W, H).all()


def assert_outside_untracked(step, seeds, outside):
    assert step.points.shape == (400, 2) and step.visible.shape == (400,)
    assert not step.visible[outside].any()
    assert np.all(step.velocity[outside] == 0.0)
    assert np.array_equal(step.points[outside], seeds[outside])


def test_lk_leaves_points_outside_the_region_untracked_and_tracks_the_inside():
    roi = RegionOfInterest.parse(LOWER_HALF)
    seeds = grid_points(W, H, 20)
    outside = ~roi.mask(seeds, W, H)
    assert 150 <= outside.sum() <= 250
    trk = LucasKanadeTracker(roi=roi)
    first = trk.step(texture(0.0))
    assert np.array_equal(first.visible, ~outside)  # seeding: only the inside counts as placed
    for k in range(1, 4):
        step = trk.step(texture(1.5 * k))
        assert_outside_untracked(step, seeds, outside)
        # never measured (NaN), not "measured and failed" (+inf): LK was not run on them
        assert np.all(np.isnan(trk.last_fb_error[outside]))
        assert not trk.last_reseeded[outside].any()
        inside_visible = step.visible & ~outside
        assert inside_visible.sum() > 0.8 * (~outside).sum()
        assert np.allclose(step.velocity[inside_visible, 0], 1.5, atol=0.2)


def test_lk_without_a_region_is_unchanged_by_the_feature():
    frames = [texture(1.5 * k) for k in range(4)]
    plain, full = LucasKanadeTracker(), LucasKanadeTracker(roi=RegionOfInterest.parse("0,0 1,0 1,1 0,1"))
    for frame in frames:
        a, b = plain.step(frame), full.step(frame)
        assert np.array_equal(a.points, b.points) and np.array_equal(a.visible, b.visible)
        assert np.array_equal(a.velocity, b.velocity)


def test_onnx_student_reports_points_outside_the_region_invisible_and_still():
    roi = RegionOfInterest.parse(LOWER_HALF)
    trk = OnnxStudentTracker(REPO / "edge" / "shipped_models" / "default", providers="cpu", roi=roi)
    w, h = trk.input_size
    seeds = grid_points(w, h, trk.grid, trk.margin)
    outside = ~roi.mask(seeds, w, h)
    assert 0 < outside.sum() < trk.n_points
    first = trk.step(cv2.resize(texture(0.0), (w, h)))
    assert np.array_equal(first.visible, ~outside)
    for k in range(1, 4):
        step = trk.step(cv2.resize(texture(1.5 * k), (w, h)))
        assert_outside_untracked(step, seeds, outside)
        assert step.visible[~outside].sum() > 0  # the inside is still tracked


def test_pipeline_passes_the_region_to_its_tracker_and_keeps_n_points():
    roi = RegionOfInterest.parse(LOWER_HALF)
    pipe = build_pipeline(model_dir=None, tracker="lk", roi=roi, keep_keyframes=False)
    assert pipe.tracker.roi == roi and pipe.tracker.n_points == 400


def test_pipeline_refuses_a_region_that_holds_no_grid_point():
    tiny = RegionOfInterest.parse("0.001,0.001 0.01,0.001 0.01,0.01")
    with pytest.raises(ConfigError, match="holds none of the 20x20 grid points; draw it larger"):
        build_pipeline(model_dir=None, tracker="lk", roi=tiny, keep_keyframes=False)
