"""The batch endpoint under attack and load: per-device credentials (tokens, mutual TLS), no
writing under another device's path or onto its segments, write-once media, concurrent
identical uploads, stalled and unauthenticated bodies, a bounded pool of workers."""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np
import pytest

from central.config import HttpConfig
from central.devices import DeviceRegistry, RegistryView
from central.http_receiver import BatchServer
from central.ingest import validate_segment
from central.store import Store
from central_testkit import make_segments, segment_payloads, wait_until
from edge.upload import BatchSpool, BatchUploader, UploadError
from tests.service.helpers import make_tls_files


def _jpeg(value: int) -> bytes:
    return cv2.imencode(".jpg", np.full((24, 32, 3), value, np.uint8))[1].tobytes()


def _batch(folder, segments, device, value: int = 0):
    spool = BatchSpool(folder, device_id=device, site="plant-a")
    for s in segments:
        spool.add_segment(s.segment_id, {f: _jpeg((f + value) % 250) for f in s.keyframes})
    return spool.seal()


class Fleet:
    """A store, a registry with ws-07 and ws-99 (site plant-a) and the endpoint enforcing it."""

    def __init__(self, tmp_path, **http) -> None:
        self.registry = DeviceRegistry(tmp_path / "devices")
        self.tokens = {d: self.registry.add(d, site="plant-a", hasher="builtin").token for d in ("ws-07", "ws-99")}
        self.store = Store(tmp_path / "c.sqlite")
        cfg = HttpConfig(host="127.0.0.1", port=0, **http)
        self.server = BatchServer(cfg, self.store, tmp_path / "data" / "media",
                                  registry=RegistryView(self.registry.registry_path, recheck_s=0.0))
        self.server.start()

    def uploader(self, path_device: str, as_device: str | None = None, **kw) -> BatchUploader:
        token = self.tokens[as_device or path_device] if as_device != "" else ""
        return BatchUploader(self.server.url, path_device, token=token, **kw)

    def close(self) -> None:
        self.server.stop()
        self.store.close()


@pytest.fixture
def fleet(tmp_path):
    f = Fleet(tmp_path)
    yield f
    f.close()


def test_each_device_uploads_only_with_its_own_token_under_its_own_path(fleet, tmp_path):
    batch = _batch(tmp_path / "spool", make_segments(1, keyframes=1), "ws-07")
    with pytest.raises(UploadError, match="HTTP 401"):
        fleet.uploader("ws-07", as_device="").put(batch)
    with pytest.raises(UploadError, match="HTTP 403.*'ws-99' cannot write under 'ws-07'"):
        fleet.uploader("ws-07", as_device="ws-99").put(batch)
    assert fleet.uploader("ws-07").put(batch) == 201
    fleet.registry.revoke("ws-07")
    with pytest.raises(UploadError, match="HTTP 401.*revoked"):
        fleet.uploader("ws-07").put(batch)
    assert fleet.server.stats["unauthorised"] == 2 and fleet.server.stats["forbidden"] == 1


def test_a_device_cannot_link_media_to_another_devices_segment(fleet, tmp_path):
    theirs, early = make_segments(2, keyframes=1, seed=1)
    fleet.store.ingest([(validate_segment(t, p), t) for t, p in
                        segment_payloads([theirs], site="plant-a", device="ws-07")], [])
    with pytest.raises(UploadError, match="HTTP 403.*sent by device 'ws-07'"):
        fleet.uploader("ws-99").put(_batch(tmp_path / "s1", [theirs], "ws-99"))
    # media that arrives before the segment never links to another device's segment either
    assert fleet.uploader("ws-99").put(_batch(tmp_path / "s2", [early], "ws-99")) == 201
    fleet.store.ingest([(validate_segment(t, p), t) for t, p in
                        segment_payloads([early], site="plant-a", device="ws-07")], [])
    assert fleet.store.media([early.segment_id, theirs.segment_id]) == {early.segment_id: [], theirs.segment_id: []}


