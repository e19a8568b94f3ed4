"""Teachers: LK pseudo-labels as continuous tracks, the saved-tracks format, the seed policy."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ConfigError
from export.tracker.dataset import windows_from_clip
from export.tracker.teachers import (
    TeacherDataError,
    check_training_seed,
    lk_pseudo_labels,
    load_saved_tracks,
    saved_tracks_clip,
)

from .conftest import TINY_SPEC

CLIP = "synthetic://assembly?seed=101&minutes=0.1&size=320x240"


@pytest.fixture(scope="module")
def lk_clip():
    return lk_pseudo_labels(CLIP, 10.0, (320, 240))


def test_lk_columns_are_visible_over_one_unbroken_stretch(lk_clip):
    vis = lk_clip.visible
    assert lk_clip.frames.shape == (60, 240, 320)
    starts = (vis[1:] & ~vis[:-1]).sum(axis=0) + vis[0]
    assert (starts == 1).all()  # a column never comes back after LK dropped it
    assert (vis.sum(axis=0) >= 2).all()  # and lasts at least one step


def test_lk_columns_move_by_what_lk_measured(lk_clip):
    from edge.tracking.lk import LucasKanadeTracker

    trk = LucasKanadeTracker()
    trk.step(lk_clip.frames[0])
    step = trk.step(lk_clip.frames[1])
    both = lk_clip.visible[0] & lk_clip.visible[1]
    moved = lk_clip.positions[1, both] - lk_clip.positions[0, both]
    expected = step.velocity[step.visible]
    np.testing.assert_allclose(np.sort(moved[:, 0]), np.sort(expected[:, 0]), atol=1e-5)


def test_windows_can_be_cut_from_teacher_tracks(lk_clip):
    w = windows_from_clip(lk_clip, TINY_SPEC, rng_seed=0)
    assert len(w) > 0 and w.valid[:, 0].all()


def test_saved_tracks_round_trip_with_their_video(tmp_path, lk_clip):
    path = tmp_path / "tracks.npz"
    # tracks "computed elsewhere" at 30 fps: every model frame repeated 3 times
    pos = np.repeat(lk_clip.positions[:, :50], 3, axis=0)[:-2]
    vis = np.repeat(lk_clip.visible[:, :50], 3, axis=0)[:-2]
    np.savez(path, positions=pos, visibility=vis, fps=30.0)
    clip = saved_tracks_clip(path, CLIP, 10.0, (320, 240))
    assert clip.frames.shape[0] == clip.positions.shape[0] == 60
    np.testing.assert_array_equal(clip.visible, lk_clip.visible[:, :50])
    np.testing.assert_allclose(clip.positions[clip.visible], lk_clip.positions[:, :50][lk_clip.visible[:, :50]])


def test_saved_tracks_without_fps_name_what_is_missing(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, positions=np.zeros((4, 3, 2), np.float32), visibility=np.ones((4, 3), bool))
    with pytest.raises(TeacherDataError, match="lack fps"):
        load_saved_tracks(path)


def test_saved_tracks_with_mismatched_shapes_are_refused(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, positions=np.zeros((4, 3, 2), np.float32), visibility=np.ones((4, 2), bool), fps=10.0)
    with pytest.raises(TeacherDataError, match=r"expected \(T, N, 2\) and \(T, N\)"):
        load_saved_tracks(path)


@pytest.mark.parametrize("seed", [99, 500, 900])
def test_held_out_and_foreign_seeds_are_refused_for_training(seed):
    with pytest.raises(ConfigError, match="TRAINING 100-199"):
        check_training_seed(seed, "training")


def test_validation_seeds_must_be_validation_seeds():
    check_training_seed(500, "validation")
    with pytest.raises(ConfigError, match="VALIDATION 500-599"):
        check_training_seed(950, "validation")
