"""Batch upload against a real HTTP receiver on loopback: archive + manifest, idempotent PUT,
kept on disk until acknowledged, disk cap with counted eviction."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile

import cv2
import numpy as np
import pytest

from edge.messages import BatchManifest
from edge.segments import uuid7
from edge.recent_frames import ClipRecorder
from edge.upload import BatchSpool, BatchUploader, UploadError, UploadWorker


def jpeg(value: int, size: int = 32) -> bytes:
    img = np.random.default_rng(value).integers(0, 255, (size, size, 3), dtype=np.uint8)
    return cv2.imencode(".jpg", img)[1].tobytes()


def make_worker(spool: BatchSpool, url: str, announced: list) -> UploadWorker:
    return UploadWorker(spool, BatchUploader(url, "dev-1", timeout_s=5.0), interval_s=3600,
                        announce=lambda m: announced.append(m.to_dict()))


@pytest.fixture
def spool(tmp_path):
    return BatchSpool(tmp_path / "upload", device_id="dev-1", site="site-a")


def test_sealed_batch_is_a_tar_with_a_manifest_of_ids_files_and_hashes(spool):
    ids = [str(uuid7()) for _ in range(2)]
    spool.add_segment(ids[0], {3: jpeg(1), 7: jpeg(2)})
    spool.add_segment(ids[1], {12: jpeg(3)}, clip=b"RIFF-fake-avi")
    batch = spool.seal()
    data = batch.path.read_bytes()
    assert batch.sha256 == hashlib.sha256(data).hexdigest() and batch.path.name == f"{batch.sha256}.tar"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())
        BatchManifest.from_dict(manifest)
        assert names[0] == "manifest.json"
        assert [s["segment_id"] for s in manifest["segments"]] == ids
        for seg in manifest["segments"]:
            for f in seg["files"]:
                assert hashlib.sha256(tar.extractfile(f["file"]).read()).hexdigest() == f["sha256"]
    kinds = [f["kind"] for f in manifest["segments"][1]["files"]]
    assert sorted(kinds) == ["clip", "keyframe"]
    assert manifest["segments"][0]["files"][0]["frame"] == 3
    assert spool.seal() is None  # nothing left incoming


def test_worker_uploads_announces_and_deletes_after_acknowledgement(spool, receiver):
    sid = str(uuid7())
    spool.add_segment(sid, {5: jpeg(5)})
    announced: list[dict] = []
    assert make_worker(spool, receiver.url, announced).run_once() == 1
    stored = receiver.stored("dev-1")
    assert len(stored) == 1
    assert announced[0]["archive"]["sha256"] == stored[0].stem
    assert announced[0]["archive"]["path"] == f"/v1/batches/dev-1/{stored[0].stem}"
    assert announced[0]["segments"][0]["segment_id"] == sid
    assert spool.batches() == [] and spool.stats()["uploaded_batches"] == 1


def test_a_batch_evicted_during_a_round_is_skipped_and_the_rest_are_uploaded(spool, receiver):
    for i in range(2):
        spool.add_segment(str(uuid7()), {i: jpeg(i)})
        spool.seal()
    evicted: list[int] = []

    class FloorStrikesFirst(BatchUploader):
        """The disk floor evicts the oldest batch after the round listed it, before its PUT."""

        def put(self, batch):
            if not evicted:
                evicted.append(spool.evict_oldest(1, "disk below its floor"))
            return super().put(batch)

    worker = UploadWorker(spool, FloorStrikesFirst(receiver.url, "dev-1", timeout_s=5.0), interval_s=3600,
                          announce=[].append)
    assert worker.run_once() == 1
    assert evicted[0] > 0 and spool.stats()["evicted_batches"] == 1
    assert len(receiver.stored("dev-1")) == 1 and spool.batches() == [] and worker.last_error == ""


def test_stopping_the_worker_uploads_what_came_in_since_the_last_round(spool, receiver):
    announced: list = []
    worker = make_worker(spool, receiver.url, announced)  # interval 3600 s: no regular round runs
    worker.start()
    spool.add_segment(str(uuid7()), {5: jpeg(1)})
    worker.stop(timeout=5.0)
    assert len(receiver.stored("dev-1")) == 1 and len(announced) == 1
    assert spool.batches() == []


def test_stopping_without_a_receiver_keeps_the_last_segments_sealed_for_the_next_start(spool, receiver):
    dead_url = f"http://127.0.0.1:{receiver.port + 1 if receiver.port < 65535 else 1}"
    worker = make_worker(spool, dead_url, [])
    worker.start()
    spool.add_segment(str(uuid7()), {5: jpeg(1)})
    worker.stop(timeout=1.0)
    assert len(spool.batches()) == 1  # sealed, on disk, first in line next time


def test_repeating_a_put_is_harmless(spool, receiver):
    spool.add_segment(str(uuid7()), {1: jpeg(1)})
    batch = spool.seal()
    up = BatchUploader(receiver.url, "dev-1")
    assert up.put(batch) == 201
    assert up.put(batch) == 200
    assert len(receiver.stored("dev-1")) == 1


def test_unreachable_receiver_keeps_the_batch_and_says_so_once(spool, receiver, caplog):
    spool.add_segment(str(uuid7()), {1: jpeg(1)})
    dead_url = f"http://127.0.0.1:{receiver.port + 1 if receiver.port < 65535 else 1}"
    announced: list = []
    worker = make_worker(spool, dead_url, announced)
    with caplog.at_level(logging.ERROR, logger="edge.upload"):
        assert worker.run_once() == 0
        assert worker.run_once() == 0
    assert len(spool.batches()) == 1 and announced == []
    assert caplog.text.count("unreachable") == 1 and "kept for retry" in caplog.text
    assert "unreachable" in worker.stats()["last_error"]


def test_failed_upload_is_retried_next_round(spool, receiver):
    spool.add_segment(str(uuid7()), {1: jpeg(1)})
    receiver.fail_next = 1
    announced: list = []
    worker = make_worker(spool, receiver.url, announced)
    assert worker.run_once() == 0 and len(spool.batches()) == 1
    assert worker.run_once() == 1 and spool.batches() == []
    assert [code for _, code in receiver.requests] == [503, 201]


def test_receiver_rejecting_a_corrupt_archive_keeps_it_with_the_http_status(spool, receiver):
    spool.add_segment(str(uuid7()), {1: jpeg(1)})
    batch = spool.seal()
    with open(batch.path, "r+b") as fh:  # bit rot after sealing
        fh.seek(600)
        fh.write(b"\x00\x01")
    with pytest.raises(UploadError, match="HTTP 400") as info:
        BatchUploader(receiver.url, "dev-1").put(batch)
    assert "\n" not in str(info.value)
    assert batch.path.exists()


def test_disk_cap_evicts_the_oldest_batch_and_counts_it(tmp_path, caplog):
    spool = BatchSpool(tmp_path / "up", device_id="d", site="s", max_bytes=64 * 1024)
    first = None
    with caplog.at_level(logging.WARNING, logger="edge.upload"):
        for i in range(6):
            spool.add_segment(str(uuid7()), {0: b"x" * 20_000})
            batch = spool.seal()
            first = first or batch
            spool.enforce_cap()
    left = {b.sha256 for b in spool.batches()}
    assert first.sha256 not in left
    stats = spool.stats()
    assert stats["evicted_batches"] >= 1 and stats["disk_bytes"] <= 64 * 1024
    assert "evicted batch" in caplog.text
    # counters survive a restart of the spool
    assert BatchSpool(tmp_path / "up", device_id="d", site="s").counters["evicted_batches"] == stats["evicted_batches"]


def test_incoming_segments_survive_a_restart_and_leftovers_are_cleared(tmp_path):
    root = tmp_path / "up"
    spool = BatchSpool(root, device_id="d", site="s")
    sid = str(uuid7())
    spool.add_segment(sid, {1: jpeg(1)})
    (root / "incoming" / ".tmp-crashed").mkdir()
    again = BatchSpool(root, device_id="d", site="s")
    assert not (root / "incoming" / ".tmp-crashed").exists()
    assert again.seal().segment_ids == [sid]


def test_adding_the_same_segment_twice_stores_it_once(spool):
    sid = str(uuid7())
    assert spool.add_segment(sid, {1: jpeg(1)}) > 0
    assert spool.add_segment(sid, {1: jpeg(1)}) == 0
    assert spool.stats()["pending_segments"] == 1


def test_clip_recorder_cuts_a_readable_mjpeg_clip_of_the_segment(tmp_path):
    rec = ClipRecorder(fps=10.0, max_s=2.0, scale=0.5)
    for i in range(30):
        rec.add(i, np.full((120, 160, 3), i * 8, np.uint8))
    clip = rec.clip(5, 25)  # only the newest 2 s (20 frames) are still in the ring
    assert clip is not None
    path = tmp_path / "clip.avi"
    path.write_bytes(clip)
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 15  # frames 10..24
    assert rec.clip(0, 5) is None
