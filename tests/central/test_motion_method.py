"""The motion summary (`edge.motion_summary`): the device computes it per segment from its own
tracker steps, the segment message carries it, the store keeps it, the "motion" embedding
clusters it, and a motion library labels a device's segments as central assigned them."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from central.cluster_run import run_clustering
from central.clustering import ClusterOptions
from central.ingest import validate_segment
from central.library_export import export_library
from central.registry import ModelRegistry, add_model
from central.store import Store
from central_testkit import make_segments, motif_motion, segment_payloads
from edge.errors import ConfigError
from edge.messages import MessageError, SegmentMessage
from edge.model import load_model_directory
from edge.motion_summary import (MOTION_DIM, MOTION_KIND, STEP_DIM, MotionSummary, cell_index, decode_motion,
                                 encode_motion)

GRID = 20


def segments_with_motion(n: int, seed: int = 0) -> tuple[list, list[int]]:
    rng = np.random.default_rng(seed)
    segments = make_segments(n, seed=seed)
    kinds = [i % 3 for i in range(n)]
    for s, k in zip(segments, kinds):
        s.motion = motif_motion(k, rng)
    return segments, kinds


# -- the summary --------------------------------------------------------------------------------------
def test_cells_split_the_grid_evenly_and_a_step_is_the_cell_means():
    cells = cell_index(GRID)
    assert np.bincount(cells).tolist() == [25] * 16
    v = np.zeros((GRID * GRID, 2), np.float32)
    v[0] = (4.0, -2.0)  # the top-left point only
    visible = np.ones(GRID * GRID, bool)
    row = MotionSummary(GRID).step(v, visible).reshape(16, 5)
    assert row[0, 0] == pytest.approx(4.0 / 25) and row[0, 1] == pytest.approx(-2.0 / 25)
    speed = np.hypot(4, 2)
    assert row[0, 2] == pytest.approx(np.log1p(speed / 25))
    # Divergence: d vx/dx is -4 at the point (one-sided) and -2 right of it (central difference),
    # d vy/dy is +2 at the point and +1 below it; their cell mean is -3 / 25.
    assert row[0, 3] == pytest.approx(-3.0 / 25)
    assert row[0, 4] == pytest.approx(np.log1p(np.sqrt(speed**2 / 25 - (speed / 25) ** 2)))
    assert np.all(row[1:] == 0)
    visible[0] = False  # an invisible point counts as still, whatever velocity it reports
    assert np.all(MotionSummary(GRID).step(v, visible) == 0)
    with pytest.raises(ValueError, match="expected \\(400, 2\\)"):
        MotionSummary(GRID).step(np.zeros((10, 2)), None)


def test_encoding_round_trips_at_float16_precision_and_refuses_garbage():
    x = np.random.default_rng(0).normal(size=MOTION_DIM).astype(np.float32)
    text = encode_motion(x)
    assert len(text) == 1072
    assert np.allclose(decode_motion(text), x, rtol=1e-3, atol=1e-3)
    from edge.motion_summary import MotionError

    with pytest.raises(MotionError, match="finite"):
        encode_motion(np.full(MOTION_DIM, np.nan))
    with pytest.raises(MotionError, match="base64"):
        decode_motion("not base64 !!")
    with pytest.raises(MotionError, match="expected 802 \\(401 float16"):
        decode_motion(encode_motion(x)[:100])


# -- the message ----------------------------------------------------------------------------------------
def test_the_message_carries_the_summary_and_old_or_unknown_ones_still_load():
    seg = segments_with_motion(1)[0][0]
    msg = SegmentMessage.from_segment(seg, device_id="d", site="s", boot_id="b", seq=0)
    payload = json.loads(msg.to_json())
    assert payload["motion"] == {"kind": MOTION_KIND, "values": seg.motion}
    assert SegmentMessage.from_json(msg.to_json()).motion == seg.motion
    # A device without it, an older schema, a newer device's unknown kind: the segment loads.
    del payload["motion"]
    assert SegmentMessage.from_dict(payload).motion is None
    payload["motion"] = {"kind": "grid8-stats/2", "values": "whatever a newer release sends"}
    assert SegmentMessage.from_dict(payload).motion is None
    payload["schema"] = "laps.segment/1"
    assert SegmentMessage.from_dict(payload).motion is None
    payload["schema"] = "laps.segment/2"
    payload["motion"] = {"kind": MOTION_KIND, "values": seg.motion[:-8]}
    with pytest.raises(MessageError, match="motion.values"):
        SegmentMessage.from_dict(payload)
    payload["motion"] = [1, 2, 3]
    with pytest.raises(MessageError, match="expected an object with kind and values"):
        SegmentMessage.from_dict(payload)


# -- the store --------------------------------------------------------------------------------------------
def test_the_store_keeps_the_summary_on_both_backends(store):
    segments, _ = segments_with_motion(3)
    segments[1].motion = None  # an older device
    store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segments)], [])
    got = {s.segment_id: s.motion for s in store.segments()}
    assert got[segments[1].segment_id] is None
    for s in (segments[0], segments[2]):
        assert np.array_equal(got[s.segment_id], decode_motion(s.motion))
        assert got[s.segment_id].dtype == np.float32 and got[s.segment_id].shape == (MOTION_DIM,)


def test_a_store_from_before_motion_summaries_gains_the_column(tmp_path):
    old, new = segments_with_motion(2)[0]
    old.motion = None
    path = tmp_path / "c.sqlite"
    with Store(path) as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads([old])], [])
    db = sqlite3.connect(path)  # the schema-4 file the previous release wrote
    db.execute("ALTER TABLE segments DROP COLUMN motion")
    db.execute("UPDATE meta SET value = '4' WHERE name = 'schema_version'")
    db.commit()
    db.close()
    with Store(path) as store:
        assert store.schema_version() == 5
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads([new], device="dev-2")], [])
        got = {s.segment_id: s.motion for s in store.segments()}
    assert got[old.segment_id] is None and got[new.segment_id] is not None


# -- clustering and the device's labels -------------------------------------------------------------------
@pytest.fixture
def motion_store(tmp_path, tiny_model_dir):
    registry = ModelRegistry(add_model(tmp_path / "models", tiny_model_dir).parent)
    segments, kinds = segments_with_motion(45, seed=4)
    for s in segments[:5]:
        s.motion = None  # from devices older than the summary
    store = Store(tmp_path / "c.sqlite")
    store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segments)], [])
    truth = {s.segment_id: k for s, k in zip(segments, kinds)}
    yield store, registry, truth
    store.close()


def test_motion_clusters_the_motifs_and_counts_what_it_left_out(motion_store, caplog):
    store, registry, truth = motion_store
    run = run_clustering(store, registry, methods=("motion", "mean"), options=ClusterOptions(k=3, n_init=3),
                         truth=truth, save_rule="best")
    assert run.skipped_no_motion == 5 and len(run.segment_ids) == 40
    assert "5 segment(s) carry no motion summary" in caplog.text
    assert run.results["motion"].embeddings.shape == (40, MOTION_DIM)
    assert run.results["motion"].metrics["nmi"] == pytest.approx(1.0)
    # Without the motion method nothing is left out.
    plain = run_clustering(store, registry, methods=("mean",), options=ClusterOptions(k=3, n_init=2), save=False)
    assert plain.skipped_no_motion == 0 and len(plain.segment_ids) == 45
    saved = [r for r in store.cluster_runs() if r["run_id"] == run.run_id][0]
    assert saved["params"]["skipped_no_motion"] == 5


def test_too_few_segments_with_a_summary_is_a_one_line_error_with_the_fix(tmp_path, tiny_model_dir):
    registry = ModelRegistry(add_model(tmp_path / "models", tiny_model_dir).parent)
    segments = make_segments(4)
    with Store(tmp_path / "c.sqlite") as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segments)], [])
        with pytest.raises(ConfigError, match="drop the motion method") as err:
            run_clustering(store, registry, methods=("motion",), options=ClusterOptions(k=2))
    assert "\n" not in str(err.value)


def test_a_motion_library_labels_segments_as_central_assigned_them(motion_store, tmp_path):
    store, registry, truth = motion_store
    run = run_clustering(store, registry, methods=("motion",), options=ClusterOptions(k=3, n_init=3), truth=truth)
    model = export_library(store, registry, tmp_path / "with-library", run_id=run.run_id)
    lib = load_model_directory(model.path).library
    assert lib.method == "motion" and lib.token_mean is None
    central = store.assignments(run.run_id, run.segment_ids)
    from edge.segments import Segment

    for s in store.segments():
        seg = Segment(s.segment_id, s.start_frame, s.end_frame, 0.0, 1.0, s.fps, s.start_utc, s.end_utc,
                      codes=s.codes.tolist(), motion=None if s.motion is None else encode_motion(s.motion))
        label = lib.label_segment(seg)
        if s.motion is None:
            assert label is None
            continue
        cluster, distance = central[s.segment_id]
        assert label.cluster == cluster and label.distance == pytest.approx(distance, abs=1e-5)


# -- the device pipeline --------------------------------------------------------------------------------------
def test_each_device_segment_carries_the_summary_of_its_own_frames():
    from benchmarks.clustering import ReplayTracker
    from edge.loop import run_stream
    from edge.pipeline import build_pipeline
    from edge.sources.blank import BlankSource

    # Two bursts of motion in different quadrants, separated and followed by stillness.
    n = 260
    rng = np.random.default_rng(1)
    velocity = np.zeros((n, GRID * GRID, 2), np.float32)
    rows, cols = np.divmod(np.arange(GRID * GRID), GRID)
    top_left, bottom_right = (rows < 10) & (cols < 10), (rows >= 10) & (cols >= 10)
    velocity[20:60][:, top_left, 0] = 4.0 + rng.normal(0, 0.2, (40, 1))
    velocity[120:170][:, bottom_right, 1] = -4.0 + rng.normal(0, 0.2, (50, 1))
    pipe = build_pipeline(providers="cpu", keep_keyframes=False)
    pipe.tracker = ReplayTracker(velocity, np.ones(velocity.shape[:2], bool))
    segments = run_stream(BlankSource(n, pipe.fps, pipe.input_size), pipe)
    assert len(segments) == 2
    summary = MotionSummary(GRID)
    for s in segments:
        steps = np.stack([summary.step(velocity[f], None) for f in range(s.start_frame, s.end_frame)])
        assert np.array_equal(decode_motion(s.motion), decode_motion(encode_motion(MotionSummary.segment(steps))))
    first, second = (decode_motion(s.motion)[:STEP_DIM].reshape(16, 5) for s in segments)
    assert first[0, 0] > 1 and first[15, 1] == 0      # mean vx of the top-left cell; bottom-right still
    assert second[15, 1] < -1 and second[0, 0] == 0
    # Only the steps a future segment could still need are kept (the look-back ring).
    assert len(pipe._motion) <= pipe._assembler.lookback_steps
