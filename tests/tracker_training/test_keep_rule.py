"""Choosing the student's keep rule (`export.tracker.keep_rule`, `laps-export tracker-keep-rule`).

The rule arithmetic runs on hand-made figures whose answer is known; the keep decision itself is
the device's own `keep_mask` (and, in the first test, the shipped tracker's `keeps`). The command runs end to end on 3 s of a
VALIDATION recording with the shipped student.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.tracking.onnx_student import OnnxStudentTracker, keep_mask
from export.cli import main
from export.tracker.keep_rule import choose, evaluate_rules, rule_kept

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "edge" / "shipped_models" / "default"
#: the shipped bundle's keep rule (visibility, residual, moving residual), as its metadata says
SHIPPED = (-3.0, 0.64, 0.55)
W, S, N = 8, 15, 100


@pytest.fixture(scope="module")
def student() -> OnnxStudentTracker:
    return OnnxStudentTracker(DEFAULT_DIR, providers="cpu", intra_op_threads=1)


def _recording() -> dict:
    """One rendering's figures: every point visible in the scene and inside the frame; the
    student's error equals its (constant) match residual, so a residual cut c keeps a share c of
    the points at a median error c / 2. Points 0-9 (residuals 0.005-0.095, the most precise) have
    a logit of -5 at step 3, so a logit cut above -5 drops them and raises the median.
    LK: error 0.45 px everywhere, holds half of the points (and half of every subset's). Even
    points are fast; points 0, 3, 8, 11, 16, ... (i % 8 in {0, 3}) are the low-texture quartile."""
    resid = (np.arange(N) + 0.5) / N
    logit = np.zeros((W, S, N), np.float32)
    logit[:, 3, :10] = -5.0
    student = {"err": np.broadcast_to(resid, (W, S, N)).copy(), "kept": np.ones((W, S, N), bool),
               "logit": logit, "residual": np.broadcast_to(resid, (W, S, N)).astype(np.float32).copy()}
    lk_kept = np.ones((W, S, N), bool)
    i = np.arange(N)
    lk_kept[:, 5:, (i // 2) % 2 == 0] = False
    return {"student": student, "lk": {"err": np.full((W, S, N), 0.45), "kept": lk_kept},
            "gt_vis": np.ones((W, S, N), bool),
            # half the points fast, so the fast-motion subset holds the same mix
            "speed": np.where(np.arange(N) % 2 == 0, 6.0, 0.5) * np.ones((W, S, N)),
            "texture": np.broadcast_to(np.where(np.isin(i % 8, (0, 3)), 0.0, 1.0 + i), (W, N)).copy()}


def test_a_rule_keeps_a_point_only_until_its_first_failure(student):
    inside = np.ones((1, 4, 2), bool)
    logit = np.array([[[0, 0], [-9, 0], [0, 0], [0, 0]]], np.float32)
    residual = np.array([[[0.1, 0.1], [0.1, 0.1], [0.1, 0.9], [0.1, 0.1]]], np.float32)
    saved = student.visibility_threshold, student.residual_threshold
    student.visibility_threshold, student.residual_threshold = -3.0, 0.5
    try:
        kept = rule_kept(inside, logit, residual, student.keeps)
    finally:
        student.visibility_threshold, student.residual_threshold = saved
    assert kept[0, :, 0].tolist() == [True, False, False, False]  # logit fails at step 1: gone for good
    assert kept[0, :, 1].tolist() == [True, True, False, False]   # residual fails at step 2


def test_the_qualifying_rule_with_the_lowest_fast_motion_median_is_chosen():
    merged = {key: _recording() for key in ("all", "blur", "flicker")}
    results = evaluate_rules(merged, [-6.0, -4.0], [0.3, 0.6, 0.8, 0.95])
    got = {(r.visibility_threshold, r.residual_threshold): r for r in results}
    # logit >= -6 keeps every point the residual keeps: share c, median c / 2 (LK: 0.45 px, 0.5).
    overall = got[(-6.0, 0.6)].figures["overall"]
    assert overall[0] == pytest.approx(0.3, abs=0.01) and overall[1] == pytest.approx(0.6)
    # logit >= -4 also drops the ten most precise points: fewer held, a higher median.
    strict = got[(-4.0, 0.6)].figures["overall"]
    assert strict[1] == pytest.approx(0.5) and strict[0] > overall[0]
    qualifying = sorted(k for k, r in got.items() if r.qualifies)
    # 0.3 holds too few points; 0.95 is less precise than LK; -4 with 0.6 holds exactly LK's share
    # (ties qualify) and 0.8 more.
    assert qualifying == [(-6.0, 0.6), (-6.0, 0.8), (-4.0, 0.6), (-4.0, 0.8)]
    best = choose(results)
    assert (best.visibility_threshold, best.residual_threshold) == (-6.0, 0.6)
    assert not got[(-6.0, 0.3)].cell_ok("overall")


def test_a_moving_cut_judges_only_the_points_that_moved():
    merged = {key: _recording() for key in ("all", "blur", "flicker")}
    for m in merged.values():  # the student moves fast points 6 px per step and the others 0.5
        m["student"]["motion"] = m["speed"].copy()
    same, split = evaluate_rules(merged, [-6.0], [0.8], [0.0, 0.3], moving_px=2.0)
    assert (same.moving_residual_threshold, split.moving_residual_threshold) == (0.0, 0.3)
    # Fast points (the even ones) now need a residual < 0.3: a share 0.3 held, at median 0.15 px.
    fast = next(label for label in split.figures if label.startswith("fast motion"))
    assert split.figures[fast][1] == pytest.approx(0.3) and split.figures[fast][0] == pytest.approx(0.15, abs=0.01)
    assert same.figures[fast][1] == pytest.approx(0.8)
    # Slow points keep the 0.8 cut: the overall survival is the mean of the two kinds.
    assert split.figures["overall"][1] == pytest.approx((0.3 + 0.8) / 2)
    # Without recorded motion (a run from before the moving cut) the moving cut cannot apply.
    for m in merged.values():
        del m["student"]["motion"]
    (unmoved,) = evaluate_rules(merged, [-6.0], [0.8], [0.3])
    assert unmoved.figures == same.figures


def test_the_device_rule_switches_cut_where_the_point_moved_more_than_moving_px():
    logit = np.zeros(5, np.float32)
    residual = np.array([0.5, 0.5, 0.7, np.nan, np.nan], np.float32)
    motion = np.array([1.0, 3.0, 1.0, 3.0, 1.0], np.float32)
    assert keep_mask(logit, residual, -1.0, 0.6, motion, 0.4, 2.0).tolist() == [True, False, False, False, False]
    assert keep_mask(logit, residual, -1.0, 0.6, motion, 0.0, 2.0).tolist() == [True, True, False, False, False]
    # No static cut: only the moving points are checked (a NaN residual fails only a check).
    assert keep_mask(logit, residual, -1.0, 0.0, motion, 0.4, 2.0).tolist() == [True, False, True, False, True]
    assert keep_mask(logit, residual, -1.0, 0.0, None, 0.4, 2.0).tolist() == [True] * 5
    assert keep_mask(logit, None, 1.0, 0.6, motion, 0.4, 2.0).tolist() == [False] * 5


def test_no_rule_is_chosen_when_none_beats_lk():
    merged = {key: _recording() for key in ("all", "blur", "flicker")}
    assert choose(evaluate_rules(merged, [-6.0], [0.3, 0.95])) is None


def test_the_command_scores_the_shipped_student_on_a_validation_recording(tmp_path, capsys):
    out_json, out_png = tmp_path / "rules.json", tmp_path / "rules.png"
    code = main(["tracker-keep-rule", "--tracker-model", str(DEFAULT_DIR), "--seeds", "500", "--minutes", "0.05",
                 "--visibility=-3,-100", "--residual", f"{SHIPPED[1]:g},0", "--moving-residual", f"0,{SHIPPED[2]:g}",
                 "--json", str(out_json), "--plot", str(out_png), "--no-progress"])
    text = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    assert len(report["rules"]) == 8 and report["seeds"] == [500]
    assert report["shipped"] == list(SHIPPED) and "(the model's own)" in text
    assert code == (0 if report["chosen"] else 1)
    assert ("recommended: laps-export onnx" in text) == (code == 0)
    rules = {(r["visibility_threshold"], r["residual_threshold"], r["moving_residual_threshold"]): r
             for r in report["rules"]}
    # A looser rule holds at least as many points for whole windows, on every subset.
    for label in report["lk"]:
        loosest = rules[(-100.0, 0.0, 0.0)][f"{label} survival_16"]
        assert loosest >= rules[SHIPPED][f"{label} survival_16"]
        assert rules[(-3.0, SHIPPED[1], 0.0)][f"{label} survival_16"] >= rules[SHIPPED][f"{label} survival_16"]
    assert out_png.stat().st_size > 10_000


@pytest.mark.parametrize("args, message", [
    (["--seeds", "900"], "HELD-OUT 900-999 is only for benchmarks"),
    (["--residual", "-0.5"], "residual cuts are >= 0"),
    (["--moving-residual", "0,-0.5"], "--moving-residual '0,-0.5' has a negative cut"),
    (["--visibility", "a,b"], "not a comma-separated list of numbers"),
    (["--minutes", "0"], "must be > 0"),
    (["--plot", "/nonexistent/dir/x.png"], "does not exist"),
])
def test_user_mistakes_are_one_line(args, message, capsys):
    assert main(["tracker-keep-rule", "--tracker-model", str(DEFAULT_DIR), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
