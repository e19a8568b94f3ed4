"""The batch endpoint the devices upload to: `PUT /v1/batches/<device>/<sha256>`.

Speaks exactly the protocol of `edge.upload.BatchUploader`: the body is the tar archive
(Content-Length required), an optional `Authorization: Bearer <token>`; any 2xx is the
device's acknowledgement. Answers:

    201 stored      a new batch, unpacked and linked (`central.batches.receive_batch`)
    200 already     the same batch again (idempotent; nothing changes)
    400             hash mismatch, malformed archive or manifest (one line saying which)
    401             missing or wrong token          404  any other path or method
    411             no Content-Length               413  larger than http.max_batch_bytes
    500             the store or disk failed (the device keeps the batch and retries)

The body streams to a temporary file under `<media_dir>/../incoming` while it is hashed, so a
large batch never sits in memory. A stdlib `ThreadingHTTPServer`; HTTPS when cert/key are set.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from central.batches import BatchError, check_batch_name, receive_batch
from central.config import HttpConfig
from central.store import Store

log = logging.getLogger(__name__)


class BatchServer:
    """The endpoint as a background thread. `url` is its base URL once started."""

    def __init__(self, cfg: HttpConfig, store: Store, media_dir: str | os.PathLike) -> None:
        self.cfg = cfg
        self.store = store
        self.media_dir = Path(media_dir)
        self.incoming = self.media_dir.parent / "incoming"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._token = cfg.token()
        self.stats = {"created": 0, "repeated": 0, "refused": 0, "errors": 0}
        self._httpd = ThreadingHTTPServer((cfg.host, cfg.port), _handler_for(self))
        self._httpd.daemon_threads = True
        self.scheme = "http"
        if cfg.cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cfg.cert, cfg.key)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.cfg.host if self.cfg.host not in ("", "0.0.0.0") else "127.0.0.1"
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="batch-endpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    # -- one request ------------------------------------------------------------------------------------
    def handle_put(self, path: str, headers, body) -> tuple[int, str]:
        """(status, one-line text) for one PUT; reads exactly Content-Length bytes of `body`."""
        parts = path.split("?", 1)[0].strip("/").split("/")
        if len(parts) != 4 or parts[:2] != ["v1", "batches"]:
            return 404, f"no such endpoint {path}; devices PUT to /v1/batches/<device>/<sha256>"
        device, sha = parts[2], parts[3]
        length_text = headers.get("Content-Length")
        if length_text is None:
            return 411, "Content-Length is required"
        try:
            length = int(length_text)
        except ValueError:
            return 400, f"Content-Length {length_text!r} is not a number"
        if self._token:
            given = headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
                _drain(body, length)
                return 401, "missing or wrong bearer token; set upload.token_file on the device"
        if length > self.cfg.max_batch_bytes:
            return 413, f"batch of {length} bytes exceeds http.max_batch_bytes = {self.cfg.max_batch_bytes}"
        try:
            check_batch_name(device, sha)
        except BatchError as err:
            _drain(body, length)
            return err.status, str(err)
        if self.store.has_batch(device, sha):
            _drain(body, length)
            self.stats["repeated"] += 1
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
        except BatchError as err:
            self.stats["refused"] += 1
            log.warning("refused batch %s from %s: %s", sha[:12], device, err)
            return err.status, str(err)
        except Exception as err:  # noqa: BLE001 - the device keeps the batch and retries
            self.stats["errors"] += 1
            log.exception("batch %s from %s could not be stored", sha[:12], device)
            return 500, f"batch could not be stored ({type(err).__name__}: {err}); it will be retried"
        finally:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        if not receipt.created:
            self.stats["repeated"] += 1
            return 200, f"batch {sha[:12]} of {device} already stored"
        self.stats["created"] += 1
        log.info("stored batch %s from %s: %d file(s) of %d segment(s)", sha[:12], device, receipt.n_files,
                 receipt.n_segments)
        return 201, f"stored {receipt.n_files} file(s) of {receipt.n_segments} segment(s)"


def _handler_for(server: BatchServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args) -> None:
            log.debug("%s %s", self.address_string(), fmt % args)

        def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
            status, text = server.handle_put(self.path, self.headers, self.rfile)
            self._answer(status, text)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(404, "only PUT /v1/batches/<device>/<sha256> is served here")

        do_POST = do_GET  # noqa: N815

        def _answer(self, status: int, text: str) -> None:
            data = (text + "\n").encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status >= 400:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _drain(body, length: int) -> None:
    """Read and discard the body so the client sees our answer, not a reset connection."""
    left = length
    while left > 0:
        block = body.read(min(left, 1 << 20))
        if not block:
            return
        left -= len(block)
