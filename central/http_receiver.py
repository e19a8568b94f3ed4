"""The batch endpoint the devices upload to: `PUT /v1/batches/<device>/<sha256>`.

Speaks exactly the protocol of `edge.upload.BatchUploader`: the body is the tar archive
(Content-Length required), `Authorization: Bearer <token>` (or a client certificate); any 2xx
is the device's acknowledgement. Answers:

    201 stored      a new batch, unpacked and linked (`central.batches.receive_batch`)
    200 already     the same batch again (idempotent; nothing changes)
    400             hash mismatch, malformed archive or manifest (one line saying which)
    401             no credentials, or credentials nobody was issued (or revoked ones)
    403             a device writing under another device's path, or linking media to another
                    device's segment
    404             any other path or method        408  the body stalled (http.timeout_s)
    409             media already stored with other bytes (media is write-once)
    411             no Content-Length               413  larger than http.max_batch_bytes
    500             the store or disk failed (the device keeps the batch and retries)
    503             every worker busy and the queue full (the device retries next interval)

Who is asking (before a byte of the body is read): with `http.client_ca`, the common name of
the client certificate (mutual TLS); else, once the device registry lists devices
(`central.devices`), the device whose token the bearer token is; else the fleet-wide
`http.token_file` token, or nobody at all when that is empty. A device may PUT only under its
own id. A refused request is answered and the connection closed; the body is not read (a
client that sent `Expect: 100-continue` gets the refusal before it sends anything).

The body streams to a uniquely named temporary file under `<media_dir>/../incoming` while it
is hashed, so a large batch never sits in memory. Connections are served by `central.http_server`: a fixed pool
of `http.workers` threads with at most `http.queue` waiting (beyond that: 503), and every
socket has a timeout of `http.timeout_s`, so stalled clients cost a bounded number of threads.
HTTPS when cert/key are set; the TLS handshake runs in the worker, under the timeout too.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from central.batches import BatchError, check_batch_name, receive_batch
from central.config import HttpConfig
from central.devices import RegistryView
from central.http_server import HttpService, server_tls_context
from central.store_protocol import CentralStore

log = logging.getLogger(__name__)

#: bytes of a refused body read before closing, so a small client still sees the answer
_REFUSED_BODY_READ = 64 * 1024


class BatchServer:
    """The endpoint as a background thread. `url` is its base URL once started.
    registry: the device registry (per-device tokens, who may write where); None = none."""

    def __init__(self, cfg: HttpConfig, store: CentralStore, media_dir: str | os.PathLike,
                 registry: RegistryView | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.registry = registry
        self.media_dir = Path(media_dir)
        self.incoming = self.media_dir.parent / "incoming"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._token = cfg.token()
        self.stats = {"created": 0, "repeated": 0, "refused": 0, "errors": 0, "unauthorised": 0,
                      "forbidden": 0, "timeouts": 0, "busy": 0}
        self._stats_lock = threading.Lock()
        self._http = HttpService(_handler_for(self), host=cfg.host, port=cfg.port, workers=cfg.workers,
                                 queue=cfg.queue, timeout_s=cfg.timeout_s,
                                 tls=server_tls_context(cfg.cert, cfg.key, cfg.client_ca), name="batch endpoint",
                                 on_busy=self._busy)
        self.scheme = self._http.scheme

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def url(self) -> str:
        return self._http.local_url

    def start(self) -> None:
        self._http.start()

    def stop(self) -> None:
        self._http.stop()

    # -- one request ------------------------------------------------------------------------------------
    def authorise(self, path: str, headers, peer_cert: dict | None) -> tuple[int, str] | None:
        """None when this request may write under `path`, else (401 or 403, one line). Reads
        only the request line, the headers and the TLS peer certificate: never the body."""
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "batches"]:
            return None  # not a batch path: handle_put answers 404
        device = parts[2]
        snapshot = self.registry.current() if self.registry is not None else None
        if self.cfg.client_ca:
            who = _common_name(peer_cert)
            if snapshot is not None and snapshot.enforced and who not in snapshot.sites:
                return self._count("unauthorised", 401, f"client certificate {who!r} names no registered device")
        elif snapshot is not None and snapshot.enforced:
            given = headers.get("Authorization", "")
            who = snapshot.device_for_token(given[7:].strip()) if given.startswith("Bearer ") else None
            if who is None:
                return self._count("unauthorised", 401, "missing, unknown or revoked device token; set upload.token_file "
                                   "to the token `laps-central devices add` issued for this device")
        elif self._token:
            given = headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
                return self._count("unauthorised", 401, "missing or wrong bearer token; set upload.token_file on the device")
            return None
        else:
            return None
        if who != device:
            return self._count("forbidden", 403, f"credentials of device {who!r} cannot write under {device!r}")
        return None

    def handle_put(self, path: str, headers, body) -> tuple[int, str]:
        """(status, one-line text) for one authorised PUT; reads exactly Content-Length bytes of `body`."""
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "batches"]:
            return 404, f"no such endpoint {path[:200]}; devices PUT to /v1/batches/<device>/<sha256>"
        device, sha = parts[2], parts[3]
        length_text = headers.get("Content-Length")
        if length_text is None:
            return 411, "Content-Length is required"
        try:
            length = int(length_text)
        except ValueError:
            return 400, f"Content-Length {length_text[:40]!r} is not a number"
        if length < 0:
            return 400, f"Content-Length {length} is negative"
        if length > self.cfg.max_batch_bytes:
            return 413, f"batch of {length} bytes exceeds http.max_batch_bytes = {self.cfg.max_batch_bytes}"
        try:
            check_batch_name(device, sha)
        except BatchError as err:
            return err.status, str(err)
        if self.store.has_batch(device, sha):
            _drain(body, length)
            self._count("repeated")
            return 200, f"batch {sha[:12]} of {device} already stored"
        fd, tmp = tempfile.mkstemp(prefix=".put-", suffix=".tar", dir=self.incoming)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as fh:
                left = length
                while left > 0:
                    block = body.read(min(left, 1 << 20))
                    if not block:
                        return 400, f"body ended after {length - left} of {length} bytes; send the batch again"
                    digest.update(block)
                    fh.write(block)
                    left -= len(block)
            receipt = receive_batch(self.store, self.media_dir, device, sha, tmp, actual_sha256=digest.hexdigest())
        except (TimeoutError, socket.timeout):
            self._count("timeouts")
            return 408, f"the body stalled for {self.cfg.timeout_s:g} s; send the batch again"
        except BatchError as err:
            self._count("forbidden" if err.status == 403 else "refused")
            log.warning("refused batch %s from %s: %s", sha[:12], device, err)
            return err.status, str(err)
        except Exception as err:  # noqa: BLE001 - the device keeps the batch and retries
            self._count("errors")
            log.exception("batch %s from %s could not be stored", sha[:12], device)
            return 500, f"batch could not be stored ({type(err).__name__}: {err}); it will be retried"
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if not receipt.created:
            self._count("repeated")
            return 200, f"batch {sha[:12]} of {device} already stored"
        self._count("created")
        log.info("stored batch %s from %s: %d file(s) of %d segment(s)", sha[:12], device, receipt.n_files,
                 receipt.n_segments)
        return 201, f"stored {receipt.n_files} file(s) of {receipt.n_segments} segment(s)"

    def _count(self, name: str, status: int = 0, text: str = "") -> tuple[int, str]:
        with self._stats_lock:
            self.stats[name] += 1
        if status:
            log.warning("batch endpoint: %d %s", status, text)
        return status, text

    def _busy(self) -> None:
        self._count("busy")


def _handler_for(server: BatchServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = server.cfg.timeout_s  # header reads too; the body read is guarded in handle_put

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

        def handle_expect_100(self) -> bool:
            # Refuse before the client sends its body, if it asked whether it may.
            if self.command == "PUT" and self._refusal() is not None:
                status, text = self._refusal()  # type: ignore[misc]
                self._answer(status, text)
                return False
            return super().handle_expect_100()

        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            refusal = self._refusal()
            if refusal is not None:
                self._answer(*refusal)
                _drain(self.rfile, min(_content_length(self.headers), _REFUSED_BODY_READ))
                return
            status, text = server.handle_put(self.path, self.headers, self.rfile)
            self._answer(status, text)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(404, "only PUT /v1/batches/<device>/<sha256> is served here")

        do_POST = do_GET  # noqa: N815

        def _refusal(self) -> tuple[int, str] | None:
            if not hasattr(self, "_auth"):
                cert = self.connection.getpeercert() if isinstance(self.connection, ssl.SSLSocket) else None
                self._auth = server.authorise(self.path, self.headers, cert)
            return self._auth

        def _answer(self, status: int, text: str) -> None:
            data = (text + "\n").encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                if status >= 400:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True  # the client is gone; nothing to tell it

    return Handler


def _common_name(cert: dict | None) -> str:
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return ""


def _content_length(headers) -> int:
    try:
        return max(0, int(headers.get("Content-Length", "0")))
    except ValueError:
        return 0


def _drain(body, length: int) -> None:
    """Read and discard up to `length` body bytes so the client sees our answer, not a reset."""
    left = length
    try:
        while left > 0:
            block = body.read(min(left, 1 << 20))
            if not block:
                return
            left -= len(block)
    except OSError:
        return
