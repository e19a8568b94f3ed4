"""Unsupervised calibration against the proxy, and the warning when the proxy is weak."""

import numpy as np

from calibration.recordings import EnergyRecording
from calibration.sweep import PLATEAU_FRACTION, SweepSpace
from calibration.unsupervised import WEAK_PROXY_J, calibrate_unsupervised
from edge.energy import run_series

from .makers import bursty_series

SMALL = SweepSpace(ratio_off=(0.9,), up_steps=(1, 2), down_steps=(1, 2), alpha=(0.7, 1.0), max_theta=64)


def _recordings(separable: bool, n: int = 2):
    # 2 x 2000 steps: with fewer, the best of 256 sets finds J ~ 0.08 in pure noise by chance.
    out = []
    for i in range(n):
        e, p, _ = bursty_series(520 + i, 2000, separable=separable)
        out.append(EnergyRecording(f"r{i}", "test", e, p, 10.0, "velocity-energy", "trace"))
    return out


def test_calibrated_thresholds_recover_the_activity_when_the_proxy_separates():
    cal = calibrate_unsupervised(_recordings(True), SMALL)
    assert 0.2 < cal.params.theta_on < 1.5  # between the rest and the activity energy levels
    for i in range(2):
        energy, _, active = bursty_series(520 + i, 2000)
        assert np.mean(run_series(energy, cal.params).on == active) > 0.9
    assert cal.quality.youden_j > 0.9 and cal.quality.f1 > 0.9


def test_weak_proxy_warning_fires_on_a_non_separating_input():
    cal = calibrate_unsupervised(_recordings(False), SMALL)
    assert cal.quality.youden_j < WEAK_PROXY_J and cal.quality.weak
    assert len(cal.warnings) == 1
    w = cal.warnings[0]
    assert "Youden's J" in w and "--labels" in w and "camera view" in w and "retrain the tokenizer" in w
    assert "\n" not in w


def test_weak_proxy_warning_does_not_fire_on_a_separating_input():
    cal = calibrate_unsupervised(_recordings(True), SMALL)
    assert not cal.quality.weak and cal.warnings == []


def test_the_choice_scores_within_the_plateau_of_the_best_for_every_criterion():
    recs = _recordings(True)
    for criterion in ("gmean", "f1", "youden"):
        cal = calibrate_unsupervised(recs, SMALL, criterion=criterion)
        scores = cal.proxy_scores.by(criterion)
        assert cal.score >= PLATEAU_FRACTION * np.max(scores)
        assert cal.params == cal.grid.params(int(np.flatnonzero(scores == cal.score)[0])) or cal.score in scores


def test_the_default_criterion_is_j_for_velocity_energy_and_gmean_for_a_tokenizer():
    recs = _recordings(True)
    assert calibrate_unsupervised(recs, SMALL).criterion == "youden"
    tok = [EnergyRecording(r.name, r.source, r.energy, r.proxy, r.fps, "tok-1", "trace") for r in recs]
    assert calibrate_unsupervised(tok, SMALL).criterion == "gmean"
    assert calibrate_unsupervised(tok, SMALL, criterion="f1").criterion == "f1"
