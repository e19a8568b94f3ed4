"""Otsu pseudo-labels of the velocity-energy proxy."""

import numpy as np
import pytest

from calibration.proxy import CalibrationError, otsu_split, otsu_threshold, proxy_from_tracks, pseudo_labels
from edge.pipeline import velocity_energy


def test_otsu_splits_a_bimodal_histogram_between_its_modes():
    rng = np.random.default_rng(500)
    rest = rng.normal(1.0, 0.3, 3000)
    active = rng.normal(5.0, 0.4, 1000)
    split = otsu_split(np.concatenate([rest, active]))
    assert 2.0 < split.threshold < 4.0
    labels = pseudo_labels(np.concatenate([rest, active]), split.threshold)
    assert labels[:3000].mean() < 0.01 and labels[3000:].mean() > 0.99
    assert split.separability > 0.9
    assert split.active_fraction == pytest.approx(0.25, abs=0.01)


def test_otsu_threshold_maximises_the_between_class_variance_of_the_256_bins():
    rng = np.random.default_rng(501)
    values = np.concatenate([rng.gamma(2.0, 0.3, 700), rng.normal(3.0, 0.5, 300)])
    counts, edges = np.histogram(values, bins=256)
    centres = 0.5 * (edges[:-1] + edges[1:])
    best_k, best_var = None, -1.0
    for k in range(255):  # direct: split after bin k, class means and weights by brute force
        lo, hi = counts[:k + 1], counts[k + 1:]
        if lo.sum() == 0 or hi.sum() == 0:
            continue
        w0, w1 = lo.sum() / counts.sum(), hi.sum() / counts.sum()
        m0 = (lo * centres[:k + 1]).sum() / lo.sum()
        m1 = (hi * centres[k + 1:]).sum() / hi.sum()
        var = w0 * w1 * (m0 - m1) ** 2
        if var > best_var + 1e-12:
            best_k, best_var = k, var
    assert otsu_threshold(values) == pytest.approx(edges[best_k + 1])


def test_constant_proxy_has_no_split_and_no_activity():
    split = otsu_split(np.full(50, 0.7))
    assert split.threshold == 0.7 and split.separability == 0.0
    assert not pseudo_labels(np.full(50, 0.7), split.threshold).any()


def test_a_proxy_without_finite_values_is_a_calibration_error():
    with pytest.raises(CalibrationError, match="no finite value"):
        otsu_split(np.array([np.nan, np.inf]))


def test_nan_steps_are_rest_in_the_pseudo_labels():
    assert pseudo_labels(np.array([np.nan, 2.0, 0.1]), 1.0).tolist() == [False, True, False]


def test_proxy_from_tracks_is_the_devices_velocity_energy_per_step():
    rng = np.random.default_rng(502)
    vel = rng.normal(0, 2, (20, 9, 2)).astype(np.float32)
    vis = rng.random((20, 9)) > 0.3
    vis[4] = False
    got = proxy_from_tracks(vel, vis)
    assert got.tolist() == [velocity_energy(vel[t], vis[t]) for t in range(20)]
    assert got[4] == 0.0
