"""Labelled mode: calibrate on labelled minutes, report F1 on held-out ones."""

import json

import numpy as np
import pytest

from calibration.labelled import calibrate_labelled, match_labels, read_labels, search_theta_on
from calibration.recordings import EnergyRecording
from calibration.sweep import SweepSpace
from calibration.unsupervised import calibrate_unsupervised

from .makers import active_segments_s, bursty_series

SMALL = SweepSpace(ratio_off=(0.9,), up_steps=(1, 2), down_steps=(1, 2), alpha=(0.7, 1.0), max_theta=48)


def _trace_rec(name, energy, proxy):
    return EnergyRecording(name, name, energy, proxy, 10.0, "velocity-energy", "trace",
                           native_fps=10.0, native_frames=energy.size)


def test_labelled_calibration_follows_the_labels_where_the_proxy_misleads(tmp_path):
    recs, labels_dir = [], tmp_path / "labels"
    labels_dir.mkdir()
    for i in range(2):
        energy, _, active = bursty_series(560 + i, 900)
        # A misleading proxy: high only on a third of the activity (a camera that sees one hand).
        proxy = np.where(active & (np.arange(900) % 3 == 0), 2.0, 0.3)
        recs.append(_trace_rec(f"cam{i}", energy, proxy))
        (labels_dir / f"cam{i}.json").write_text(json.dumps({"segments": active_segments_s(active)}))
    unsup = calibrate_unsupervised(recs, SMALL)
    cal = calibrate_labelled(recs, match_labels([str(labels_dir)], recs), unsup, SMALL, holdout_fraction=0.3)
    assert cal.mode == "labelled" and cal.criterion == "boundary_f1@2s"
    held = cal.labelled.heldout
    assert held["labelled"]["f1_at_2s"] > 0.9
    assert held["labelled"]["f1_at_2s"] >= held["unsupervised"]["f1_at_2s"]
    assert held["labelled"]["f1_at_5s"] >= held["labelled"]["f1_at_2s"]
    assert cal.labelled.heldout_s == pytest.approx(2 * 27.0)
    assert cal.unsupervised_params == unsup.params
    assert cal.labelled.proxy_vs_labels_j < 0.5  # the labels expose the proxy's weakness


def test_nothing_held_out_gives_no_held_out_figures(tmp_path):
    energy, proxy, active = bursty_series(562, 400)
    rec = _trace_rec("cam", energy, proxy)
    (tmp_path / "cam.json").write_text(json.dumps({"segments": active_segments_s(active)}))
    unsup = calibrate_unsupervised([rec], SMALL)
    cal = calibrate_labelled([rec], match_labels([str(tmp_path / "cam.json")], [rec]), unsup, SMALL,
                             holdout_fraction=0.0)
    assert cal.labelled.heldout == {} and cal.labelled.heldout_s == 0.0
    assert cal.labelled.calibration_f1 > 0.9


def test_per_frame_labels_become_segments_split_where_the_action_changes(tmp_path):
    rec = EnergyRecording("cam", "cam.mp4", np.zeros(20), np.zeros(20), 10.0, "velocity-energy", "video",
                          native_fps=5.0, native_frames=10)
    (tmp_path / "cam.txt").write_text("rest\nrest\nreach\nreach\ngrasp\ngrasp\nrest\n0\nreach\nreach\n")
    lab = read_labels(tmp_path / "cam.txt", rec)
    assert lab.segments.tolist() == [[0.4, 0.8], [0.8, 1.2], [1.6, 2.0]]


def test_the_ground_truth_json_of_laps_edge_synth_is_a_label_file(tmp_path):
    from edge.synthetic import SyntheticWorkstation

    ws = SyntheticWorkstation(seed=563, minutes=0.2, fps=10.0, size=(160, 120))
    ws.ground_truth.save(tmp_path / "synthetic-seed563.json")
    rec = EnergyRecording("synthetic-seed563", "s", np.zeros(ws.n_frames), np.zeros(ws.n_frames), 10.0,
                          "velocity-energy", "video", native_fps=10.0, native_frames=ws.n_frames)
    lab = match_labels([str(tmp_path)], [rec])["synthetic-seed563"]
    assert lab.segments.tolist() == [[s, e] for s, e, _ in ws.ground_truth.segments]


def test_ground_truth_json_beside_a_trace_belongs_to_that_run_folder(tmp_path):
    rec = EnergyRecording("run1", "run1/energy.npz", np.zeros(100), np.zeros(100), 10.0, "velocity-energy",
                          "trace", native_fps=10.0, native_frames=100)
    other = EnergyRecording("run2", "run2/energy.npz", np.zeros(100), np.zeros(100), 10.0, "velocity-energy",
                            "trace", native_fps=10.0, native_frames=100)
    (tmp_path / "run1").mkdir()
    (tmp_path / "run1" / "ground_truth.json").write_text(json.dumps({"segments": [[1.0, 2.0]]}))
    assert list(match_labels([str(tmp_path / "run1" / "ground_truth.json")], [rec, other])) == ["run1"]


def test_the_theta_on_search_keeps_the_best_boundary_f1_and_the_lower_theta_on_a_tie():
    from edge.energy import HysteresisParams, run_series
    from edge.evaluation import boundary_f1

    energies, truth = [], []
    for seed in (1, 2):
        energy, _, active = bursty_series(seed, 400)
        energies.append(energy)
        truth.append([tuple(s) for s in active_segments_s(active)])
    base = HysteresisParams(theta_on=0.0, alpha=0.5)
    params, summary = search_theta_on(energies, truth, 10.0, base=base, n_candidates=16)
    curve = np.asarray(summary["curve"])
    best = curve[:, 1].max()
    assert params == HysteresisParams(theta_on=summary["theta_on"], alpha=0.5)
    assert summary["f1"] == best and summary["theta_on"] == curve[curve[:, 1] == best, 0].min()
    # The curve is the scorer's own figure for each candidate (checked for the chosen one).
    preds = [run_series(e, params).segments / 10.0 for e in energies]
    gts = [np.asarray(t, np.float64).reshape(-1, 2) for t in truth]
    assert boundary_f1(preds, gts, 2.0, [len(e) / 10.0 for e in energies]) == summary["f1"]
