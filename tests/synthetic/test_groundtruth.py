"""Ground truth of the synthetic workstation: labels, segments, transitions, and its JSON file."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.synthetic import PRIMITIVES, GroundTruth, GroundTruthError, Nuisances, SyntheticWorkstation, load_ground_truth


def test_label_names_start_with_rest_then_the_primitives(clean_ws):
    gt = clean_ws.ground_truth
    assert gt.label_names == ["rest", *PRIMITIVES]
    assert len(PRIMITIVES) >= 6


def test_labels_have_one_entry_per_frame(clean_ws):
    gt = clean_ws.ground_truth
    assert gt.labels.shape == (clean_ws.n_frames,) and gt.n_frames == clean_ws.n_frames
    assert gt.fps == clean_ws.fps


def test_segments_agree_with_the_per_frame_labels(clean_ws):
    gt = clean_ws.ground_truth
    covered = np.zeros(gt.n_frames, bool)
    for (start, end, name), (sf, ef, _) in zip(gt.segments, gt.segment_frames()):
        assert start < end
        assert np.all(gt.labels[sf:ef] == gt.label_names.index(name)), (start, end, name)
        covered[sf:ef] = True
    assert np.all(gt.labels[~covered] == 0)


def test_segments_are_in_time_order_without_overlap(clean_ws):
    spans = clean_ws.ground_truth.segments
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("seed", [7, 123, 555, 900])
def test_two_minutes_cover_at_least_six_primitive_kinds(make_ws, seed):
    gt = make_ws(seed=seed).ground_truth
    assert len({name for _, _, name in gt.segments}) >= 6


@pytest.mark.parametrize("seed", [7, 123])
def test_both_rests_and_direct_transitions_occur(make_ws, seed):
    gt = make_ws(seed=seed).ground_truth
    assert gt.preceded_by.count("rest") >= 5
    assert gt.preceded_by.count("direct") >= 5


def test_preceded_by_matches_the_gap_between_segments(clean_ws):
    gt = clean_ws.ground_truth
    for prev, cur, kind in zip(gt.segment_frames(), gt.segment_frames()[1:], gt.preceded_by[1:]):
        assert kind == ("direct" if prev[1] == cur[0] else "rest")


def test_a_direct_transition_never_joins_two_segments_with_the_same_label(clean_ws):
    gt = clean_ws.ground_truth
    for prev, cur, kind in zip(gt.segments, gt.segments[1:], gt.preceded_by[1:]):
        if kind == "direct":
            assert prev[2] != cur[2]


def test_primitive_and_rest_durations_stay_in_range(clean_ws):
    gt = clean_ws.ground_truth
    for start, end, _ in gt.segments[:-1]:  # the last one may be cut by the end of the video
        assert 0.55 <= end - start <= 4.05
    runs, cur = [], 0
    for value in gt.labels[: gt.segment_frames()[-1][0]]:
        if value == 0:
            cur += 1
        elif cur:
            runs.append(cur / gt.fps)
            cur = 0
    runs = runs[1:]  # the opening rest
    assert runs and min(runs) >= 0.45 and max(runs) <= 4.05


def test_rest_fraction_zero_gives_only_forced_rests(make_ws):
    ws = make_ws(seed=11, minutes=1.0)  # default: about half and half
    tight = SyntheticWorkstation(seed=11, minutes=1.0, nuisances=Nuisances.none(), rest_fraction=0.0)
    gt = tight.ground_truth
    for prev, cur, kind in zip(gt.segments, gt.segments[1:], gt.preceded_by[1:]):
        if kind == "rest":
            assert prev[2] == cur[2]  # only where two equal labels must be kept apart
    assert gt.preceded_by.count("direct") > ws.ground_truth.preceded_by.count("direct")


def test_ground_truth_json_round_trips(clean_ws, tmp_path):
    gt = clean_ws.ground_truth
    path = gt.save(tmp_path / "gt.json")
    back = load_ground_truth(path)
    assert back.segments == gt.segments
    assert np.array_equal(back.labels, gt.labels)
    assert back.label_names == gt.label_names and back.fps == gt.fps
    assert back.preceded_by == gt.preceded_by
    assert back.meta["seed"] == 7


def test_missing_ground_truth_file_is_a_one_line_error(tmp_path):
    with pytest.raises(GroundTruthError) as err:
        load_ground_truth(tmp_path / "nope.json")
    assert "nope.json" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"schema": "other/1"}',
                                  '{"schema": "laps.synthetic-groundtruth/1", "fps": 30}'])
def test_malformed_ground_truth_is_a_one_line_error(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(GroundTruthError) as err:
        load_ground_truth(path)
    assert "bad.json" in str(err.value) and "\n" not in str(err.value)


def test_truncated_labels_are_rejected(clean_ws):
    data = clean_ws.ground_truth.to_dict()
    data["labels"] = data["labels"][:-5]
    with pytest.raises(GroundTruthError, match="labels"):
        GroundTruth.from_json(json.dumps(data))


def test_boundaries_exclude_the_video_ends(clean_ws):
    gt = clean_ws.ground_truth
    b = gt.boundaries_s()
    assert b == sorted(b) and all(0 < t < gt.duration_s for t in b)
