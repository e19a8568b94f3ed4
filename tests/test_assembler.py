"""SegmentAssembler and segments_from_features: Segment records that match the kernel's segments."""

import tracemalloc
import uuid
from datetime import datetime, timezone

import numpy as np
import pytest

from edge.assembler import (
    AssemblerError,
    SegmentAssembler,
    keyframe_indices,
    segments_from_features,
)
from edge.energy import HysteresisParams, energy_step, finish, new_state, run_series
from edge.energy.series import run_series_latent
from edge.errors import ConfigError

ORIGIN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
FPS = 10.0


def bursty_energy(n: int, seed: int) -> np.ndarray:
    """Rest/activity blocks of random lengths (seeded)."""
    rng = np.random.default_rng(seed)
    out = []
    active = False
    while len(out) < n:
        length = int(rng.integers(3, 40))
        level = 2.0 if active else 0.1
        out.extend(level + rng.normal(0, 0.3, length).clip(-0.1, None))
        active = not active
    return np.asarray(out[:n])


def test_segment_frames_and_times_equal_the_kernels_segments():
    e = bursty_energy(2000, 903)
    params = HysteresisParams(theta_on=1.0, max_steps=25)
    segs = segments_from_features(e, FPS, params, origin_utc=ORIGIN)
    expected = run_series(e, params).segments
    assert len(segs) == len(expected) > 10
    assert [[s.start_frame, s.end_frame] for s in segs] == expected.tolist()
    for s in segs:
        assert s.start_s == s.start_frame / FPS and s.end_s == s.end_frame / FPS
        assert s.fps == FPS


def test_utc_times_are_the_origin_plus_the_frame_time():
    e = np.array([0, 0, 0, 2, 2, 2, 2, 0, 0, 0], dtype=float)
    (seg,) = segments_from_features(e, FPS, HysteresisParams(theta_on=1.0), origin_utc=ORIGIN)
    assert seg.start_frame == 3 and seg.end_frame == 7
    assert seg.start_utc == "2025-01-02T03:04:05.300Z"
    assert seg.end_utc == "2025-01-02T03:04:05.700Z"


def test_codes_are_the_codes_of_the_segments_steps():
    e = bursty_energy(600, 904)
    codes = np.arange(600) % 1920
    params = HysteresisParams(theta_on=1.0)
    segs = segments_from_features(e, FPS, params, codes=codes, origin_utc=ORIGIN)
    assert segs
    for s in segs:
        assert s.codes == codes[s.start_frame:s.end_frame].tolist()


def test_energy_statistics_are_over_the_smoothed_energy_inside_the_segment():
    e = bursty_energy(600, 905)
    params = HysteresisParams(theta_on=1.0)
    r = run_series(e, params)
    for s in segments_from_features(e, FPS, params, origin_utc=ORIGIN):
        inside = r.smoothed[s.start_frame:s.end_frame]
        assert s.energy_mean == pytest.approx(inside.mean(), rel=1e-12)
        assert s.energy_max == inside.max()


def test_keyframes_are_first_middle_and_last_frame():
    e = np.array([0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0], dtype=float)
    (seg,) = segments_from_features(e, FPS, HysteresisParams(theta_on=1.0), origin_utc=ORIGIN)
    assert (seg.start_frame, seg.end_frame) == (1, 11)
    assert seg.keyframes == [1, 6, 10]


def test_keyframe_indices_never_repeat_or_leave_the_segment():
    assert keyframe_indices(5, 7, 3) == [5, 6]
    assert keyframe_indices(5, 6, 3) == [5]
    assert keyframe_indices(0, 100, 0) == []


def test_segment_ids_are_unique_uuid7():
    e = bursty_energy(3000, 906)
    segs = segments_from_features(e, FPS, HysteresisParams(theta_on=1.0), origin_utc=ORIGIN)
    ids = [uuid.UUID(s.segment_id) for s in segs]
    assert len(set(ids)) == len(ids) > 20
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    # Time-ordered: the 48-bit timestamp is the segment's start in Unix ms.
    ms = [u.int >> 80 for u in ids]
    assert ms == sorted(ms)
    assert ms[0] == int(ORIGIN.timestamp() * 1000) + segs[0].start_frame * 100


