"""Every user mistake is a one-line error naming the problem, the value and the fix; the CLI
prints it as `error: ...` and exits 2."""

import json

import numpy as np
import pytest

from calibration.cli import main
from calibration.labelled import LabelMismatchError, match_labels
from calibration.recordings import (
    EnergyRecording,
    NoRecordingsError,
    RecordingMismatchError,
    find_inputs,
    load_recordings,
    resolve_model,
)

from .makers import bursty_series, write_trace, write_video


def _cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_an_empty_folder_is_no_video_found(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    err = _cli_error(capsys, ["run", str(tmp_path), "--out", str(tmp_path / "o"), "--model", "none"])
    assert "no video found" in err and str(tmp_path) in err


def test_a_missing_path_is_no_video_found(tmp_path):
    with pytest.raises(NoRecordingsError, match="does not exist"):
        find_inputs([str(tmp_path / "missing.mp4")])


def test_an_npz_that_is_not_an_energy_trace_is_refused(tmp_path, capsys):
    np.savez(tmp_path / "tracks.npz", positions=np.zeros((3, 2, 2)))
    err = _cli_error(capsys, ["run", str(tmp_path / "tracks.npz"), "--out", str(tmp_path / "o"), "--model", "none"])
    assert "not an energy trace" in err and "--record-energy" in err


def test_a_video_slower_than_the_model_fps_does_not_match(tmp_path, capsys):
    video = write_video(tmp_path / "slow.mp4", fps=5.0, size=(320, 240), frames=10)
    err = _cli_error(capsys, ["run", str(video), "--out", str(tmp_path / "o"), "--model", "none"])
    assert "5 fps" in err and "10 fps" in err and "record at" in err


def test_a_video_smaller_than_the_model_input_does_not_match(tmp_path):
    video = write_video(tmp_path / "small.mp4", fps=10.0, size=(160, 120), frames=5)
    with pytest.raises(RecordingMismatchError, match="160x120, smaller than .* 320x240"):
        load_recordings([str(video)], resolve_model("none"), progress=False)


def test_a_video_of_another_aspect_ratio_does_not_match(tmp_path):
    video = write_video(tmp_path / "wide.mp4", fps=10.0, size=(640, 360), frames=5)
    with pytest.raises(RecordingMismatchError, match="aspect 1.78"):
        load_recordings([str(video)], resolve_model("none"), progress=False)


def test_a_trace_of_another_model_does_not_match(tmp_path, tiny_model_dir, capsys):
    e, p, _ = bursty_series(550, 50)
    trace = write_trace(tmp_path / "run1" / "energy.npz", e, p, model_version="velocity-energy")
    err = _cli_error(capsys, ["run", str(trace), "--out", str(tmp_path / "o"), "--model", str(tiny_model_dir)])
    assert "'velocity-energy'" in err and "'tiny-cal-test'" in err


def test_a_trace_at_another_fps_does_not_match(tmp_path):
    e, p, _ = bursty_series(551, 50)
    trace = write_trace(tmp_path / "energy.npz", e, p, fps=25.0)
    with pytest.raises(RecordingMismatchError, match="25 fps"):
        load_recordings([str(trace)], resolve_model("none"), progress=False)


def _rec(name="cam1", seconds=60.0):
    n = int(seconds * 10)
    return EnergyRecording(name, f"{name}.mp4", np.zeros(n), np.zeros(n), 10.0, "velocity-energy", "video",
                           native_fps=30.0, native_frames=int(seconds * 30))


def test_labels_for_an_unknown_video_name_are_refused(tmp_path):
    (tmp_path / "cam1.json").write_text(json.dumps({"segments": [[1, 2]]}))
    (tmp_path / "cam3.json").write_text(json.dumps({"segments": [[1, 2]]}))
    with pytest.raises(LabelMismatchError, match="'cam3'.*not among the inputs \\(cam1, cam2\\)"):
        match_labels([str(tmp_path)], [_rec("cam1"), _rec("cam2")])


def test_labels_of_another_duration_are_refused(tmp_path):
    (tmp_path / "cam1.json").write_text(json.dumps({"segments": [[1, 2]], "duration_s": 90.0}))
    with pytest.raises(LabelMismatchError, match="covers 90.0 s but video cam1 lasts 60.0 s"):
        match_labels([str(tmp_path / "cam1.json")], [_rec("cam1")])


def test_segments_beyond_the_end_of_the_video_are_refused(tmp_path):
    (tmp_path / "cam1.json").write_text(json.dumps([[1, 2], [50, 75]]))
    with pytest.raises(LabelMismatchError, match="ending at 75.0 s"):
        match_labels([str(tmp_path / "cam1.json")], [_rec("cam1")])


def test_per_frame_labels_with_the_wrong_frame_count_are_refused(tmp_path):
    np.save(tmp_path / "cam1.npy", np.zeros(900, np.int64))  # 30 s at 30 fps, video has 1800 frames
    with pytest.raises(LabelMismatchError, match="900 per-frame labels but video cam1 has 1800 frames"):
        match_labels([str(tmp_path / "cam1.npy")], [_rec("cam1")])


def test_bad_sweep_values_are_one_line_errors(tmp_path, capsys):
    e, p, _ = bursty_series(552, 50)
    trace = write_trace(tmp_path / "energy.npz", e, p)
    err = _cli_error(capsys, ["run", str(trace), "--out", str(tmp_path / "o"), "--model", "none",
                              "--alpha", "0.5,x"])
    assert "--alpha" in err
    err = _cli_error(capsys, ["run", str(trace), "--out", str(tmp_path / "o"), "--model", "none",
                              "--up-steps", "0"])
    assert "up_steps" in err


def test_the_cli_refuses_labels_for_an_unknown_video(tmp_path, capsys):
    e, p, _ = bursty_series(553, 100)
    write_trace(tmp_path / "cam1.npz", e, p)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "cam9.json").write_text(json.dumps({"segments": [[1, 2]]}))
    err = _cli_error(capsys, ["run", str(tmp_path / "cam1.npz"), "--labels", str(tmp_path / "labels"), "--out",
                              str(tmp_path / "o"), "--model", "none", "--quiet"])
    assert "'cam9'" in err and "not among the inputs (cam1)" in err
