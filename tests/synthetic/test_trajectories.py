"""Exact trajectories: points follow their layer, the bench stays put, occlusion hides points."""

from __future__ import annotations

import cv2
import numpy as np

from edge.synthetic import affine
from edge.synthetic.sprites import HAND
from edge.tracking.base import grid_points


def _patch(frame: np.ndarray, xy) -> np.ndarray:
    return cv2.getRectSubPix(frame.astype(np.float32), (9, 9), (float(xy[0]), float(xy[1])))


def _segment(ws, kind: str, nth: int = 0) -> tuple[int, int]:
    spans = [(s, e) for s, e, lab in ws.ground_truth.segment_frames() if lab == kind]
    return spans[nth]


def _palm_point(ws, hand: int, frame: int) -> np.ndarray:
    """Image position of the middle of the back of the hand at `frame` (nuisances off: no shake)."""
    m = ws.script.hands[hand].matrices(np.array([frame]))[0]
    return affine.apply(m, np.array([[0.5 * (HAND.palm_back + HAND.palm_front) * ws.layout.unit, 0.0]]))[0]


def test_points_on_a_moving_hand_keep_their_appearance(clean_ws):
    ws = clean_ws
    start, end = _segment(ws, "reach")
    f0 = start + 2
    seeds = _palm_point(ws, 1 if ws.ground_truth.hands[0] == "right" else 0, f0)[None]
    seeds = seeds + np.array([[0, 0], [8, 4], [-6, 7]], np.float64)
    frames = np.arange(f0, f0 + 5)
    pos, vis = ws.trajectories(seeds, f0, frames)
    assert vis.all()
    assert np.linalg.norm(pos[-1] - pos[0], axis=1).min() > 5  # the hand did move
    ref = ws.render(f0)
    for t in range(1, 5):
        img = ws.render(frames[t])
        for n in range(len(seeds)):
            err = np.abs(_patch(ref, pos[0, n]) - _patch(img, pos[t, n])).mean()
            stale = np.abs(_patch(ref, pos[0, n]) - _patch(img, pos[0, n])).mean()
            assert err < 6.0 and err < 0.4 * stale, (t, n, err, stale)


def test_a_grasped_part_moves_with_the_hand_during_transport(clean_ws):
    ws = clean_ws
    start, end = _segment(ws, "transport")
    frames = np.array([start, end - 1])
    held = [o for o in ws.script.objects if o.kind == "part" and o.matrices(frames[:1], ws.script.hands)[1][0]]
    assert len(held) == 1
    part = held[0]
    hand = part.hands[int(np.searchsorted(part.starts, start, "right")) - 1]
    # A point on the part just beyond the closed fingertips (its centre lies under them).
    m_hand = ws.script.hands[hand].matrices(frames[:1])[0]
    seed = affine.apply(m_hand, np.array([[(HAND.grip_x + 18) * ws.layout.unit, 0.0]]))
    pos, vis = ws.trajectories(seed, start, frames)
    assert vis.all()
    assert np.linalg.norm(pos[1, 0] - pos[0, 0]) > 20
    m0, m1 = part.matrices(frames, ws.script.hands)[0]
    expected = affine.apply(m1 @ affine.invert(m0), seed)[0]
    assert np.allclose(pos[1, 0], expected, atol=1e-3)


def test_bench_points_stay_fixed_without_shake(clean_ws):
    ws = clean_ws
    pts = grid_points(*ws.size, grid=10)
    pos, vis = ws.trajectories(pts, 0, np.arange(0, ws.n_frames, 97))
    still = np.all(np.linalg.norm(pos - pos[0], axis=2) < 1e-4, axis=0)
    assert still.sum() >= 0.8 * len(pts)  # all but points on hands, arms and the distractor


def test_shake_moves_bench_points_by_the_shake(make_ws):
    ws = make_ws(seed=7, minutes=0.5, nuisances="shake")
    pts = np.array([[30.0, 300.0], [600.0, 460.0]])
    frames = np.arange(0, 200, 7)
    pos, _ = ws.trajectories(pts, 0, frames)
    shake = ws.effects.shake
    assert np.abs(shake[frames]).max() > 0.2
    expected = pts[None] - shake[0] + shake[frames][:, None, :]
    assert np.allclose(pos, expected, atol=1e-4)


def test_bench_points_under_a_hand_are_invisible_there(clean_ws):
    ws = clean_ws
    start, end = _segment(ws, "grasp")
    t1 = (start + end) // 2
    k = [s[:2] for s in ws.ground_truth.segment_frames()].index((start, end))
    hand = 1 if ws.ground_truth.hands[k] == "right" else 0
    spot = _palm_point(ws, hand, t1)[None]
    pos, vis = ws.trajectories(spot, 0, np.array([0, t1]))
    assert vis[0, 0] and not vis[1, 0]
    assert np.allclose(pos[0], pos[1])  # an occluded bench point does not move
    # and the pixels there really changed (the hand covers it)
    assert np.abs(_patch(ws.render(0), spot[0]) - _patch(ws.render(t1), spot[0])).mean() > 10


def test_points_leaving_the_frame_are_invisible(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=(320, 240), nuisances="distractor", distractor="conveyor")
    belt_y = 3.0
    x = np.array([[300.0, belt_y]])
    offs = ws.distractor.belt_offset
    last = int(np.searchsorted(offs, offs[0] + 60.0))  # the belt has carried it 60 px further
    pos, vis = ws.trajectories(x, 0, np.array([0, last]))
    assert vis[0, 0] and pos[1, 0, 0] > 319.5 and not vis[1, 0]


def test_grid_tracks_reseed_every_window(make_ws):
    ws = make_ws(seed=5, minutes=0.05, size=(320, 240))
    positions, visible, seeds = ws.grid_tracks(grid=5, window=16)
    assert positions.shape == (ws.n_frames, 25, 2) and visible.shape == (ws.n_frames, 25)
    assert list(seeds) == list(range(0, ws.n_frames, 16))
    lattice = grid_points(320, 240, 5)
    for f in seeds:
        assert np.allclose(positions[f], lattice, atol=1e-4)


def test_points_on_the_conveyor_ride_with_the_belt(make_ws):
    ws = make_ws(seed=5, minutes=0.5, size=(320, 240), nuisances="distractor", distractor="conveyor")
    offs = ws.distractor.belt_offset
    f0 = int(np.argmax(np.diff(offs) > 0.5))  # the belt is running here
    f1 = int(np.searchsorted(offs, offs[f0] + 25.0))
    seeds = np.array([[60.0, 5.0], [150.0, 12.0], [230.0, 8.0]])
    pos, vis = ws.trajectories(seeds, f0, np.array([f0, f1]))
    assert vis.all() and np.allclose(pos[1] - pos[0], [[offs[f1] - offs[f0], 0.0]] * 3, atol=1e-4)
    a, b = ws.render(f0), ws.render(f1)
    for n in range(3):
        err = np.abs(_patch(a, pos[0, n]) - _patch(b, pos[1, n])).mean()
        stale = np.abs(_patch(a, pos[0, n]) - _patch(b, pos[0, n])).mean()
        assert err < 6.0 and err < 0.4 * stale, (n, err, stale)
