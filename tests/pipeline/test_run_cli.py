"""`laps-edge run` end to end: a generated workstation video in, segments and a summary out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

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

    from edge.energy_trace import EnergyTrace

    trace = EnergyTrace.read(out / "energy.npz")
    assert trace.energy.shape == (300,) and trace.model_version == "velocity-energy" and trace.fps == 10.0
    assert np.all(trace.smoothed[1:] >= 0)
    np.testing.assert_array_equal(trace.frame_index, np.arange(300))


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


# -- one-line errors and partial results (issue 18) ------------------------------------------------
def run_cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, timeout=timeout)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def truncated_avi(tmp_path):
    """A real MJPEG AVI (OpenCV) of 30 s at 10 fps, cut after 60 % of its bytes."""
    from tests.service.helpers import write_video

    whole = write_video(tmp_path / "station.avi", seconds=30)
    cut = tmp_path / "station-cut.avi"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    return cut


def test_a_truncated_file_keeps_summary_and_energy_trace_of_its_good_frames(truncated_avi, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", "--source", str(truncated_avi), "--out", str(out), "--model", "none", "--quiet",
                   "--record-energy")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "ended after" in errors[0] and "--allow-truncated" in errors[0]
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["error"] == errors[0][len("error: "):]
    assert 100 < summary["frames"] < 300
    import numpy as np

    with np.load(out / "energy.npz") as trace:
        assert trace["energy"].shape == (summary["frames"],)
    assert len(list(read_segments(out / "segments.jsonl"))) == summary["segments"]


def test_allow_truncated_ends_a_truncated_file_cleanly_with_a_warning(truncated_avi, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", "--source", str(truncated_avi), "--out", str(out), "--model", "none", "--quiet",
                   "--allow-truncated")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WARNING" in proc.stderr and "allow_truncated" in proc.stderr and not error_lines(proc.stderr)
    assert 100 < json.loads((out / "summary.json").read_text())["frames"] < 300


@pytest.mark.parametrize("value", ["-5", "0", "nan"])
def test_max_seconds_must_be_positive(tmp_path, capsys, value):
    assert main(["run", "--source", SOURCE, "--out", str(tmp_path / "o"), "--model", "none", "--quiet",
                 f"--max-seconds={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --max-seconds") and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_out_that_is_a_file_is_a_one_line_error(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("x")
    assert main(["run", "--source", SOURCE, "--out", str(target), "--model", "none", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --out") and "is a file" in err and "\n" not in err


def test_out_on_a_full_disk_is_a_one_line_error(tmp_path):
    from tests.tmpfs import fill, mounted_tmpfs

    with mounted_tmpfs(tmp_path / "small", 256 * 1024) as disk:
        fill(disk)
        proc = run_cli("run", "--source", SOURCE, "--out", str(disk / "o"), "--model", "none", "--quiet")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "the disk is full" in errors[0] and "--out" in errors[0]
    assert "Traceback" not in proc.stderr


def test_out_on_a_read_only_disk_is_a_one_line_error(tmp_path):
    from tests.tmpfs import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "ro", 64 * 1024, read_only=True) as disk:
        proc = run_cli("run", "--source", SOURCE, "--out", str(disk / "o"), "--model", "none", "--quiet")
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and "read-only" in errors[0]
    assert "Traceback" not in proc.stderr
