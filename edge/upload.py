"""Periodic batch upload of keyframes (and optional clips), kept on disk until acknowledged.

Flow: when a segment ends, the service hands its keyframe JPEGs (and, if configured, a short
MJPEG clip) to `BatchSpool.add_segment`, which writes them under `<state>/upload/incoming/<id>/`
atomically. Every `upload.interval_s`, `UploadWorker` seals everything incoming into ONE tar
archive `<state>/upload/batches/<sha256>.tar` whose first member is `manifest.json` (segment
ids, files, per-file sha256 and size; schema `laps.batch/1` in `edge.messages`), then PUTs each
sealed archive to `<endpoint>/v1/batches/<device>/<sha256>`. The archive's sha256 is its name,
so repeating a PUT is harmless (the receiver keeps one copy and checks the hash). Only after a
2xx answer is the manifest announced on `.../batches` (through the outbox, so the announcement
is as durable as a segment) and the archive deleted. Failed uploads stay and are retried next
interval.

Disk cap: when the spool exceeds `upload.max_disk_bytes`, the OLDEST sealed batches (then the
oldest incoming segments) are evicted, counted in `counters.json` and logged; never silent.
The service's free-space floor (`edge.disk_floor`) evicts the same way (`evict_oldest`). A full
disk while writing media or sealing a batch leaves no half-written file behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import ssl
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from edge.errors import LapsError
from edge.messages import BatchFile, BatchManifest, BatchSegment, MessageError, clip_file, keyframe_file, utc_now_iso

log = logging.getLogger(__name__)

MANIFEST_MEMBER = "manifest.json"
_COUNTERS = ("evicted_batches", "evicted_segments", "evicted_bytes", "uploaded_batches", "uploaded_bytes")


class UploadError(LapsError):
    """A batch could not be delivered to the receiver (the batch stays on disk)."""


@dataclass(frozen=True)
class SealedBatch:
    """A sealed archive waiting for upload. sha256: hex digest of the archive bytes (its name)."""

    sha256: str
    path: Path
    size: int
    manifest: BatchManifest

    @property
    def segment_ids(self) -> list[str]:
        return self.manifest.segment_ids


class BatchSpool:
    """The on-disk spool of one device.

    root: folder (created). device_id/site: written into manifests. max_bytes: disk cap of
    the whole spool. max_batch_bytes: a batch holds at most this much (the rest waits for the
    next batch), so one PUT stays a sensible size.
    """

    def __init__(self, root: str | os.PathLike, device_id: str, site: str,
                 max_bytes: int = 1024 * 1024 * 1024, max_batch_bytes: int = 64 * 1024 * 1024) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        self.sealed = self.root / "batches"
        self.device_id, self.site = device_id, site
        self.max_bytes, self.max_batch_bytes = int(max_bytes), int(max_batch_bytes)
        self._lock = threading.Lock()
        for d in (self.incoming, self.sealed):
            d.mkdir(parents=True, exist_ok=True)
        # Half-written leftovers of a killed process are not data: remove them.
        for leftover in list(self.incoming.glob(".tmp-*")) + list(self.sealed.glob(".tmp-*")):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        self._counters_path = self.root / "counters.json"
        self.counters = self._read_counters()

    # -- adding ---------------------------------------------------------------------------------
    def add_segment(self, segment_id: str, keyframes: dict[int, bytes], clip: bytes | None = None) -> int:
        """Store one segment's keyframes (frame index -> JPEG bytes) and optional clip durably.
        Returns bytes written (0 when there was nothing to store)."""
        if not keyframes and not clip:
            return 0
        final = self.incoming / segment_id
        if final.exists():
            return 0  # already stored (at-least-once callers may repeat)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.incoming))
        written = 0
        try:
            for frame, data in sorted(keyframes.items()):
                written += _write_durable(tmp / Path(keyframe_file(segment_id, frame)).name, data)
            if clip:
                written += _write_durable(tmp / Path(clip_file(segment_id)).name, clip)
            _fsync_dir(tmp)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # a full disk: no half-written segment stays
            raise
        with self._lock:
            os.replace(tmp, final)
            _fsync_dir(self.incoming)
        self.enforce_cap()
        return written

    # -- sealing --------------------------------------------------------------------------------
    def seal(self) -> SealedBatch | None:
        """Pack incoming segments (oldest first, up to max_batch_bytes) into one archive.
        Returns the new batch, or None when nothing is incoming."""
        with self._lock:
            seg_dirs = self._incoming_oldest_first()
            chosen, total = [], 0
            for d in seg_dirs:
                size = _tree_size(d)
                if chosen and total + size > self.max_batch_bytes:
                    break
                chosen.append(d)
                total += size
            if not chosen:
                return None
            segments = []
            for d in chosen:
                files = []
                for f in sorted(d.iterdir()):
                    data = f.read_bytes()
                    clip = f.suffix == ".avi"
                    files.append(BatchFile(f"{d.name}/{f.name}", "clip" if clip else "keyframe",
                                           hashlib.sha256(data).hexdigest(), len(data),
                                           None if clip else int(f.stem.rsplit("_", 1)[-1])))
                segments.append(BatchSegment(d.name, tuple(files)))
            manifest = BatchManifest(device_id=self.device_id, site=self.site, created=utc_now_iso(),
                                     segments=tuple(segments))
            digest = hashlib.sha256()
            try:
                fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".tar", dir=self.sealed)
            except OSError as err:
                log.warning("cannot seal a batch in %s (%s); the segments stay incoming", self.sealed, err.strerror)
                return None
            try:
                with os.fdopen(fd, "wb") as raw:
                    sink = _HashingWriter(raw, digest)
                    with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                        _add_member(tar, MANIFEST_MEMBER, manifest.to_json(indent=1))
                        for seg in segments:
                            for entry in seg.files:
                                _add_member(tar, entry.file, (self.incoming / entry.file).read_bytes())
                    raw.flush()
                    os.fsync(raw.fileno())
            except OSError as err:
                # A full disk: the archive needs as much room again as its segments; they stay
                # incoming (the disk floor evicts the oldest) and the next round tries again.
                os.unlink(tmp_name)
                log.warning("cannot seal a batch of %d segment(s) in %s (%s); they stay incoming",
                            len(segments), self.sealed, err.strerror)
                return None
            sha = digest.hexdigest()
            final = self.sealed / f"{sha}.tar"
            os.replace(tmp_name, final)
            _fsync_dir(self.sealed)
            # Only now is the data safe in the archive; a crash before this line re-batches it.
            for d in chosen:
                shutil.rmtree(d, ignore_errors=True)
            _fsync_dir(self.incoming)
            batch = SealedBatch(sha, final, final.stat().st_size, manifest)
        log.info("sealed batch %s: %d segment(s), %d bytes", sha[:12], len(segments), batch.size)
        return batch

    def batches(self) -> list[SealedBatch]:
        """Sealed batches waiting for upload, oldest first."""
        out = []
        with self._lock:
            paths = sorted(self.sealed.glob("*.tar"), key=lambda p: (p.stat().st_mtime, p.name))
        for p in paths:
            try:
                with tarfile.open(p, "r") as tar:
                    member = tar.extractfile(MANIFEST_MEMBER)
                    if member is None:
                        raise KeyError(f"{MANIFEST_MEMBER} is not a file")
                    manifest = BatchManifest.from_json(member.read())
            except (OSError, tarfile.TarError, ValueError, KeyError, MessageError) as err:
                log.error("batch %s is unreadable (%s); moving it aside to %s.bad", p.name, err, p.name)
                p.replace(p.with_suffix(".bad"))
                continue
            out.append(SealedBatch(p.stem, p, p.stat().st_size, manifest))
        return out

    def remove(self, batch: SealedBatch) -> None:
        """Delete an acknowledged batch and count it as uploaded."""
        with self._lock:
            batch.path.unlink(missing_ok=True)
            self._bump(uploaded_batches=1, uploaded_bytes=batch.size)

    # -- the cap ----------------------------------------------------------------------------------
    def disk_bytes(self) -> int:
        return _tree_size(self.incoming) + _tree_size(self.sealed)

    def enforce_cap(self) -> int:
        """Evict oldest batches, then oldest incoming segments, until under max_bytes.
        Returns bytes evicted (each eviction logged and counted)."""
        total = self.disk_bytes()
        if total <= self.max_bytes:
            return 0
        return self.evict_oldest(total - self.max_bytes, f"over its cap (max_disk_bytes={self.max_bytes})")

    def evict_oldest(self, nbytes: int, reason: str) -> int:
        """Evict the oldest sealed batches, then the oldest incoming segments, until at least
        `nbytes` are freed or the spool is empty. Each eviction is logged with `reason` and
        counted. Returns bytes freed."""
        freed = 0
        with self._lock:
            victims: list[tuple[str, Path]] = [
                ("batch", p) for p in sorted(self.sealed.glob("*.tar"), key=lambda p: (p.stat().st_mtime, p.name))
            ] + [("segment", d) for d in self._incoming_oldest_first()]
            for kind, path in victims:
                if freed >= nbytes:
                    break
                size = _tree_size(path) if path.is_dir() else path.stat().st_size
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                freed += size
                if kind == "batch":
                    self._bump(evicted_batches=1, evicted_bytes=size)
                else:
                    self._bump(evicted_segments=1, evicted_bytes=size)
                log.warning(
                    "upload spool %s: evicted %s %s (%d bytes); evicted so far: %d batches, %d segments",
                    reason, kind, path.name, size,
                    self.counters["evicted_batches"], self.counters["evicted_segments"],
                )
        return freed

    def stats(self) -> dict:
        """For `.../metrics`: pending batches/segments/bytes and the counters."""
        with self._lock:
            pending_batches = len(list(self.sealed.glob("*.tar")))
            pending_segments = sum(1 for d in self.incoming.iterdir() if d.is_dir() and not d.name.startswith("."))
            disk = _tree_size(self.incoming) + _tree_size(self.sealed)
        return {"pending_batches": pending_batches, "pending_segments": pending_segments,
                "disk_bytes": disk, **self.counters}

    def _incoming_oldest_first(self) -> list[Path]:
        # By write time: UUIDv7 names sort by millisecond only (random within one ms).
        dirs = [d for d in self.incoming.iterdir() if d.is_dir() and not d.name.startswith(".")]
        return sorted(dirs, key=lambda d: (d.stat().st_mtime_ns, d.name))

    # -- counters ---------------------------------------------------------------------------------
    def _read_counters(self) -> dict[str, int]:
        try:
            data = json.loads(self._counters_path.read_text())
        except (OSError, ValueError):
            data = {}
        return {k: int(data.get(k, 0)) for k in _COUNTERS}

    def _bump(self, **deltas: int) -> None:
        for k, v in deltas.items():
            self.counters[k] += int(v)
        tmp = self._counters_path.with_suffix(".tmp")
        try:
            _write_durable(tmp, json.dumps(self.counters).encode())
            os.replace(tmp, self._counters_path)
        except OSError as err:  # a full disk: the counts stay in memory and go out on metrics
            tmp.unlink(missing_ok=True)
            log.debug("upload counters not saved to %s (%s)", self._counters_path, err.strerror)


class BatchUploader:
    """PUTs sealed batches to `<endpoint>/v1/batches/<device>/<sha256>` (HTTP or HTTPS).

    A 2xx answer is the acknowledgement. Anything else raises `UploadError` with one line:
    the URL, the status or the network error, and the receiver's first words. token: this
    device's bearer token; cert_file/key_file: its client certificate for mutual TLS.
    """

    def __init__(self, endpoint: str, device_id: str, timeout_s: float = 30.0, ca_file: str = "",
                 token: str = "", site: str = "", cert_file: str = "", key_file: str = "") -> None:
        self.endpoint = endpoint.rstrip("/")
        self.device_id, self.site = device_id, site
        self.timeout_s = timeout_s
        self.token = token
        self._ctx = None
        if self.endpoint.startswith("https"):
            self._ctx = ssl.create_default_context(cafile=ca_file or None)
            if cert_file:
                self._ctx.load_cert_chain(cert_file, key_file or None)

    def url_for(self, sha256: str) -> str:
        return f"{self.endpoint}{self.path_for(sha256)}"

    def path_for(self, sha256: str) -> str:
        return f"/v1/batches/{self.device_id}/{sha256}"

    def put(self, batch: SealedBatch) -> int:
        """Upload one batch; returns the HTTP status (2xx) or raises UploadError."""
        url = self.url_for(batch.sha256)
        headers = {"Content-Type": "application/x-tar", "Content-Length": str(batch.size),
                   "X-Laps-Device": self.device_id, "X-Laps-Site": self.site}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        with open(batch.path, "rb") as body:
            req = urllib.request.Request(url, data=body, method="PUT", headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s, context=self._ctx) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as err:
                text = err.read(200).decode("utf-8", "replace").strip().replace("\n", " ")
                hint = "batch kept for retry"
                if err.code in (401, 403):
                    hint += "; check upload.token_file (or upload.cert/key) holds this device's credentials"
                raise UploadError(f"receiver refused batch {batch.sha256[:12]}: HTTP {err.code} {err.reason} "
                                  f"from {url} ({text or 'no body'}); {hint}") from None
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                hint = "check upload.endpoint"
                if isinstance(reason, (ConnectionResetError, BrokenPipeError)):
                    # The receiver refuses unauthenticated bodies without reading them.
                    hint += ", and that upload.token_file (or upload.cert/key) holds this device's credentials"
                raise UploadError(f"receiver {self.endpoint} unreachable ({reason}); batch "
                                  f"{batch.sha256[:12]} kept for retry; {hint}") from None


class UploadWorker:
    """Every `interval_s`: seal incoming segments, upload every sealed batch, announce each
    acknowledged one through `announce(message)` (the service puts it in the outbox)."""

    def __init__(self, spool: BatchSpool, uploader: BatchUploader, interval_s: float,
                 announce: Callable[[BatchManifest], None]) -> None:
        self.spool, self.uploader, self.interval_s = spool, uploader, interval_s
        self.announce = announce
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._round = threading.Lock()  # one round at a time (the worker, or a caller draining)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="upload", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0, final_round: bool = True) -> None:
        """Stop the worker thread; then, with `final_round`, seal what came in since the last
        round and try one more upload for at most about `timeout` s (plus one PUT's own timeout),
        so the keyframes of the last segments do not wait for the next start. What is not
        delivered stays sealed on disk and goes first on the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if final_round:
            try:
                with self._round:
                    self._round_locked(deadline=time.monotonic() + timeout)
            except Exception:  # noqa: BLE001 - shutting down: log and leave the batches on disk
                log.exception("final upload round failed; the batches stay for the next start")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - the upload thread must survive anything
                log.exception("upload round failed; retrying next interval")

    def run_once(self) -> int:
        """One round: seal, then upload oldest first until one fails. Returns batches delivered."""
        with self._round:
            return self._round_locked()

    def _round_locked(self, deadline: float | None = None) -> int:
        # deadline None: a regular round, cut short by stop(); else the final round, bounded in time.
        while self.spool.seal() is not None:
            pass
        delivered = 0
        for batch in self.spool.batches():
            if self._stop.is_set() if deadline is None else time.monotonic() > deadline:
                break
            try:
                self.uploader.put(batch)
            except FileNotFoundError:
                continue  # evicted since it was listed (the disk floor, the cap): counted there
            except UploadError as err:
                if str(err) != self.last_error:
                    log.error("%s", err)
                self.last_error = str(err)
                break  # the receiver is unhappy: try again next interval, oldest first
            self.announce(batch.manifest.announced(archive_sha256=batch.sha256, archive_size=batch.size,
                                                   path=self.uploader.path_for(batch.sha256)))
            self.spool.remove(batch)
            delivered += 1
            self.last_error = ""
        return delivered

    def stats(self) -> dict:
        out = self.spool.stats()
        out["last_error"] = self.last_error
        return out


# -- file helpers ----------------------------------------------------------------------------------
class _HashingWriter(io.RawIOBase):
    """A write-only file object that hashes everything passing through it."""

    def __init__(self, raw, digest) -> None:
        self.raw, self.digest = raw, digest

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.digest.update(data)
        return self.raw.write(data)


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))


def _write_durable(path: Path, data: bytes) -> int:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return len(data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except FileNotFoundError:
                pass
    return total
