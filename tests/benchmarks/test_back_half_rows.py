"""The back-half rows of the real-data benchmark: the device rate, and the split-only row."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.peers.back_half import DEVICE_FPS, at_device_rate, back_half_split_only
from benchmarks.peers.context import leave_one_out
from benchmarks.real_labelled.corpus import LabelledVideo

NAMES = ("rest", "a", "b", "c", "d")


def back_to_back(name: str, seed: int, fps: float) -> LabelledVideo:
    """Eight actions back to back, 4-6 s each, each holding its own mean feature vector, with a
    smaller change of its own halfway (actions have phases) and noise: no rest anywhere, so only
    a change of character marks a boundary, and not every change is one."""
    rng = np.random.default_rng(seed)
    lengths = [int(rng.uniform(4.0, 6.0) * fps) for _ in range(8)]
    labels = np.concatenate([np.full(n, k % 4 + 1) for k, n in enumerate(lengths)])
    means = 2.0 * np.eye(8)[[0, 3, 5, 7, 1, 4, 6, 2]]
    parts = []
    for m, n in zip(means, lengths):
        phase = 0.5 * rng.normal(size=8) / np.sqrt(8)  # a small within-action shift
        x = m + 0.3 * rng.normal(size=(n, 8))
        x[n // 2:] += phase
        parts.append(x)
    features = np.concatenate(parts)
    return LabelledVideo("toy", name, features.astype(np.float32), labels, fps, NAMES)


def test_features_faster_than_the_device_are_taken_every_kth_frame():
    x = np.arange(90, dtype=np.float32).reshape(90, 1)
    sub, rate = at_device_rate(x, 30.0)
    assert rate == DEVICE_FPS and sub[:3, 0].tolist() == [0.0, 3.0, 6.0] and len(sub) == 30
    same, rate = at_device_rate(x, 10.0)
    assert rate == 10.0 and np.array_equal(same, x)


@pytest.mark.parametrize("fps", [10.0, 30.0])
def test_the_split_only_row_cuts_back_to_back_actions_where_they_change(fps):
    videos = [back_to_back(f"v{i}", i, fps) for i in range(3)]
    segs = back_half_split_only(videos[0].features, fps, leave_one_out(videos, 0))
    truth = videos[0].segments()
    cuts, true_cuts = segs[1:, 0], truth[1:, 0]
    # Every cut is at a true boundary; Otsu's threshold keeps most of them. (When nearly every
    # candidate peak is a true boundary, as here, Otsu still splits them in two groups and the
    # weakest changes are left uncut: the unsupervised threshold assumes noise peaks exist.)
    assert all(np.min(np.abs(true_cuts - c)) <= 0.5 for c in cuts)
    found = sum(np.min(np.abs(cuts - t)) <= 0.5 for t in true_cuts)
    assert found >= 0.6 * len(true_cuts)
