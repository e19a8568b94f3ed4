"""`laps-edge synth`: writes a readable MP4, its ground truth and (optionally) exact tracks."""

from __future__ import annotations

import cv2
import numpy as np

from edge.cli import main
from edge.synthetic import load_ground_truth


def test_synth_writes_a_readable_video_with_one_frame_per_ground_truth_frame(tmp_path, capsys):
    rc = main(["synth", "--seed", "4", "--minutes", "0.1", "--size", "320x240", "--nuisances", "all",
               "--tracks", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    mp4, js = tmp_path / "synthetic-seed4.mp4", tmp_path / "synthetic-seed4.json"
    gt = load_ground_truth(js)
    cap = cv2.VideoCapture(str(mp4))
    count = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (240, 320, 3)
        count += 1
    cap.release()
    assert count == gt.n_frames == 180
    out = capsys.readouterr().out
    assert str(mp4) in out and str(js) in out and "180 frames" in out and "primitive segments" in out
    tracks = np.load(tmp_path / "synthetic-seed4-tracks.npz")
    assert tracks["positions"].shape == (180, 400, 2) and tracks["positions"].dtype == np.float32
    assert tracks["visible"].shape == (180, 400) and float(tracks["fps"]) == 30.0
    assert int(tracks["window"]) == 16


def test_synth_rejects_a_bad_size_with_a_one_line_error(tmp_path, capsys):
    rc = main(["synth", "--size", "big", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: --size 'big'") and err.count("\n") == 1
