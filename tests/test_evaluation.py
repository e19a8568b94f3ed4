"""Evaluation metrics, pinned with hand-computed cases (docs/method.md#evaluation and MS-TCN conventions)."""

import math

import numpy as np
import pytest

from edge.evaluation import (
    ari,
    boundaries,
    boundary_counts,
    boundary_f1,
    boundary_f1_micro,
    boundary_prf,
    calinski_harabasz,
    davies_bouldin,
    edit_score,
    frame_labels_from_segments,
    hungarian_accuracy_per_video,
    hungarian_accuracy_pooled,
    nmi,
    segmental_f1,
    segmental_f1_at,
    silhouette_cosine,
)
from edge.segments import Segment

GT = [(2.0, 5.0), (8.0, 10.0)]   # duration 12: boundaries 2, 5, 8, 10


# --- boundary F1 ------------------------------------------------------------------------------

def test_boundaries_exclude_a_start_at_zero_and_an_end_at_the_duration():
    assert boundaries([(0.0, 3.0), (4.0, 12.0)], 12.0).tolist() == [3.0, 4.0]


def test_touching_segments_give_two_boundaries_at_the_same_time():
    assert boundaries([(2.0, 5.0), (5.0, 8.0)], 10.0).tolist() == [2.0, 5.0, 5.0, 8.0]


def test_prediction_equal_to_ground_truth_scores_one():
    assert boundary_prf(GT, GT, 2.0, 12.0) == (1.0, 1.0, 1.0)


def test_empty_prediction_scores_zero():
    assert boundary_prf([], GT, 2.0, 12.0) == (0.0, 0.0, 0.0)


def test_no_ground_truth_boundaries_and_none_predicted_scores_one():
    assert boundary_prf([], [(0.0, 10.0)], 2.0, 10.0) == (1.0, 1.0, 1.0)
    assert boundary_prf([(0.0, 10.0)], [(0.0, 10.0)], 2.0, 10.0) == (1.0, 1.0, 1.0)


def test_no_ground_truth_boundaries_but_some_predicted_scores_zero():
    assert boundary_prf([(0.0, 4.0)], [(0.0, 10.0)], 2.0, 10.0) == (0.0, 0.0, 0.0)


def test_a_boundary_exactly_tau_away_is_a_hit_and_just_beyond_is_not():
    gt = [(5.0, 20.0)]                      # duration 20: one boundary at 5
    assert boundary_prf([(7.0, 20.0)], gt, 2.0, 20.0) == (1.0, 1.0, 1.0)
    assert boundary_prf([(7.0 + 1e-9, 20.0)], gt, 2.0, 20.0) == (0.0, 0.0, 0.0)


def test_duplicate_ground_truth_times_need_two_predicted_boundaries():
    gt = [(2.0, 5.0), (5.0, 8.0)]           # boundaries 2, 5, 5, 8
    p, r, f1 = boundary_prf([(2.0, 8.0)], gt, 1.0, 10.0)   # predicts 2, 8
    assert (p, r) == (1.0, 0.5) and f1 == pytest.approx(2 / 3)
    assert boundary_prf([(2.0, 5.5), (5.5, 8.0)], gt, 1.0, 10.0) == (1.0, 1.0, 1.0)


def test_each_predicted_boundary_is_used_at_most_once():
    # gt boundaries 4, 5; one predicted boundary at 4.6 serves only the first.
    assert boundary_counts([(4.6, 12.0)], [(4.0, 5.0)], 1.0, 12.0) == (1, 1, 2)


def test_a_miss_does_not_use_up_the_nearest_predicted_boundary():
    # gt 2 misses 5.5 (3.5 s away) and leaves it for gt 5.
    assert boundary_counts([(5.5, 12.0)], [(2.0, 5.0)], 1.0, 12.0) == (1, 1, 2)


def test_on_a_distance_tie_the_earlier_predicted_boundary_is_taken():
    # gt 5 is 1 s from both 4 and 6 and takes 4, so gt 6.5 can take 6: two hits.
    assert boundary_counts([(4.0, 6.0)], [(5.0, 6.5)], 1.0, 10.0) == (2, 2, 2)


def test_segment_records_are_accepted():
    segs = [Segment("a", 20, 50, 2.0, 5.0, 10.0, "", ""),
            Segment("b", 80, 100, 8.0, 10.0, 10.0, "", "")]
    assert boundary_prf(segs, GT, 2.0, 12.0) == (1.0, 1.0, 1.0)


def test_f1_is_the_mean_over_videos_and_micro_pools_the_counts():
    preds = [[(2.0, 5.0)], []]
    gts = [[(2.0, 5.0)], [(1.0, 3.0), (4.0, 6.0), (7.0, 9.0)]]
    assert boundary_f1(preds, gts, 2.0, [10.0, 10.0]) == 0.5
    # pooled: 2 hits, 2 predicted, 8 true -> P = 1, R = 0.25, F1 = 0.4
    assert boundary_f1_micro(preds, gts, 2.0, [10.0, 10.0]) == pytest.approx(0.4)


