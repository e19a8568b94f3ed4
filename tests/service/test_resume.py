"""Restart on a video file resumes where the last run's committed segments end: a real MJPEG
file, the real `laps-edge run --config` process stopped (SIGTERM) or killed (SIGKILL) part-way
and started again, a real Mosquitto and subscriber seeing every segment of both runs."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge.outbox import Outbox, SourcePosition
from edge.resume import resume_frame, source_identity

from .helpers import wait_until, write_config, write_video

LAPS_EDGE = str(Path(sys.executable).parent / "laps-edge")


def file_config(tmp_path: Path, port: int, video: Path, resume: bool = True) -> Path:
    cfg = write_config(tmp_path / "edge.toml", port=port, state_dir=tmp_path / "state", source=str(video),
                       extra='\n[model]\ndir = "none"\n')
    text = cfg.read_text().replace("reconnect_max_s = 1.0\n\n[mqtt]",
                                   f"reconnect_max_s = 1.0\npace = true\nresume = {'true' if resume else 'false'}\n\n[mqtt]", 1)
    cfg.write_text(text)
    return cfg


def start(cfg: Path) -> subprocess.Popen:
    return subprocess.Popen([LAPS_EDGE, "run", "--config", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def spans_by_boot(sub) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for m in sub.payloads("segments"):
        out.setdefault(m["boot_id"], []).append((m["start"]["frame"], m["end"]["frame"]))
    return {k: sorted(set(v)) for k, v in out.items()}


def stored_position(state: Path) -> tuple[int, int]:
    db = sqlite3.connect(str(state / "outbox.sqlite"))
    try:
        frame, finished = db.execute("SELECT frame, finished FROM source_position").fetchone()
        return int(frame), int(finished)
    finally:
        db.close()


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_restart_on_a_file_resumes_after_the_committed_segments(broker, subscriber_factory, tmp_path, how):
    sub = subscriber_factory(broker.port)
    video = write_video(tmp_path / "station.avi", seconds=30)  # 300 frames at 10 fps, paced: 30 s
    cfg = file_config(tmp_path, broker.port, video)
    first = start(cfg)
    try:
        assert wait_until(lambda: len(sub.payloads("segments")) >= 2, 60), first.stderr.read() if first.poll() else ""
    finally:
        os.kill(first.pid, signal.SIGTERM if how == "sigterm" else signal.SIGKILL)
    first.communicate(timeout=30)
    position, finished = stored_position(tmp_path / "state")
    assert not finished and 0 < position < 300
    (boot1, _), = spans_by_boot(sub).items()

    second = start(cfg)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err[-3000:]
    assert f"resuming {video} at frame {position}" in err
    assert wait_until(lambda: len(spans_by_boot(sub)) == 2, 10)
    spans = spans_by_boot(sub)
    run1, run2 = spans[boot1], next(v for k, v in spans.items() if k != boot1)
    if how == "sigkill":
        # Written in the same transaction as the last segment committed before the kill (the
        # ones not yet sent went out in the second run, still under the first run's boot id).
        assert run1[-1][1] == position
    assert run1[-1][1] <= position <= run2[0][0]  # nothing processed twice, nothing skipped over
    assert all(a[1] <= b[0] for a, b in zip(run1 + run2, (run1 + run2)[1:]))  # no overlap, in order
    assert run2[-1][1] <= 300
    assert stored_position(tmp_path / "state") == (300, 1)

    third = start(cfg)
    out, err = third.communicate(timeout=60)
    assert third.returncode == 0 and "processed to its end by an earlier run" in err
    assert len(spans_by_boot(sub)) == 2  # published nothing


@pytest.mark.broker
@pytest.mark.slow
def test_resume_false_starts_the_file_again_from_its_first_frame(broker, subscriber_factory, tmp_path):
    sub = subscriber_factory(broker.port)
    video = write_video(tmp_path / "station.avi", seconds=8)
    cfg = file_config(tmp_path, broker.port, video, resume=False)
    for _ in range(2):
        proc = start(cfg)
        _, err = proc.communicate(timeout=90)
        assert proc.returncode == 0 and "resuming" not in err, err[-2000:]
    assert wait_until(lambda: len(spans_by_boot(sub)) == 2, 10)
    first, second = spans_by_boot(sub).values()
    assert first == second and first[0][0] < 40  # the same file, processed twice from the start


# -- the pieces -------------------------------------------------------------------------------------
def test_source_identity_follows_content_not_name(tmp_path):
    a = write_video(tmp_path / "a.avi", seconds=2)
    b = tmp_path / "moved.avi"
    b.write_bytes(a.read_bytes())
    c = write_video(tmp_path / "c.avi", seconds=3)
    assert source_identity(str(a)) == source_identity(str(b)) == source_identity(f"file://{b}")
    assert source_identity(str(a)) != source_identity(str(c))
    assert source_identity(str(tmp_path / "missing.avi")) is None
    assert source_identity("synthetic://assembly?seed=7") == "synthetic:synthetic://assembly?seed=7"


def test_position_is_committed_with_the_segment_or_not_at_all(tmp_path):
    with Outbox(tmp_path / "o.sqlite") as ob:
        assert ob.position("file:x") is None
        ob.put("seg-1", "t", b"{}", position=SourcePosition("file:x", 120, 10.0))
        assert ob.position("file:x") == SourcePosition("file:x", 120, 10.0, False)
        assert ob.put("seg-1", "t", b"{}", position=SourcePosition("file:x", 140, 10.0)) is False
        assert ob.position("file:x").frame == 140
        ob.set_position(SourcePosition("file:x", 300, 10.0, finished=True))
    with Outbox(tmp_path / "o.sqlite") as ob:  # survives a reopen
        assert ob.position("file:x") == SourcePosition("file:x", 300, 10.0, True)


def test_a_stored_position_converts_to_the_current_fps():
    assert resume_frame(150, 15.0, 10.0) == 100 and resume_frame(150, 10.0, 10.0) == 150
