"""`laps-calibrate run` end to end on recorded traces (fast) and a video folder."""

import json
import subprocess
import sys

from calibration.cli import main
from edge.pipeline import load_calibration

from .makers import active_segments_s, bursty_series, write_trace


def test_run_on_traces_writes_calibration_and_report(tmp_path, capsys):
    for i in range(2):
        e, p, _ = bursty_series(580 + i, 400)
        write_trace(tmp_path / "traces" / f"cam{i}.npz", e, p)
    out = tmp_path / "cal"
    assert main(["run", str(tmp_path / "traces"), "--out", str(out), "--model", "none", "--quiet",
                 "--max-theta", "32", "--alpha", "0.7,1.0"]) == 0
    data = json.loads((out / "calibration.json").read_text())
    assert load_calibration(str(out / "calibration.json")).theta_on == data["params"]["theta_on"]
    assert [r["name"] for r in data["data"]["recordings"]] == ["cam0", "cam1"]
    assert data["sweep"]["parameter_sets"] == 32 * 2  # theta_on x the two alphas given
    assert (out / "report.html").is_file()
    printed = capsys.readouterr()
    assert "proxy quality: Youden's J" in printed.out and "warning" not in printed.err


def test_run_warns_on_the_command_line_when_the_proxy_is_weak(tmp_path, capsys):
    e, p, _ = bursty_series(582, 3000, separable=False)
    write_trace(tmp_path / "cam.npz", e, p)
    assert main(["run", str(tmp_path / "cam.npz"), "--out", str(tmp_path / "o"), "--model", "none",
                 "--quiet", "--max-theta", "32"]) == 0
    err = capsys.readouterr().err
    assert "warning: the velocity-energy proxy separates activity from rest poorly" in err


def test_run_with_labels_reports_held_out_f1(tmp_path, capsys):
    e, p, active = bursty_series(583, 900)
    write_trace(tmp_path / "cam.npz", e, p)
    (tmp_path / "cam.json").write_text(json.dumps({"segments": active_segments_s(active)}))
    assert main(["run", str(tmp_path / "cam.npz"), "--labels", str(tmp_path / "cam.json"), "--out",
                 str(tmp_path / "o"), "--model", "none", "--quiet", "--max-theta", "32"]) == 0
    assert "held-out labelled minutes" in capsys.readouterr().out
    data = json.loads((tmp_path / "o" / "calibration.json").read_text())
    assert data["mode"] == "labelled" and data["labelled"]["heldout"]["labelled"]["f1_at_2s"] > 0.8


def test_help_explains_every_option():
    out = subprocess.run([sys.executable, "-m", "calibration.cli", "run", "--help"], capture_output=True,
                         text=True, timeout=60).stdout
    for option in ("--out", "--model", "--labels", "--holdout", "--tau", "--criterion", "--ratio-off",
                   "--up-steps", "--down-steps", "--alpha", "--max-theta", "--cooldown-steps", "--min-steps",
                   "--max-steps", "--full-grid", "--tracker", "--providers", "--energy-mode", "--threads",
                   "--into-model", "--quiet"):
        assert option in out
    assert "VIDEO_OR_DIR" in out


def test_full_grid_sweeps_r_u_d_and_alpha_too(tmp_path):
    e, p, _ = bursty_series(584, 300)
    write_trace(tmp_path / "cam.npz", e, p)
    assert main(["run", str(tmp_path / "cam.npz"), "--out", str(tmp_path / "o"), "--model", "none", "--quiet",
                 "--max-theta", "16", "--full-grid"]) == 0
    sweep = json.loads((tmp_path / "o" / "calibration.json").read_text())["sweep"]
    assert sweep["parameter_sets"] == 16 * 3 * 3 * 3 * 4
    assert sweep["alpha"] == [0.3, 0.5, 0.7, 1.0] and sweep["up_steps"] == [1, 2, 3]