def test_stored_media_is_never_overwritten_with_other_bytes(fleet, tmp_path):
    seg = make_segments(1, keyframes=1)[0]
    first = _batch(tmp_path / "s1", [seg], "ws-07", value=0)
    assert fleet.uploader("ws-07").put(first) == 201
    [stored] = fleet.store.media([seg.segment_id])[seg.segment_id]
    original = (fleet.server.media_dir / stored.path).read_bytes()
    other = _batch(tmp_path / "s2", [seg], "ws-07", value=100)  # same segment and frame, other picture
    with pytest.raises(UploadError, match="HTTP 409.*never overwritten"):
        fleet.uploader("ws-07").put(other)
    assert (fleet.server.media_dir / stored.path).read_bytes() == original


def test_sixteen_concurrent_identical_uploads_all_succeed(fleet, tmp_path):
    batch = _batch(tmp_path / "spool", make_segments(4, keyframes=3), "ws-07")
    start = threading.Barrier(16)
    results: list[object] = []

    def put() -> None:
        start.wait()
        try:
            results.append(fleet.uploader("ws-07").put(batch))
        except UploadError as err:
            results.append(str(err))

    threads = [threading.Thread(target=put) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results, key=str) == [200] * 15 + [201], results  # one stores it, fifteen find it stored
    assert fleet.server.stats["errors"] == 0
    assert fleet.store.link_counts()["waiting_for_segment"] == 12


