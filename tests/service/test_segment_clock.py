"""Segment times follow the source's clock, anchored so that a replay faster than real time
never stamps a segment in the future (README: "Which clock segment times follow")."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import pytest

from edge.segments import stream_origin

from .helpers import wait_until, write_config
from .test_service import finish, run_service

OPENED = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def test_a_live_source_counts_from_the_moment_it_opened():
    assert stream_origin(OPENED, frame_count=None, fps=10.0, paced=False) == OPENED


def test_a_paced_replay_counts_from_the_moment_it_opened():
    assert stream_origin(OPENED, frame_count=600, fps=10.0, paced=True) == OPENED


def test_an_unpaced_replay_ends_at_the_moment_it_opened():
    assert stream_origin(OPENED, frame_count=600, fps=10.0, paced=False) == OPENED - timedelta(seconds=60)


def _utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.broker
def test_a_replay_faster_than_real_time_publishes_no_segment_that_ends_after_its_arrival(
        broker, subscriber_factory, tmp_path):
    sub = subscriber_factory(broker.port)
    # 18 s of video, processed in a few seconds: the old clock (anchored at start-up) stamped
    # the last segments ~10 s in the future.
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state",
                       source="synthetic://assembly?seed=903&minutes=0.3&size=320x240")
    t0 = time.time()
    rc, err = finish(run_service(cfg), timeout=120)
    wall_s = time.time() - t0
    assert rc == 0, err[-2000:]
    assert wait_until(lambda: len(sub.payloads("segments")) >= 3, 5)
    assert wall_s < 18.0, f"the replay took {wall_s:.1f} s, not faster than real time: the test shows nothing"
    # Subscriber arrival times are monotonic; turn them into wall-clock seconds.
    offset = time.time() - time.monotonic()
    with sub._lock:
        arrivals = [(p, when + offset) for t, p, _, when in sub.messages if t.endswith("/segments")]
    for payload, arrived in arrivals:
        msg = json.loads(payload)
        assert _utc(msg["end"]["utc"]) <= arrived + 0.05, (msg["end"]["utc"], arrived)
        # durations stay those of the source: end - start = frames / fps
        frames = msg["end"]["frame"] - msg["start"]["frame"]
        assert abs(_utc(msg["end"]["utc"]) - _utc(msg["start"]["utc"]) - frames / msg["fps"]) < 0.002
    first = min(json.loads(p)["start"]["utc"] for p, _ in arrivals)
    assert _utc(first) >= t0 - 18.0 - 1.0  # the replay counts as the 18 s before it was opened
