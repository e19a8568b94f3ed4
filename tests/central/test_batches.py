"""The batch endpoint with the device's own uploader (edge.upload): idempotent, hash-checked, linked."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from central.batches import BatchError, receive_batch
from central.config import HttpConfig
from central.http_receiver import BatchServer
from central.store import Store
from central_testkit import make_segments
from edge.upload import BatchSpool, BatchUploader, UploadError


def _jpeg(value: int) -> bytes:
    return cv2.imencode(".jpg", np.full((24, 32, 3), value, np.uint8))[1].tobytes()


@pytest.fixture
def endpoint(tmp_path):
    store = Store(tmp_path / "c.sqlite")
    server = BatchServer(HttpConfig(host="127.0.0.1", port=0), store, tmp_path / "data" / "media")
    server.start()
    yield server
    server.stop()
    store.close()


def _sealed_batch(tmp_path, segments, device="dev-1", clip=False):
    spool = BatchSpool(tmp_path / "spool", device_id=device, site="site-a")
    for s in segments:
        spool.add_segment(s.segment_id, {f: _jpeg(f % 250) for f in s.keyframes}, b"RIFFclip" if clip else None)
    return spool.seal()


def test_a_batch_from_the_device_uploader_is_stored_and_linked_to_its_segments(endpoint, tmp_path):
    segs = make_segments(3, keyframes=2)
    batch = _sealed_batch(tmp_path, segs, clip=True)
    status = BatchUploader(endpoint.url, "dev-1").put(batch)
    assert status == 201
    media = endpoint.store.media([s.segment_id for s in segs])
    for s in segs:
        frames = sorted(f.frame for f in media[s.segment_id] if f.kind == "keyframe")
        assert frames == s.keyframes
        assert [f.kind for f in media[s.segment_id]].count("clip") == 1
        for f in media[s.segment_id]:
            assert (endpoint.media_dir / f.path).is_file()
    first = next(f for f in media[segs[0].segment_id] if f.frame == segs[0].keyframes[0])
    assert (endpoint.media_dir / first.path).read_bytes() == _jpeg(segs[0].keyframes[0] % 250)


def test_putting_the_same_batch_again_answers_200_and_changes_nothing(endpoint, tmp_path):
    batch = _sealed_batch(tmp_path, make_segments(2, keyframes=1))
    uploader = BatchUploader(endpoint.url, "dev-1")
    assert uploader.put(batch) == 201
    before = endpoint.store.link_counts()
    assert uploader.put(batch) == 200
    assert endpoint.store.link_counts() == before
    assert endpoint.stats == {"created": 1, "repeated": 1, "refused": 0, "errors": 0, "unauthorised": 0,
                              "forbidden": 0, "timeouts": 0, "busy": 0}


def test_a_body_that_does_not_hash_to_its_name_is_refused(endpoint, tmp_path):
    batch = _sealed_batch(tmp_path, make_segments(1, keyframes=1))
    wrong = "0" * 64
    req = urllib.request.Request(f"{endpoint.url}/v1/batches/dev-1/{wrong}", data=batch.path.read_bytes(), method="PUT")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400
    assert "hashes to" in err.value.read().decode()
    assert endpoint.store.link_counts() == {"linked": 0, "waiting_for_segment": 0}


def test_a_batch_for_another_device_than_its_manifest_is_refused(endpoint, tmp_path):
    batch = _sealed_batch(tmp_path, make_segments(1, keyframes=1), device="dev-1")
    with pytest.raises(UploadError, match="HTTP 400"):
        BatchUploader(endpoint.url, "dev-2").put(batch)


def test_an_archive_member_the_manifest_does_not_list_is_refused(tmp_path):
    seg = make_segments(1)[0]
    manifest = {"schema": "laps.batch/1", "device_id": "dev-1", "site": "s", "created": "2026-01-01T00:00:00Z",
                "segments": [{"segment_id": seg.segment_id, "files": []}]}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("manifest.json", json.dumps(manifest).encode()), ("../evil.sh", b"rm -rf /")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path = tmp_path / "b.tar"
    path.write_bytes(buf.getvalue())
    import hashlib

    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    with Store(tmp_path / "c.sqlite") as store, pytest.raises(BatchError, match="does not list"):
        receive_batch(store, tmp_path / "media", "dev-1", sha, path)
    assert not (tmp_path / "evil.sh").exists()


def test_a_token_protected_endpoint_refuses_a_device_without_it(tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    with Store(tmp_path / "c.sqlite") as store:
        server = BatchServer(HttpConfig(host="127.0.0.1", port=0, token_file=str(token)), store, tmp_path / "media")
        server.start()
        try:
            batch = _sealed_batch(tmp_path, make_segments(1, keyframes=1))
            with pytest.raises(UploadError, match="HTTP 401"):
                BatchUploader(server.url, "dev-1").put(batch)
            assert BatchUploader(server.url, "dev-1", token="s3cret").put(batch) == 201
        finally:
            server.stop()


def test_media_that_arrives_before_its_segment_links_once_the_segment_is_stored(endpoint, tmp_path):
    from central_testkit import segment_payloads

    from central.ingest import validate_segment

    segs = make_segments(2, keyframes=1)
    BatchUploader(endpoint.url, "dev-1").put(_sealed_batch(tmp_path, segs))
    assert endpoint.store.link_counts() == {"linked": 0, "waiting_for_segment": 2}
    endpoint.store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segs)], [])
    assert endpoint.store.link_counts() == {"linked": 2, "waiting_for_segment": 0}
