"""Leave-one-video-out: no figure on a video may depend on that video's own labels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.peers.context import leave_one_out
from benchmarks.peers.registry import METHODS
from benchmarks.real_labelled.corpus import CorpusError, LabelledVideo
from benchmarks.real_segmentation import predict

FPS = 10.0
NAMES = ("rest", "reach", "turn", "place")


def workstation_video(name: str, seed: int, dataset: str = "toy") -> LabelledVideo:
    """Rest, then three actions back to back, then rest; each action moves the features its own
    way (a drift in its own direction), rest holds still. 18-25 s at 10 fps."""
    rng = np.random.default_rng(seed)
    lengths = [int(rng.integers(20, 40))] + [int(rng.integers(40, 60)) for _ in range(3)] + [20]
    labels = np.concatenate([np.full(n, k) for k, n in zip([0, 1, 2, 3, 0], lengths)])
    steps = np.zeros((labels.size, 6))
    for k in (1, 2, 3):
        direction = np.eye(6)[k] + 0.3 * np.eye(6)[(k + 2) % 6]
        on = labels == k
        steps[on] = 0.4 * direction + 0.2 * rng.normal(size=(int(on.sum()), 6))
    features = np.cumsum(steps, axis=0) + 0.01 * rng.normal(size=steps.shape)
    return LabelledVideo(dataset, name, features, labels, FPS, NAMES, background=(0,))


@pytest.fixture(scope="module")
def videos():
    return [workstation_video(f"v{i}", seed=i) for i in range(4)]


def test_context_holds_every_other_video_and_not_the_scored_one(videos):
    for i, v in enumerate(videos):
        ctx = leave_one_out(videos, i)
        assert [o.name for o in ctx.others] == [w.name for j, w in enumerate(videos) if j != i]
        assert all(o is not v for o in ctx.others)
        assert not any(o.labels is v.labels for o in ctx.others)


def test_context_figures_do_not_change_with_the_scored_videos_labels(videos):
    for i, v in enumerate(videos):
        relabelled = list(videos)
        relabelled[i] = replace(v, labels=np.where(v.labels > 0, 1, 0))  # one long action instead of three
        before, after = leave_one_out(videos, i), leave_one_out(relabelled, i)
        assert after.k_segments == before.k_segments
        assert after.mean_segment_s == before.mean_segment_s


def test_context_figures_are_the_other_videos_means(videos):
    ctx = leave_one_out(videos, 0)
    counts = [len(v.segments()) for v in videos[1:]]
    lengths = np.concatenate([np.diff(v.segments(), axis=1).ravel() for v in videos[1:]])
    assert ctx.k_segments == round(np.mean(counts))
    assert ctx.mean_segment_s == pytest.approx(lengths.mean())


def test_the_pool_is_features_only(videos):
    ctx = leave_one_out(videos, 2)
    assert len(ctx.pool_features) == len(videos)
    assert all(isinstance(f, np.ndarray) and f.ndim == 2 for f in ctx.pool_features)


@pytest.fixture(scope="module")
def predictions(videos):
    """{method name: its segments on every video}, computed once for the module."""
    return {m.name: predict(m, videos) for m in METHODS}


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_no_method_sees_the_scored_videos_labels(videos, predictions, method):
    """Predictions on a video are the same whatever that video's labels say."""
    for i in (0, len(videos) - 1):  # two videos suffice: every video goes through the same code
        v = videos[i]
        relabelled = list(videos)
        relabelled[i] = replace(v, labels=np.where(v.labels > 0, 1, 0))  # one long action instead of three
        again = method.segment(v.features, v.fps, leave_one_out(relabelled, i))
        np.testing.assert_array_equal(np.clip(np.asarray(again).reshape(-1, 2), 0, v.duration_s),
                                      predictions[method.name][i])


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_every_method_returns_spans_inside_the_video(videos, predictions, method):
    for v, segs in zip(videos, predictions[method.name]):
        assert segs.ndim == 2 and segs.shape[1] == 2
        assert np.all(segs[:, 0] >= 0) and np.all(segs[:, 1] <= v.duration_s)
        assert np.all(segs[:, 1] >= segs[:, 0])


def test_a_dataset_of_one_video_has_no_context():
    with pytest.raises(CorpusError, match="needs at least 2"):
        leave_one_out([workstation_video("only", 0)], 0)


def test_videos_of_two_datasets_do_not_share_a_context():
    mixed = [workstation_video("a", 0, "one"), workstation_video("b", 1, "two")]
    with pytest.raises(CorpusError, match="several datasets"):
        leave_one_out(mixed, 0)


def test_the_unsupervised_back_half_finds_activity_between_the_rests(videos, predictions):
    # Energy + hysteresis separates activity from rest; the back-to-back actions stay one segment.
    for v, segs in zip(videos, predictions["LAPS back half, unsupervised"]):
        truth = v.segments()
        assert segs[0, 0] == pytest.approx(truth[0, 0], abs=0.5)
        assert segs[-1, 1] == pytest.approx(truth[-1, 1], abs=0.5)


def test_a_dataset_mixing_frame_rates_is_refused():
    slow = replace(workstation_video("b", 1), fps=5.0)
    with pytest.raises(CorpusError, match="mixes frame rates"):
        leave_one_out([workstation_video("a", 0), slow], 0)
