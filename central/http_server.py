"""The one threaded HTTP server of the fleet side: the batch endpoint (`central.http_receiver`)
and the OTA bundle server (`central.rollout`) both run on it.

`HttpService` binds an address, serves each connection in a fixed pool of `workers` threads
with at most `queue` connections waiting (beyond that a plain-HTTP client gets `503` with
`Retry-After`, a TLS client a closed connection), gives every socket a timeout of `timeout_s`
(a client that stalls in its headers or body costs one worker for at most that long), runs the
TLS handshake in the worker under the same timeout (a slow handshake never blocks the accept
loop), and stops cleanly: `stop` stops accepting, closes the socket and drops connections that
are still waiting. What a request means is the handler's business (a `BaseHTTPRequestHandler`).
"""

from __future__ import annotations

import logging
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Callable

log = logging.getLogger(__name__)


def server_tls_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext | None:
    """A server-side TLS context for PEM `cert`/`key` (None when `cert` is empty: plain HTTP).
    client_ca: CA file of the clients' certificates; set, every client must present one it signed
    (mutual TLS)."""
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key or None)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class HttpService:
    """A threaded HTTP server in a background thread.

    handler: the request handler class. host/port: the address (port 0 = any free port; see
    `port`). workers: connections served at once. queue: connections waiting for a worker
    (beyond: 503). timeout_s: every socket operation's timeout, in seconds. tls: a server context
    (`server_tls_context`) or None for plain HTTP. name: thread and log name. on_busy: called for
    each connection refused for lack of a slot (for counters).
    """

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, host: str, port: int, workers: int, queue: int,
                 timeout_s: float, tls: ssl.SSLContext | None = None, name: str = "http",
                 on_busy: Callable[[], None] | None = None) -> None:
        self.name = name
        self.scheme = "https" if tls is not None else "http"
        self._host = host
        self._httpd = _PooledHTTPServer((host, port), handler, workers=workers, queue=queue, timeout_s=timeout_s,
                                        tls=tls, name=name, on_busy=on_busy or (lambda: None))
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound TCP port (the one chosen when `port` was 0)."""
        return int(self._httpd.server_address[1])

    @property
    def local_url(self) -> str:
        """`<scheme>://<host>:<port>` with a wildcard bind address replaced by loopback."""
        host = self._host if self._host not in ("", "0.0.0.0") else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> None:
        """Serve in a daemon thread until `stop`."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the listening socket, drop waiting connections; requests in
        progress end on their own (at the latest after timeout_s of silence)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5.0)


class _PooledHTTPServer(HTTPServer):
    """An HTTPServer whose connections are served by a fixed thread pool, at most `queue`
    waiting; each socket gets `timeout_s` and (with `tls`) its TLS handshake in the worker."""

    def __init__(self, address, handler, *, workers: int, queue: int, timeout_s: float,
                 tls: ssl.SSLContext | None, name: str, on_busy: Callable[[], None]) -> None:
        # socketserver's listen backlog is 5: a burst of devices would overflow it into resets
        # before the pool ever saw them. The pool and queue bound the work, not the backlog.
        self.request_queue_size = max(128, workers + queue)
        super().__init__(address, handler)
        self.timeout_s = timeout_s
        self.tls = tls
        self.name = name
        self.on_busy = on_busy
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(workers + queue)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.on_busy()
            _refuse_busy(request, tls=self.tls is not None, name=self.name)
            self.shutdown_request(request)
            return
        try:
            self._pool.submit(self._serve, request, client_address)
        except RuntimeError:  # the pool is shutting down
            self._slots.release()
            self.shutdown_request(request)

    def _serve(self, request, client_address) -> None:
        conn = request
        try:
            request.settimeout(self.timeout_s)
            if self.tls is not None:
                conn = self.tls.wrap_socket(request, server_side=True)
            self.finish_request(conn, client_address)
        except (OSError, ssl.SSLError) as err:
            log.debug("%s: connection from %s ended: %s", self.name, client_address[0], err)
        except Exception:  # noqa: BLE001 - one connection must not take the pool down
            self.handle_error(conn, client_address)
        finally:
            self.shutdown_request(conn)
            self._slots.release()

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _refuse_busy(sock, tls: bool, name: str) -> None:
    """Tell a client that arrived while every worker and queue slot is taken (plain HTTP only:
    a TLS client cannot read it before a handshake this thread will not do)."""
    if tls:
        return
    text = f"{name} busy; retry in a few seconds\n".encode()
    try:
        sock.settimeout(1.0)
        sock.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
    except OSError:
        pass
