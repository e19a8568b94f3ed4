"""Getting energy to calibrate on: the device pipeline over video, recorded traces, saved tracks."""

import numpy as np

from calibration.recordings import (
    find_inputs,
    load_recordings,
    record_tracks,
    record_video,
    recording_name,
    resolve_model,
)
from edge.sources.factory import open_source
from edge.tracking.lk import LucasKanadeTracker

from .makers import bursty_series, write_trace, write_video

SPEC = "synthetic://assembly?seed=590&minutes=0.15&fps=10&size=320x240"


def test_replayed_tracks_give_the_same_trace_as_the_pipeline_on_the_video():
    model = resolve_model("none")
    live = record_video(SPEC, model, progress=False)
    tracker = LucasKanadeTracker(grid=20)
    vel, vis = [], []
    with open_source(SPEC, fps=model.fps, size=model.input_size) as src:
        for frame in src:
            step = tracker.step(frame.image)
            vel.append(step.velocity)
            vis.append(step.visible)
    replay = record_tracks("replay", np.stack(vel), np.stack(vis), model)
    np.testing.assert_array_equal(replay.energy, live.energy)
    np.testing.assert_array_equal(replay.proxy, live.proxy)


def test_a_folder_contributes_its_videos_and_energy_traces_only(tmp_path):
    write_video(tmp_path / "b.mp4", 10.0, (320, 240), 3)
    e, p, _ = bursty_series(591, 30)
    write_trace(tmp_path / "a.npz", e, p)
    np.savez(tmp_path / "tracks.npz", positions=np.zeros((2, 2, 2)))
    (tmp_path / "b.json").write_text("{}")
    assert [s.rsplit("/", 1)[1] for s in find_inputs([str(tmp_path)])] == ["a.npz", "b.mp4"]


def test_recordings_are_named_for_matching_labels():
    assert recording_name("/data/cam1.mp4") == "cam1"
    assert recording_name("out/run7/energy.npz") == "run7"
    assert recording_name("synthetic://assembly?seed=12&minutes=1") == "synthetic-seed12"


def test_repeated_names_are_made_unique_in_input_order(tmp_path):
    e, p, _ = bursty_series(592, 30)
    a = write_trace(tmp_path / "x" / "cam.npz", e, p)
    b = write_trace(tmp_path / "y" / "cam.npz", e, p)
    recs = load_recordings([str(a), str(b)], resolve_model("none"), progress=False)
    assert [r.name for r in recs] == ["cam", "cam-2"]


def test_a_video_file_goes_through_the_pipeline_at_the_model_fps(tmp_path):
    video = write_video(tmp_path / "v.mp4", 20.0, (640, 480), 40)
    rec = load_recordings([str(video)], resolve_model("none"), progress=False)[0]
    assert rec.kind == "video" and rec.native_fps == 20.0 and rec.native_frames == 40
    assert rec.n_steps == 20 and rec.fps == 10.0
    assert rec.proxy[5:].max() > 0.5  # the texture moves 2 px per source frame in bursts
