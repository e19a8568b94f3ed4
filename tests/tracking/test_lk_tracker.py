"""LucasKanadeTracker: exact sub-pixel motion, re-seeding, the forward-backward check, the contract."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError
from edge.tracking.base import PointTracker, TrackStep, grid_points
from edge.tracking.lk import LucasKanadeTracker

W, H = 320, 240


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random texture in [0, 255], float64 (band-limited, so Fourier shifts are exact)."""
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 2.0).astype(np.float64)
    return (t - t.min()) / (t.max() - t.min()) * 255.0


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """`image` moved by (dx, dy) pixels (content at x goes to x + dx), as uint8."""
    h, w = image.shape
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    moved = np.real(np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fx * dx + fy * dy))))
    return np.clip(np.round(moved), 0, 255).astype(np.uint8)


def as_bgr(grey: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


@pytest.fixture(scope="module")
def base() -> np.ndarray:
    return texture(H, W)


def test_meets_the_point_tracker_contract():
    tracker = LucasKanadeTracker(grid=20)
    assert isinstance(tracker, PointTracker)
    assert tracker.n_points == 400


def test_first_frame_seeds_the_grid_with_zero_velocity(base):
    tracker = LucasKanadeTracker()
    step = tracker.step(as_bgr(shifted(base, 0, 0)))
    np.testing.assert_array_equal(step.points, grid_points(W, H, 20, 1 / 20))
    assert not step.velocity.any()
    assert step.visible.all()
    assert np.isnan(tracker.last_fb_error).all()


def test_outputs_have_the_contract_shapes_and_dtypes(base):
    tracker = LucasKanadeTracker(grid=7)
    tracker.step(as_bgr(shifted(base, 0, 0)))
    step = tracker.step(as_bgr(shifted(base, 1.0, 0.5)))
    assert isinstance(step, TrackStep)
    assert step.points.shape == (49, 2) and step.points.dtype == np.float32
    assert step.visible.shape == (49,) and step.visible.dtype == np.bool_
    assert step.velocity.shape == (49, 2) and step.velocity.dtype == np.float32
    assert tracker.last_fb_error.shape == (49,) and tracker.last_fb_error.dtype == np.float32


@pytest.mark.parametrize("dx, dy", [(0.3, -0.45), (2.7, 1.2), (-4.25, 3.5)])
def test_subpixel_translation_is_measured_within_a_tenth_of_a_pixel(base, dx, dy):
    tracker = LucasKanadeTracker()
    tracker.step(as_bgr(shifted(base, 0, 0)))
    step = tracker.step(as_bgr(shifted(base, dx, dy)))
    assert step.visible.mean() >= 0.95
    error = np.abs(step.velocity[step.visible] - np.float32([dx, dy]))
    assert error.max() < 0.1
    np.testing.assert_allclose(step.points[step.visible] - step.velocity[step.visible],
                               grid_points(W, H)[step.visible], atol=1e-4)


def test_velocity_accumulates_over_frames_as_positions_move(base):
    tracker = LucasKanadeTracker(grid=10)
    tracker.step(shifted(base, 0, 0))
    for k in range(1, 4):
        step = tracker.step(shifted(base, 1.5 * k, -0.5 * k))
    seeds = grid_points(W, H, 10)
    ok = step.visible
    np.testing.assert_allclose(step.points[ok] - seeds[ok], [[4.5, -1.5]] * ok.sum(), atol=0.15)


def test_point_carried_out_of_the_frame_is_reseeded_on_its_grid_position():
    wide = texture(H, W + 200, seed=1)
    tracker = LucasKanadeTracker(grid=10)
    seeds = grid_points(W, H, 10)
    speed = 6  # content moves left 6 px per frame: the left column (x ~ 16) is out by frame 3
    steps = [tracker.step(wide[:, speed * k: speed * k + W].round().astype(np.uint8)) for k in range(6)]
    left = np.flatnonzero(np.isclose(seeds[:, 0], seeds[:, 0].min()))
    tracked_again = []
    for i in left:
        lost_at = next(k for k in range(1, 6) if not steps[k].visible[i])
        assert lost_at <= 3, f"point {i} was still reported at x={steps[3].points[i, 0]:.1f}"
        np.testing.assert_array_equal(steps[lost_at].points[i], seeds[i])
        assert not steps[lost_at].velocity[i].any()
        after = steps[lost_at + 1]
        tracked_again.append(after.visible[i] and abs(after.velocity[i, 0] + speed) < 0.1)
    assert np.mean(tracked_again) >= 0.8
    centre = np.abs(seeds[:, 0] - W / 2) < 40
    assert all(s.visible[centre].all() for s in steps)


def test_occluding_patch_fails_the_forward_backward_check(base):
    tracker = LucasKanadeTracker(grid=20)
    first = shifted(base, 0, 0)
    tracker.step(first)
    occluded = shifted(base, 0.5, 0.0)
    x0, y0, x1, y1 = 100, 60, 200, 160
    occluded[y0:y1, x0:x1] = shifted(texture(H, W, seed=9), 0, 0)[y0:y1, x0:x1]
    step = tracker.step(occluded)
    seeds = grid_points(W, H)
    deep_inside = (seeds[:, 0] > x0 + 10) & (seeds[:, 0] < x1 - 10) & (seeds[:, 1] > y0 + 10) & (seeds[:, 1] < y1 - 10)
    far_away = (seeds[:, 0] < x0 - 20) | (seeds[:, 0] > x1 + 20) | (seeds[:, 1] < y0 - 20) | (seeds[:, 1] > y1 + 20)
    assert deep_inside.sum() >= 10
    assert not step.visible[deep_inside].any()
    assert (tracker.last_fb_error[deep_inside] > tracker.fb_threshold_px).all()
    assert not step.velocity[deep_inside].any()
    np.testing.assert_array_equal(step.points[deep_inside], seeds[deep_inside])
    assert step.visible[far_away].mean() > 0.97
    assert np.nanmedian(tracker.last_fb_error[far_away]) < 0.05


def test_reset_reseeds_on_the_next_frame(base):
    tracker = LucasKanadeTracker(grid=5)
    tracker.step(shifted(base, 0, 0))
    tracker.step(shifted(base, 2, 0))
    tracker.reset()
    step = tracker.step(shifted(base, 4, 0))
    np.testing.assert_array_equal(step.points, grid_points(W, H, 5))
    assert not step.velocity.any()


def test_a_new_frame_size_reseeds_instead_of_failing(base):
    tracker = LucasKanadeTracker(grid=5)
    tracker.step(shifted(base, 0, 0))
    step = tracker.step(shifted(base, 0, 0)[:120, :160].copy())
    np.testing.assert_array_equal(step.points, grid_points(160, 120, 5))
    assert not step.velocity.any()


def test_grey_and_bgr_inputs_track_alike(base):
    frames = [shifted(base, 0.7 * k, 0.2 * k) for k in range(3)]
    grey, bgr = LucasKanadeTracker(grid=8), LucasKanadeTracker(grid=8)
    for f in frames:
        a, b = grey.step(f), bgr.step(as_bgr(f))
    np.testing.assert_allclose(a.points, b.points, atol=1e-4)
    np.testing.assert_array_equal(a.visible, b.visible)


def test_mutating_the_callers_buffer_does_not_change_the_previous_frame(base):
    tracker = LucasKanadeTracker(grid=8)
    buffer = shifted(base, 0, 0)
    tracker.step(buffer)
    buffer[:] = shifted(base, 1.0, 0)  # a capture loop reusing its frame buffer
    step = tracker.step(buffer)
    np.testing.assert_allclose(step.velocity[step.visible][:, 0], 1.0, atol=0.1)


def test_static_scene_gives_zero_motion_everywhere(base):
    tracker = LucasKanadeTracker()
    frame = shifted(base, 0, 0)
    tracker.step(frame)
    step = tracker.step(frame)
    assert step.visible.all()
    assert np.abs(step.velocity).max() < 1e-3


@pytest.mark.parametrize("option, value", [("grid", 0), ("win_size", 14), ("max_level", -1),
                                           ("fb_threshold_px", 0.0), ("margin", 0.5)])
def test_invalid_options_are_config_errors_naming_the_option(option, value):
    with pytest.raises(ConfigError, match=f"LK tracker option {option}={value!r} is not allowed"):
        LucasKanadeTracker(**{option: value})


def test_non_uint8_images_are_rejected():
    with pytest.raises(ValueError, match="uint8"):
        LucasKanadeTracker().step(np.zeros((H, W), np.float32))
