"""`laps-edge run` end to end: a generated workstation video in, segments and a summary out."""

from __future__ import annotations

import json
import subprocess
import sys


from edge.cli import main
from edge.segments import read_segments

SOURCE = "synthetic://assembly?seed=901&minutes=0.5"


def test_run_writes_segments_and_summary_for_a_synthetic_source(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--source", SOURCE, "--out", str(out), "--model", "none", "--quiet",
                 "--record-energy"]) == 0
    segments = list(read_segments(out / "segments.jsonl"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["segments"] == len(segments) > 0
    assert summary["frames"] == 300  # 30 s at the model's 10 fps
    assert 0.0 <= summary["f1_at_2s"] <= 1.0
    assert (out / "ground_truth.json").is_file()
    starts = [s.start_s for s in segments]
    assert starts == sorted(starts)
    assert all(s.end_frame > s.start_frame for s in segments)
    printed = capsys.readouterr().out
    assert "segments.jsonl" in printed and "F1@2s" in printed
    import numpy as np

    with np.load(out / "energy.npz") as trace:
        assert trace["energy"].shape == (300,)
        assert np.all(trace["smoothed"][1:] >= 0)


def test_run_without_source_names_the_missing_options(tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--source" in err and "\n" not in err


def test_run_on_a_missing_file_is_one_line_error_without_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "run", "--source", str(tmp_path / "nope.mp4"),
         "--out", str(tmp_path / "o"), "--model", "none"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "nope.mp4" in lines[0]
    assert "Traceback" not in proc.stderr


def test_run_rejects_an_unknown_tracker_backend(tmp_path, capsys):
    assert main(["run", "--source", SOURCE, "--out", str(tmp_path), "--model", "none",
                 "--tracker", "cotracker"]) == 2
    assert "cotracker" in capsys.readouterr().err


def test_theta_on_override_changes_the_thresholds_the_run_uses(tmp_path):
    low, high = tmp_path / "low", tmp_path / "high"
    for out, theta in ((low, "0.05"), (high, "50")):
        assert main(["run", "--source", SOURCE, "--out", str(out), "--model", "none", "--quiet",
                     "--theta-on", theta]) == 0
    s_low = json.loads((low / "summary.json").read_text())
    s_high = json.loads((high / "summary.json").read_text())
    assert s_low["params"]["theta_on"] == 0.05 and s_high["params"]["theta_on"] == 50.0
    assert s_high["segments"] == 0 < s_low["segments"]
