"""`laps-calibrate run` end to end on recorded traces (fast) and a video folder."""

import json
import subprocess
import sys

import numpy as np

from calibration.cli import main
from edge.calibration_file import CalibrationFile

from .makers import active_segments_s, bursty_series, write_trace


def test_run_on_traces_writes_calibration_and_report(tmp_path, capsys):
    for i in range(2):
        e, p, _ = bursty_series(580 + i, 400)
        write_trace(tmp_path / "traces" / f"cam{i}.npz", e, p)
    out = tmp_path / "cal"
    assert main(["run", str(tmp_path / "traces"), "--out", str(out), "--model", "none", "--quiet",
                 "--max-theta", "32", "--alpha", "0.7,1.0"]) == 0
    data = json.loads((out / "calibration.json").read_text())
    assert CalibrationFile.read(out / "calibration.json").params.theta_on == data["params"]["theta_on"]
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
                   "--into-model", "--quiet", "--no-split", "--split-window-s"):
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


def _code_chains(model_dir, seed: int, n_chains: int = 8):
    """Codes of rest (one code) and chains of activities back to back (each hopping among its own
    few codes), with the energy the device computes from them and a proxy that follows activity."""
    from edge.model import load_model_directory
    from edge.tokenizer.fsq import FSQ

    meta = load_model_directory(model_dir).metadata
    fsq = FSQ(meta.fsq_levels, *meta.fsq_projection())
    rng = np.random.default_rng(seed)
    codes, active = [], []
    for _ in range(n_chains):
        n = int(rng.integers(20, 40))
        codes += [0] * n
        active += [False] * n
        for _ in range(3):
            pool = rng.choice(np.arange(1, fsq.codebook_size), 4, replace=False)
            n = int(rng.integers(30, 50))
            codes += list(rng.choice(pool, n))
            active += [True] * n
    codes = np.array(codes, np.int64)
    z = fsq.z_q_from_codes(codes).astype(np.float64)
    energy = np.r_[0.0, np.linalg.norm(np.diff(z, axis=0), axis=1)]
    proxy = np.where(active, 2.0, 0.2) + rng.normal(0, 0.05, len(codes))
    return codes, energy, np.abs(proxy)


def test_run_with_a_tokenizer_calibrates_the_split_step(tmp_path, capsys, tiny_model_dir):
    codes, energy, proxy = _code_chains(tiny_model_dir, 590)
    path = write_trace(tmp_path / "cam.npz", energy, proxy, model_version="tiny-cal-test")
    with np.load(path) as data:
        arrays = dict(data)
    arrays["codes"] = codes
    np.savez_compressed(path, **arrays)
    out = tmp_path / "cal"
    assert main(["run", str(path), "--out", str(out), "--model", str(tiny_model_dir), "--quiet",
                 "--max-theta", "32"]) == 0
    data = json.loads((out / "calibration.json").read_text())
    assert data["split"]["mode"] == "unsupervised" and data["params"]["split_window"] == 8
    assert data["params"]["split_theta"] > 0 and data["split"]["peaks"] > 0
    assert CalibrationFile.read(out / "calibration.json").params.splits
    assert "split step: window 8 steps" in capsys.readouterr().out


def test_run_without_split_leaves_the_step_off(tmp_path, tiny_model_dir):
    codes, energy, proxy = _code_chains(tiny_model_dir, 591)
    path = write_trace(tmp_path / "cam.npz", energy, proxy, model_version="tiny-cal-test")
    with np.load(path) as data:
        arrays = dict(data)
    arrays["codes"] = codes
    np.savez_compressed(path, **arrays)
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--model", str(tiny_model_dir), "--quiet",
                 "--max-theta", "32", "--no-split"]) == 0
    data = json.loads((tmp_path / "o" / "calibration.json").read_text())
    assert data["split"] is None and data["params"]["split_window"] == 0


def test_run_warns_when_the_pseudo_labels_are_degenerate(tmp_path, capsys):
    rng = np.random.default_rng(592)
    proxy = np.abs(rng.normal(0.3, 0.05, 3000))
    proxy[::400] = 9.0       # a handful of steps far above the rest: Otsu calls only them activity
    write_trace(tmp_path / "cam.npz", np.abs(rng.normal(0.2, 0.05, 3000)), proxy)
    assert main(["run", str(tmp_path / "cam.npz"), "--out", str(tmp_path / "o"), "--model", "none",
                 "--quiet", "--max-theta", "32"]) == 0
    err = capsys.readouterr().err
    assert "pseudo-labels call 0.3 % of the steps activity" in err
    data = json.loads((tmp_path / "o" / "calibration.json").read_text())
    assert data["proxy_quality"]["degenerate"] is True
