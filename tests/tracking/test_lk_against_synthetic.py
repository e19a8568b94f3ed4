"""LucasKanadeTracker scored against the synthetic workstation's exact trajectories.

Seed 500 is from the VALIDATION range (seeds.md): this checks the tracker, it tunes nothing.
Per step, the exact motion of the very points LK started from is asked of the workstation
(`trajectories(points, frame_prev, [frame_prev, frame_now])`) and compared with LK's velocity.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edge.sources.factory import open_source
from edge.tracking.lk import LucasKanadeTracker

pytestmark = pytest.mark.skipif(importlib.util.find_spec("edge.sources.synthetic") is None,
                                reason="edge.sources.synthetic is not available")


@pytest.fixture(scope="module")
def scored_steps():
    """(LK velocity error px, exact speed px, LK visible) per point where the exact point is visible."""
    src = open_source("synthetic://assembly?seed=500&minutes=0.1&size=320x240&fps=30", fps=10)
    workstation = src.source.workstation
    tracker = LucasKanadeTracker(grid=20)
    errors, speeds, visible = [], [], []
    previous = None
    with src:
        for frame in src:
            start = None if previous is None else previous[0].points
            step = tracker.step(frame.image)
            if previous is not None:
                frames = np.array([previous[1], frame.source_index])
                pos, vis = workstation.trajectories(start, previous[1], frames)
                exact = pos[1] - pos[0]
                seen = vis[0] & vis[1]
                errors.append(np.linalg.norm(step.velocity - exact, axis=1)[seen])
                speeds.append(np.linalg.norm(exact, axis=1)[seen])
                visible.append(step.visible[seen])
            previous = (step, frame.source_index)
    return np.concatenate(errors), np.concatenate(speeds), np.concatenate(visible)


def test_visible_velocities_match_the_exact_motion(scored_steps):
    error, _, visible = scored_steps
    assert np.median(error[visible]) < 0.25


def test_moving_points_are_tracked_within_half_a_pixel(scored_steps):
    error, speed, visible = scored_steps
    moving = visible & (speed > 1.0)
    assert moving.sum() > 200  # hands and parts do move in these six seconds
    assert np.median(error[moving]) < 0.5


def test_points_the_scene_shows_are_mostly_reported_visible(scored_steps):
    _, _, visible = scored_steps
    assert visible.mean() > 0.9