def test_mismatched_video_counts_are_an_error():
    with pytest.raises(ValueError, match="per video"):
        boundary_f1([[]], [[], []], 2.0, [1.0])


# --- segmental F1 and edit score -------------------------------------------------------------

def test_segmental_f1_of_identical_segments_is_one():
    assert segmental_f1_at(GT, GT) == {"f1_at_10": 1.0, "f1_at_25": 1.0, "f1_at_50": 1.0}


def test_segmental_f1_counts_a_hit_only_at_or_above_the_iou_threshold():
    gt = [(0.0, 10.0), (20.0, 30.0)]
    pred = [(0.0, 10.0), (25.0, 40.0)]      # second IoU = 5 / 20 = 0.25
    assert segmental_f1(pred, gt, 0.25) == 1.0
    assert segmental_f1(pred, gt, 0.50) == 0.5   # tp 1, fp 1, fn 1


def test_segmental_f1_needs_matching_labels_when_labels_are_given():
    assert segmental_f1(GT, GT, 0.5, pred_labels=[1, 2], gt_labels=[2, 1]) == 0.0
    assert segmental_f1(GT, GT, 0.5, pred_labels=[1, 2], gt_labels=[1, 2]) == 1.0


def test_two_predictions_on_one_true_segment_give_one_false_positive():
    assert segmental_f1([(0, 10), (0, 10)], [(0, 10)], 0.5) == pytest.approx(2 / 3)


def test_segmental_f1_empty_cases():
    assert segmental_f1([], GT, 0.1) == 0.0
    assert segmental_f1(GT, [], 0.1) == 0.0
    assert segmental_f1([], [], 0.1) == 1.0


def test_edit_score_is_normalised_levenshtein_on_a_0_to_100_scale():
    assert edit_score([1, 2, 3], [1, 2, 3]) == 100.0
    assert edit_score([1, 3], [1, 2, 3]) == pytest.approx(100 * (1 - 1 / 3))
    assert edit_score([], [1, 2]) == 0.0
    assert edit_score([], []) == 100.0


# --- frame labels and Hungarian accuracy ------------------------------------------------------

def test_frame_labels_from_segments_fill_spans_and_background():
    out = frame_labels_from_segments([(1, 3), (5, 6)], 7, labels=[4, 9])
    assert out.tolist() == [-1, 4, 4, -1, -1, 9, -1]
    assert frame_labels_from_segments([(1, 3)], 4, background=7).tolist() == [7, 0, 0, 7]


def test_hungarian_accuracy_maps_clusters_to_classes_one_to_one():
    assert hungarian_accuracy_per_video(np.array([0, 0, 1, 1, 2, 2]),
                                        np.array([5, 5, 7, 7, 7, 7])) == pytest.approx(4 / 6)


def test_pooled_accuracy_uses_one_mapping_for_all_videos():
    a, b = np.array([0, 0, 1, 1]), np.array([1, 1, 0, 0])
    gt = np.array([3, 3, 4, 4])
    assert hungarian_accuracy_per_video(a, gt) == 1.0 and hungarian_accuracy_per_video(b, gt) == 1.0
    assert hungarian_accuracy_pooled([a, b], [gt, gt]) == 0.5


def test_hungarian_accuracy_leaves_out_ignored_frames():
    pred = np.array([0, 0, 1, 1])
    gt = np.array([3, 3, -1, -1])
    assert hungarian_accuracy_per_video(pred, gt, ignore_label=-1) == 1.0
    assert hungarian_accuracy_per_video(pred, gt) == 1.0
    assert hungarian_accuracy_per_video(np.array([0, 1, 1, 1]), np.array([3, 3, -1, -1]),
                                        ignore_label=-1) == 0.5


# --- clustering wrappers ----------------------------------------------------------------------

def _two_directions():
    rng = np.random.default_rng(910)
    a = np.array([1.0, 0.0, 0.0]) + rng.normal(0, 0.01, (20, 3))
    b = np.array([0.0, 1.0, 0.0]) + rng.normal(0, 0.01, (20, 3))
    return np.vstack([a, b]), np.repeat([0, 1], 20)


def test_well_separated_clusters_score_well():
    x, labels = _two_directions()
    assert silhouette_cosine(x, labels) > 0.9
    assert calinski_harabasz(x, labels) > 1000
    assert davies_bouldin(x, labels) < 0.1


def test_cluster_scores_are_nan_for_a_single_cluster():
    x, _ = _two_directions()
    one = np.zeros(len(x), dtype=int)
    assert math.isnan(silhouette_cosine(x, one))
    assert math.isnan(calinski_harabasz(x, one))
    assert math.isnan(davies_bouldin(x, one))


def test_nmi_and_ari_ignore_label_names():
    assert nmi([0, 0, 1, 1], [5, 5, 3, 3]) == pytest.approx(1.0)
    assert ari([0, 0, 1, 1], [5, 5, 3, 3]) == pytest.approx(1.0)
    assert ari([0, 0, 1, 1], [0, 1, 0, 1]) < 0.0
