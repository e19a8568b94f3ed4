"""Training windows and the on-disk track cache."""

import numpy as np
import pytest

from export.tokenizer.dataset import cache_key, cached_tracks, parse_seed_range
from export.tokenizer.windows import TrackDataError, TrackRecord, load_saved_tracks, make_windows, tracks_from_positions


def test_windows_hold_t_minus_1_steps_after_the_start_frame():
    vel = np.arange(20, dtype=np.float32)[:, None, None] * np.ones((1, 3, 2), np.float32)
    rec = TrackRecord(vel, np.ones((20, 3), bool), 10.0)
    v, m = make_windows([rec], window=6, stride=5)
    assert v.shape == (3, 5, 3, 2) and m.shape == (3, 5, 3)
    assert v[1, :, 0, 0].tolist() == [6, 7, 8, 9, 10]  # window starting at frame 5


def test_positions_are_resampled_by_time_to_the_model_fps():
    t = np.arange(31, dtype=np.float32)  # 1 s at 30 fps, x moves 1 px per source frame
    pos = np.stack([np.stack([t, np.zeros_like(t)], 1)], 1)  # (31, 1, 2)
    rec = tracks_from_positions(pos, np.ones((31, 1), bool), fps=30.0, model_fps=10.0)
    assert rec.n_frames == 11
    assert np.allclose(rec.velocity[1:, 0], [3.0, 0.0])  # 3 px per model step, (x, y)
    assert not rec.valid[0].any() and rec.valid[1:].all()


def test_a_step_spanning_an_invisible_source_frame_is_invalid():
    pos = np.zeros((7, 1, 2), np.float32)
    vis = np.ones((7, 1), bool)
    vis[4] = False  # hidden between picked frames 3 and 6
    rec = tracks_from_positions(pos, vis, fps=30.0, model_fps=10.0)
    assert rec.valid[:, 0].tolist() == [False, True, False]


def test_saved_tracks_with_another_point_count_are_refused(conventions, tmp_path):
    path = tmp_path / "tracks.npz"
    np.savez(path, positions=np.zeros((20, 9, 2)), visibility=np.ones((20, 9), bool), fps=10.0)
    with pytest.raises(TrackDataError, match="have 9 points but the model uses 16"):
        load_saved_tracks(path, conventions)


def test_saved_tracks_are_read_without_a_tracker(conventions, tmp_path):
    path = tmp_path / "tracks.npz"
    pos = np.cumsum(np.ones((30, 16, 2), np.float32), axis=0)
    np.savez(path, positions=pos, visibility=np.ones((30, 16), bool), fps=10.0)
    rec, key = cached_tracks(str(path), conventions)
    assert rec.n_frames == 30 and np.allclose(rec.velocity[1:], 1.0) and len(key) == 64


def test_tracked_video_is_cached_and_read_back_instead_of_re_tracked(conventions, tmp_path):
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "square.avi"
    w, h = conventions.input_size
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for i in range(20):
        writer.write(np.roll(texture, i, axis=1))  # whole image slides 1 px right per frame
    writer.release()
    cache = tmp_path / "cache"
    rec, key = cached_tracks(str(video), conventions, "lk", cache, progress=False)
    assert rec.n_frames == 20
    assert np.median(rec.velocity[2:, :, 0][rec.valid[2:]]) == pytest.approx(1.0, abs=0.2)
    entry = cache / f"{key}.npz"
    assert entry.is_file()
    # Poison the cache entry: a second call must return it, proving it did not re-track.
    np.savez_compressed(entry, velocity=rec.velocity + 100.0, valid=rec.valid, fps=rec.fps)
    again, key2 = cached_tracks(str(video), conventions, "lk", cache, progress=False)
    assert key2 == key and np.allclose(again.velocity, rec.velocity + 100.0)


def test_cache_key_changes_with_the_conventions(conventions):
    from dataclasses import replace

    spec = "synthetic://assembly?seed=100&minutes=1&nuisances=all"
    assert cache_key(spec, "lk", conventions) != cache_key(spec, "lk", replace(conventions, fps=15.0))
    assert cache_key(spec, "lk", conventions) != cache_key(spec, "exact", conventions)


def test_seed_ranges_parse():
    assert parse_seed_range("100-103,110") == [100, 101, 102, 103, 110]
