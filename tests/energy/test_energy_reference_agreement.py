"""The Numba kernel and the independent plain-Python reference agree on every series and
parameter set (events, final event, kept and discarded segments, smoothed energy)."""

import numpy as np
from hypothesis import given, settings

from edge.energy import run_series

from .reference_kernel import reference_run
from .strategies import series_and_params


@settings(max_examples=400, deadline=None)
@given(series_and_params())
def test_kernel_matches_reference(case):
    energy, params = case
    got = run_series(np.asarray(energy, dtype=np.float64), params)
    ref = reference_run(energy, **params.to_dict())
    assert got.events.tolist() == ref["events"]
    assert got.final_event == ref["final_event"]
    assert [tuple(s) for s in got.segments.tolist()] == ref["kept"]
    assert [tuple(s) for s in got.discarded.tolist()] == ref["discarded"]
    np.testing.assert_array_equal(got.smoothed, np.asarray(ref["smoothed"], dtype=np.float64))
    np.testing.assert_array_equal(got.on, ref["mask"])


@settings(max_examples=100, deadline=None)
@given(series_and_params())
def test_kept_segments_respect_min_and_max_steps(case):
    energy, params = case
    seg = run_series(np.asarray(energy, dtype=np.float64), params).segments
    lengths = seg[:, 1] - seg[:, 0]
    assert (lengths >= max(params.min_steps, 1)).all()
    if params.max_steps:
        assert (lengths <= params.max_steps).all()
    assert (seg[1:, 0] >= seg[:-1, 1]).all()   # ordered, never overlapping
