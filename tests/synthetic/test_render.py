"""Rendering: determinism, nuisance switches, and stillness during rests."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError
from edge.synthetic import NUISANCE_NAMES, SyntheticWorkstation

SMALL = (320, 240)


def _rest_run(labels: np.ndarray, min_len: int, skip: int = 0) -> tuple[int, int]:
    """(start, end) of the first run of label 0 at least `min_len` long, after frame `skip`."""
    start = None
    for i in range(skip, len(labels)):
        if labels[i] == 0 and start is None:
            start = i
        elif labels[i] != 0 and start is not None:
            if i - start >= min_len:
                return start, i
            start = None
    raise AssertionError("no rest run long enough")


def _moving_frame(ws: SyntheticWorkstation, kind: str = "reach") -> int:
    start, end, _ = next(s for s in ws.ground_truth.segment_frames() if s[2] == kind)
    return (start + end) // 2


def test_frames_are_bgr_uint8_of_the_requested_size(make_ws):
    ws = make_ws(seed=3, minutes=0.5, size=SMALL, nuisances="all")
    frame = ws.render(10)
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert ws.size == (320, 240)


def test_same_seed_gives_identical_frames():
    a = SyntheticWorkstation(seed=5, minutes=0.5, size=SMALL)
    b = SyntheticWorkstation(seed=5, minutes=0.5, size=SMALL)
    for i in (0, 100, 400):
        assert np.array_equal(a.render(i), b.render(i))
    assert a.ground_truth.segments == b.ground_truth.segments


def test_different_seeds_give_different_recordings(make_ws):
    a = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="all")
    b = make_ws(seed=6, minutes=0.5, size=SMALL, nuisances="all")
    assert not np.array_equal(a.render(0), b.render(0))
    assert a.ground_truth.segments != b.ground_truth.segments


def test_random_access_gives_the_same_pixels_as_rendering_in_order():
    ws = SyntheticWorkstation(seed=9, minutes=0.5, size=SMALL)
    in_order = [ws.render(i) for i in range(0, 300)]
    fresh = SyntheticWorkstation(seed=9, minutes=0.5, size=SMALL)
    for i in (299, 17, 150, 0, 151):
        assert np.array_equal(fresh.render(i), in_order[i])


def test_nuisance_switches_do_not_change_the_motion(make_ws):
    clean = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="none")
    noisy = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="all")
    assert clean.ground_truth.segments == noisy.ground_truth.segments


@pytest.mark.parametrize("name", NUISANCE_NAMES)
def test_each_nuisance_switch_changes_the_frames(make_ws, name):
    clean = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="none", distractor="conveyor")
    one = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances=name, distractor="conveyor")
    frames = [_moving_frame(clean, "reach"), _moving_frame(clean, "transport"), 200, 450]
    assert any(not np.array_equal(clean.render(i), one.render(i)) for i in frames)


def test_nothing_moves_during_a_rest_without_nuisances(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="none")
    start, end = _rest_run(ws.ground_truth.labels, 10, skip=60)
    first = ws.render(start)
    for i in range(start + 1, end):
        assert np.array_equal(ws.render(i), first), i


def test_the_scene_moves_during_a_primitive(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="none")
    i = _moving_frame(ws, "reach")
    assert np.abs(ws.render(i).astype(int) - ws.render(i + 1).astype(int)).max() > 50


def test_the_distractor_moves_during_rests(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="distractor", distractor="conveyor")
    moving = ws.distractor.belt_offset
    start, end = _rest_run(ws.ground_truth.labels, 10, skip=60)
    i = next(k for k in range(start, end - 1) if moving[k + 1] - moving[k] > 0.5)
    assert not np.array_equal(ws.render(i), ws.render(i + 1))


@pytest.mark.parametrize("kwargs", [
    {"seed": -1}, {"seed": 1.5}, {"minutes": 0}, {"fps": 0}, {"size": (641, 480)}, {"size": (10, 10)},
    {"hands": 3}, {"rest_fraction": 1.5}, {"distractor": "forklift"},
])
def test_bad_arguments_are_one_line_config_errors(kwargs):
    with pytest.raises(ConfigError) as err:
        SyntheticWorkstation(**kwargs)
    assert "\n" not in str(err.value)


def test_frame_index_outside_the_recording_is_an_index_error(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=SMALL)
    with pytest.raises(IndexError):
        ws.render(ws.n_frames)


def test_one_hand_recordings_draw_one_arm(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=SMALL, hands=1)
    assert [layer.name for layer in ws.stack.layers if layer.name.startswith("arm")] == ["arm1"]
    assert set(ws.ground_truth.hands) == {"right"}


def test_shake_translates_the_whole_image_by_the_shake_offset(make_ws):
    clean = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="none")
    shaken = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="shake")
    for i in (40, 200, 333):
        dx, dy = shaken.effects.shake_xy(i)
        expected = cv2.warpAffine(clean.render(i), np.float64([[1, 0, dx], [0, 1, dy]]), SMALL,
                                  flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        diff = np.abs(shaken.render(i).astype(int) - expected.astype(int))[8:-8, 8:-8]
        assert np.mean(diff) < 1.0 and np.percentile(diff, 99) <= 3


def test_the_scene_keeps_moving_through_direct_transitions(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="none")
    gt = ws.ground_truth
    bounds = [f[0] for f, kind in zip(gt.segment_frames(), gt.preceded_by) if kind == "direct"]
    assert bounds
    for b in bounds:
        before, at, after = ws.render(b - 1), ws.render(b), ws.render(b + 1)
        assert not np.array_equal(before, at) and not np.array_equal(at, after), b


def test_the_frame_iterator_gives_the_same_pixels_as_render(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=SMALL, nuisances="all")
    streamed = list(ws.frames(100, 130))
    assert len(streamed) == 30
    for k in (0, 7, 29):
        assert np.array_equal(streamed[k], ws.render(100 + k))
