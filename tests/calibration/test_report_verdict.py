"""The calibration report's verdict follows its scores, it flags thresholds that call a very
different share of the steps active, compares new with current thresholds on the same
recordings, and ends with the commands that deploy them."""

from __future__ import annotations

import re

import numpy as np

from calibration.cli import main
from calibration.comparison import compare_thresholds, truth_spans
from calibration.labelled import RecordingLabels
from calibration.recordings import EnergyRecording
from calibration.report import write_report
from calibration.unsupervised import calibrate_unsupervised
from edge.energy import HysteresisParams

from .makers import active_segments_s, bursty_series, write_trace


def _recordings(noise: float, model_version: str = "tok") -> list[EnergyRecording]:
    """Two recordings whose proxy separates cleanly and whose energy follows the activity with
    Gaussian noise of `noise` (0.8: Youden's J about 0.2)."""
    recs = []
    for i in range(2):
        _, proxy, active = bursty_series(600 + i, 2000, separable=True)
        energy = np.abs(0.5 + 0.35 * active + np.random.default_rng(i).normal(0, noise, active.size))
        recs.append(EnergyRecording(f"cam{i}", "t", energy, proxy, 10.0, model_version, "trace"))
    return recs


def test_weak_agreement_is_not_confirmed_and_never_a_green_box(tmp_path):
    recs = _recordings(0.8)
    cal = calibrate_unsupervised(recs)
    assert 0.1 <= cal.quality.youden_j < 0.4 and not cal.warnings  # above the red level, below trust
    page = write_report(tmp_path, cal, recs).read_text()
    assert "class='ok'" not in page and "No warnings" not in page
    box = re.search(r"<div class='caution'>(.*?)</div>", page, re.S).group(1)
    assert "Not confirmed" in box and f"Youden&#x27;s J {cal.quality.youden_j:.2f}" in box


def test_strong_agreement_is_a_green_box(tmp_path):
    recs = _recordings(0.2)
    cal = calibrate_unsupervised(recs)
    assert cal.quality.youden_j >= 0.4 and cal.quality.f1 >= 0.5
    comparison = compare_thresholds(recs, cal.pseudo, {"new": cal.params})
    page = write_report(tmp_path, cal, recs, comparison=comparison).read_text()
    assert "<div class='ok'><b>Consistent:</b>" in page and "class='caution'" not in page


def test_thresholds_that_call_far_more_steps_active_than_the_pseudo_labels_are_flagged(tmp_path, capsys):
    for i in range(2):
        _, proxy, active = bursty_series(610 + i, 2000, separable=True)
        wide = active.copy()
        for end in np.flatnonzero(np.diff(active.astype(int)) == -1):
            wide[end:end + 25] = True  # the energy stays up 2.5 s after every activity
        energy = np.abs(np.where(wide, 1.5, 0.2) + np.random.default_rng(i).normal(0, 0.1, active.size))
        write_trace(tmp_path / "traces" / f"cam{i}.npz", energy, proxy)
    assert main(["run", str(tmp_path / "traces"), "--out", str(tmp_path / "o"), "--model", "none", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"mark \d+\.\d % of the steps active against \d+\.\d % in the pseudo-labels \(1\.\dx more\)", err)
    assert "in the pseudo-labels (1." in (tmp_path / "o" / "report.html").read_text()


def test_new_thresholds_are_compared_with_the_current_ones_on_the_same_recordings(tmp_path, capsys):
    for i in range(2):
        e, p, active = bursty_series(620 + i, 1200, separable=True)
        write_trace(tmp_path / "traces" / f"cam{i}.npz", e, p)
    assert main(["run", str(tmp_path / "traces"), "--out", str(tmp_path / "o"), "--model", "none", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"current thresholds: +theta_on 0\.74: [\d.]+ % of steps active", out)
    assert re.search(r"new thresholds: +theta_on [\d.]+: [\d.]+ % of steps active", out)
    page = (tmp_path / "o" / "report.html").read_text()
    table = page[page.index("New thresholds against the current ones"):]
    assert "<th>current</th><th>new</th>" in table and "the built-in velocity-energy default" in table


def test_f1_at_2s_is_measured_for_both_against_the_labels():
    e, p, active = bursty_series(630, 1200, separable=True)
    rec = EnergyRecording("cam", "t", e, p, 10.0, "velocity-energy", "trace")
    labels = {"cam": RecordingLabels("cam", "cam.json", np.asarray(active_segments_s(active)), None)}
    assert truth_spans(rec, labels)[1] == "the labels"
    good, bad = compare_thresholds([rec], [active], {"good": HysteresisParams(theta_on=0.8),
                                                      "bad": HysteresisParams(theta_on=5.0)}, labels)
    assert good.f1_at_2s > 0.9 and bad.f1_at_2s == 0.0 and good.truth == "the labels"
    assert 0.3 < good.on_fraction < 0.7 and bad.segments == 0


def test_the_report_ends_with_the_commands_that_deploy_the_thresholds_not_a_json_dump(tmp_path, tiny_model_dir):
    energy, proxy, _ = bursty_series(640, 800, separable=True)
    path = write_trace(tmp_path / "cam.npz", energy, proxy, model_version="tiny-cal-test")
    out = tmp_path / "o"
    assert main(["run", str(path), "--out", str(out), "--model", str(tiny_model_dir), "--quiet", "--no-split"]) == 0
    page = (out / "report.html").read_text()
    assert "full record" not in page and '"schema": "laps.calibration/1"' not in page
    tail = page[page.rindex("<h2>"):]
    assert tail.startswith("<h2>Next step: deploy these thresholds</h2>")
    assert f'calibration = "{(out / "calibration.json").resolve()}"' in tail
    assert f"laps-export bundle build --model-dir {tiny_model_dir} --calibration" in tail
    assert "laps-central rollout start" in tail
    assert "holds no calibration yet" in page  # the tiny model has none to compare with
