"""The fleet side's one HTTP server (`central.http_server`): a bounded pool, socket timeouts and
a clean stop, whatever the handler (the batch endpoint and the bundle server both use it)."""

from __future__ import annotations

import socket
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler

import pytest

from central.http_server import HttpService
from central.rollout import BundleServer

RELEASE = threading.Event()


class _Slow(BaseHTTPRequestHandler):
    """Answers GET once RELEASE is set (holds its worker until then)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        RELEASE.wait(10)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"ok")


@pytest.fixture
def service():
    RELEASE.clear()
    busy: list[int] = []
    svc = HttpService(_Slow, host="127.0.0.1", port=0, workers=1, queue=1, timeout_s=0.5, name="test server",
                      on_busy=lambda: busy.append(1))
    svc.start()
    yield svc, busy
    RELEASE.set()
    svc.stop()


def _get(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    return s


def test_a_connection_beyond_workers_and_queue_gets_503_at_once(service):
    svc, busy = service
    held = [_get(svc.port), _get(svc.port)]  # one served (blocked), one waiting
    extra = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    answer = extra.recv(4096)
    assert answer.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in answer and b"test server busy" in answer
    assert busy == [1]
    RELEASE.set()
    assert all(s.recv(4096).startswith(b"HTTP/1.1 200") for s in held)
    for s in held + [extra]:
        s.close()


def test_a_client_that_sends_nothing_is_closed_after_the_timeout(service):
    svc, _ = service
    RELEASE.set()
    silent = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
    assert silent.recv(4096) == b""  # closed by the server, long before the test's own 10 s
    silent.close()
    with urllib.request.urlopen(svc.local_url + "/", timeout=10) as resp:  # the worker is free again
        assert resp.read() == b"ok"


def test_stop_closes_the_listening_socket(service):
    svc, _ = service
    RELEASE.set()
    svc.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", svc.port), timeout=2)


def test_the_bundle_server_serves_ranges_on_the_shared_server(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_bytes(b"0123456789")
    server = BundleServer({3: tmp_path / "b"}, timeout_s=5.0).start()
    try:
        req = urllib.request.Request(server.bundle_url(3) + "/manifest.json", headers={"Range": "bytes=4-"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 206 and resp.read() == b"456789"
    finally:
        server.stop()