def test_latent_features_give_the_latent_series_segments():
    rng = np.random.default_rng(907)
    active = (np.arange(500) // 30) % 2 == 1
    z = np.cumsum(rng.normal(0, 1, (500, 6)) * np.where(active, 1.0, 0.02)[:, None], axis=0)
    z = z.astype(np.float32)
    params = HysteresisParams(theta_on=1.0)
    segs = segments_from_features(z, FPS, params, origin_utc=ORIGIN)
    expected = run_series_latent(z, params).segments
    assert len(segs) > 3
    assert [[s.start_frame, s.end_frame] for s in segs] == expected.tolist()


def test_segment_open_at_end_of_stream_is_emitted_by_finish():
    e = np.array([0, 2, 2, 2, 2], dtype=float)
    (seg,) = segments_from_features(e, FPS, HysteresisParams(theta_on=1.0), origin_utc=ORIGIN)
    assert (seg.start_frame, seg.end_frame) == (1, 5)


def test_discarded_segments_produce_no_record():
    e = np.array([0, 2, 2, 0, 0, 0, 0], dtype=float)
    params = HysteresisParams(theta_on=1.0, min_steps=3, alpha=1.0)
    assert run_series(e, params).discarded.tolist() == [[1, 3]]
    assert segments_from_features(e, FPS, params, origin_utc=ORIGIN) == []


def test_empty_stream_gives_no_segments():
    assert segments_from_features(np.zeros(0), FPS, HysteresisParams(theta_on=1.0)) == []


def test_memory_stays_bounded_over_a_long_stream():
    params = HysteresisParams(theta_on=1.0, max_steps=40)
    p = params.to_array()
    e = bursty_energy(60_000, 908)
    asm = SegmentAssembler(FPS, origin_utc=ORIGIN, lookback_steps=params.up_steps)
    state = new_state()
    peak_buffer = 0
    tracemalloc.start()
    n_segments = 0
    for t, v in enumerate(e):
        n_segments += len(asm.push(state, energy_step(state, p, v), code=t % 7))
        peak_buffer = max(peak_buffer, asm.buffered_steps)
        if t == 10_000:
            base, _ = tracemalloc.get_traced_memory()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n_segments > 500
    assert peak_buffer <= params.up_steps + params.max_steps + params.down_steps
    assert end - base < 64 * 1024


def test_push_out_of_step_order_is_an_error():
    p = HysteresisParams(theta_on=1.0).to_array()
    state = new_state()
    asm = SegmentAssembler(FPS, origin_utc=ORIGIN)
    energy_step(state, p, 0.0)
    energy_step(state, p, 0.0)
    with pytest.raises(AssemblerError, match="expected step 0"):
        asm.push(state, 0)


def test_lookback_shorter_than_up_steps_is_an_error_naming_the_fix():
    params = HysteresisParams(theta_on=1.0, up_steps=4)
    p = params.to_array()
    state = new_state()
    asm = SegmentAssembler(FPS, origin_utc=ORIGIN, lookback_steps=2)
    with pytest.raises(AssemblerError, match="lookback_steps"):
        for v in (2.0,) * 6:
            asm.push(state, energy_step(state, p, v))


def test_mixing_steps_with_and_without_codes_is_an_error():
    p = HysteresisParams(theta_on=1.0).to_array()
    state = new_state()
    asm = SegmentAssembler(FPS, origin_utc=ORIGIN)
    asm.push(state, energy_step(state, p, 0.0), code=3)
    with pytest.raises(AssemblerError, match="code"):
        asm.push(state, energy_step(state, p, 0.0))


def test_finish_without_an_open_segment_returns_none():
    p = HysteresisParams(theta_on=1.0).to_array()
    state = new_state()
    asm = SegmentAssembler(FPS, origin_utc=ORIGIN)
    asm.push(state, energy_step(state, p, 0.0))
    assert asm.finish(state, finish(state, p)) == []


@pytest.mark.parametrize("kwargs", [{"fps": 0.0}, {"fps": float("nan")}, {"n_keyframes": -1},
                                    {"lookback_steps": 0},
                                    {"origin_utc": datetime(2025, 1, 1)}])
def test_bad_assembler_settings_are_config_errors(kwargs):
    args = {"fps": FPS, **kwargs}
    with pytest.raises(ConfigError):
        SegmentAssembler(**args)


def test_codes_of_the_wrong_length_are_a_config_error():
    with pytest.raises(ConfigError, match="codes"):
        segments_from_features(np.zeros(5), FPS, HysteresisParams(theta_on=1.0), codes=[1, 2])


def test_model_version_is_copied_into_every_segment():
    e = bursty_energy(300, 909)
    segs = segments_from_features(e, FPS, HysteresisParams(theta_on=1.0), model_version="tok-7")
    assert segs and all(s.model_version == "tok-7" for s in segs)


def test_split_segments_match_the_kernel_and_carry_their_own_codes_and_energy():
    rng = np.random.default_rng(77)
    rest, a, b = np.zeros((20, 2)), np.tile([4.0, 0.0], (30, 1)), np.tile([0.0, 4.0], (30, 1))
    z = np.vstack([rest, a + rng.normal(0, 1, a.shape), b + rng.normal(0, 1, b.shape), rest])
    params = HysteresisParams(theta_on=0.5, split_window=5, split_theta=3.0, split_min_steps=5)
    codes = np.arange(len(z)) % 11
    segs = segments_from_features(z, FPS, params, codes=codes, origin_utc=ORIGIN)
    expected = run_series_latent(z, params)
    assert [(s.start_frame, s.end_frame) for s in segs] == [tuple(r) for r in expected.segments.tolist()]
    assert len(segs) == 2 and segs[0].end_frame == segs[1].start_frame
    for seg in segs:
        assert seg.codes == codes[seg.start_frame:seg.end_frame].tolist()
        y = expected.smoothed[seg.start_frame:seg.end_frame]
        assert seg.energy_max == pytest.approx(float(y.max()))
    assert segs[0].segment_id != segs[1].segment_id