def _raw(server: BatchServer, head: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(head.encode())
    return sock


def _read_all(sock: socket.socket) -> bytes:
    """What the endpoint answers until it closes the connection."""
    out = b""
    try:
        while chunk := sock.recv(4096):
            out += chunk
    except OSError:
        pass
    return out


def _put_head(device: str, length: int, token: str = "", expect: bool = False) -> str:
    head = f"PUT /v1/batches/{device}/{'a' * 64} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    if expect:
        head += "Expect: 100-continue\r\n"
    return head + "\r\n"


def test_an_unauthenticated_100_mb_upload_is_refused_without_reading_it(fleet):
    total = 100 * 1024 * 1024
    sock = _raw(fleet.server, _put_head("ws-07", total, token="not-a-token"))
    block, sent, answer = b"\0" * (256 * 1024), 0, b""
    try:
        while sent < total:
            sock.sendall(block)
            sent += len(block)
    except OSError:
        pass  # the endpoint answered and closed: the rest of the body is never read
    try:
        answer = sock.recv(4096)
    except OSError:
        pass
    sock.close()
    print(f"\nunauthenticated upload: {sent / 2**20:.1f} MiB of 100 MiB sent before the endpoint closed")
    assert sent < 32 * 1024 * 1024, f"the endpoint accepted {sent} bytes of an unauthenticated body"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 401")
    assert fleet.server.stats["unauthorised"] == 1


def test_a_client_that_asks_first_is_refused_before_it_sends_a_byte(fleet):
    sock = _raw(fleet.server, _put_head("ws-07", 100 * 1024 * 1024, token=fleet.tokens["ws-99"], expect=True))
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 403") and b"cannot write under 'ws-07'" in answer


def test_a_stalled_body_is_closed_and_the_pool_stays_bounded(tmp_path):
    fleet = Fleet(tmp_path, workers=2, queue=2, timeout_s=1.0)
    socks: list[socket.socket] = []
    try:
        before = threading.active_count()
        # six connections that send their headers and half a body, then nothing
        for _ in range(6):
            socks.append(_raw(fleet.server, _put_head("ws-07", 1000, token=fleet.tokens["ws-07"]) + "x" * 500))
        assert threading.active_count() - before <= 2  # a fixed pool, not a thread per connection
        # two are served (and time out), two wait in the queue, the last two are turned away at once
        busy = [s.recv(4096) for s in socks[4:]]
        assert all(b.startswith(b"HTTP/1.1 503") for b in busy), busy
        for s in socks[:4]:
            s.settimeout(10)
            answer = s.recv(4096)  # 408, then closed: within a few timeouts, not never
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
        assert fleet.server.stats["timeouts"] >= 2 and fleet.server.stats["busy"] == 2
        # the endpoint serves again
        batch = _batch(tmp_path / "spool", make_segments(1, keyframes=1), "ws-07")
        assert fleet.uploader("ws-07").put(batch) == 201
    finally:
        for s in socks:
            s.close()
        fleet.close()


def test_mutual_tls_takes_the_device_id_from_the_client_certificate(tmp_path):
    ca, cert, key = make_tls_files(tmp_path / "pki", clients=("ws-07", "ws-99", "stranger"))
    pki = tmp_path / "pki"
    fleet = Fleet(tmp_path, cert=cert, key=key, client_ca=ca)
    try:
        batch = _batch(tmp_path / "spool", make_segments(2, keyframes=1), "ws-07")

        def uploader(path_device: str, cn: str | None) -> BatchUploader:
            files = {"cert_file": str(pki / f"{cn}.pem"), "key_file": str(pki / f"{cn}.key")} if cn else {}
            return BatchUploader(fleet.server.url, path_device, ca_file=ca, **files)

        assert fleet.server.url.startswith("https://")
        with pytest.raises(UploadError, match="unreachable"):
            uploader("ws-07", None).put(batch)  # no client certificate: the handshake fails
        with pytest.raises(UploadError, match="HTTP 403.*'ws-99' cannot write under 'ws-07'"):
            uploader("ws-07", "ws-99").put(batch)
        with pytest.raises(UploadError, match="HTTP 401.*'stranger' names no registered device"):
            uploader("stranger", "stranger").put(batch)
        assert uploader("ws-07", "ws-07").put(batch) == 201
        assert wait_until(lambda: fleet.store.link_counts()["waiting_for_segment"] == 2, 5)
    finally:
        fleet.close()


def test_the_device_service_uploads_over_mutual_tls_end_to_end(tmp_path):
    """The device's own config keys (upload.cert/key/ca) against the endpoint."""
    from edge.config import load_config
    from edge.device_runtime import DeviceRuntime
    from tests.service.helpers import write_config

    ca, cert, key = make_tls_files(tmp_path / "pki", clients=("ws-07",))
    fleet = Fleet(tmp_path, cert=cert, key=key, client_ca=ca)
    try:
        pki = tmp_path / "pki"
        cfg = load_config(write_config(
            tmp_path / "edge.toml", port=1, state_dir=tmp_path / "state", site="plant-a", device="ws-07",
            extra=f'\n[upload]\nendpoint = "{fleet.server.url}"\ninterval_s = 0.2\nca = "{ca}"\n'
                  f'cert = "{pki / "ws-07.pem"}"\nkey = "{pki / "ws-07.key"}"\n',
            mqtt_extra="enabled = false"))
        rt = DeviceRuntime(cfg)
        rt.start(model_version="synthetic", providers=[])
        segs = make_segments(2, keyframes=2)
        for seg in segs:
            rt.emit(seg, {f: _jpeg(f) for f in seg.keyframes})
        try:
            assert wait_until(lambda: fleet.server.stats["created"] >= 1, 15), rt.uploader.last_error
        finally:
            rt.close()
        media = fleet.store.media([s.segment_id for s in segs])
        assert sorted(f.frame for s in segs for f in media[s.segment_id]) == sorted(f for s in segs for f in s.keyframes)
    finally:
        fleet.close()


def test_with_no_registry_the_fleet_token_still_works_for_old_devices(tmp_path):
    token = tmp_path / "token"
    token.write_text("fleet-secret\n")
    with Store(tmp_path / "c.sqlite") as store:
        server = BatchServer(HttpConfig(host="127.0.0.1", port=0, token_file=str(token)), store, tmp_path / "media",
                             registry=RegistryView(tmp_path / "devices" / "registry.json"))
        server.start()
        try:
            batch = _batch(tmp_path / "spool", make_segments(1, keyframes=1), "ws-07")
            with pytest.raises(UploadError, match="HTTP 401"):
                BatchUploader(server.url, "ws-07").put(batch)
            assert BatchUploader(server.url, "ws-07", token="fleet-secret").put(batch) == 201
        finally:
            server.stop()
    time.sleep(0)  # nothing left running
