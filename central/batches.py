"""Receiving one batch archive: check its hash, unpack its keyframes and clips, link them.

The archive is exactly what `edge.upload.BatchSpool.seal` writes: an uncompressed tar whose
first member is `manifest.json` (schema `laps.batch/1`, validated with
`edge.messages.BatchManifest`) followed by one member per listed file,
`<segment_id>/keyframe_<frame>.jpg` or `<segment_id>/clip.avi`. Its sha256 is its name.

`receive_batch` is idempotent: a batch already recorded for that device answers "already
stored" and changes nothing. Every listed file is checked (name inside its segment's folder,
size and sha256 as the manifest says) before anything is recorded; a member the manifest does
not list is refused. A device links media only to its own segments: a batch naming a segment
that another device sent is refused (403), and media already stored is never overwritten with
other bytes (409). Files land in `<media_dir>/<device>/<segment_id>/<name>` (segment ids
canonical; written to a unique temporary name, then renamed, so concurrent identical uploads
cannot trip over each other), then ONE transaction records the batch and links every file to
its segment id. A crash between unpacking and the commit leaves no record, so the device's
retry unpacks again (same bytes, same names).
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from central.store import MediaFile
from central.store_protocol import CentralStore
from edge.errors import LapsError
from edge.messages import BatchFile, BatchManifest, MessageError, canonical_segment_id

MANIFEST_MEMBER = "manifest.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_FILE_NAME = re.compile(r"^(keyframe_\d{8}\.jpg|clip\.avi)$")


class BatchError(LapsError):
    """A batch is refused. `status` is the HTTP status the endpoint answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class BatchReceipt:
    """The outcome of a batch: created (False: already stored), files and segments linked."""

    device_id: str
    sha256: str
    created: bool
    n_files: int
    n_segments: int


def check_batch_name(device_id: str, sha256: str) -> None:
    """Refuse a malformed device id or hash in the URL (400)."""
    if not _DEVICE.match(device_id):
        raise BatchError(f"device id {device_id!r} in the URL is not 1-64 characters of A-Z a-z 0-9 . _ -")
    if not _SHA256.match(sha256):
        raise BatchError(f"batch name {sha256!r} is not a sha256 (64 lowercase hex digits)")


def receive_batch(store: CentralStore, media_dir: str | os.PathLike, device_id: str, sha256: str,
                  archive: str | os.PathLike, actual_sha256: str | None = None) -> BatchReceipt:
    """Check, unpack and link the batch archive at `archive` named `sha256` from `device_id`.

    actual_sha256: the digest computed while the body was received (else it is computed
    here). Raises `BatchError` (400) on a hash mismatch or a malformed archive.
    """
    check_batch_name(device_id, sha256)
    path = Path(archive)
    digest = actual_sha256 or _sha256_file(path)
    if digest != sha256:
        raise BatchError(f"body hashes to {digest} but the URL names {sha256}; the upload was corrupted, send it again")
    if store.has_batch(device_id, sha256):
        return BatchReceipt(device_id, sha256, False, 0, 0)
    media_root = Path(media_dir)
    files: list[MediaFile] = []
    try:
        with tarfile.open(path, "r:") as tar:
            manifest, entries = _read_manifest(tar, device_id)
            _check_ownership(store, device_id, {sid for sid, _ in entries.values()})
            members = {m.name: m for m in tar.getmembers() if m.name != MANIFEST_MEMBER}
            unlisted = sorted(set(members) - set(entries))
            if unlisted:
                raise BatchError(f"archive holds {unlisted[0]!r}, which its manifest does not list")
            for name, (segment_id, entry) in entries.items():
                member = members.get(name)
                if member is None:
                    raise BatchError(f"manifest lists {name!r} but the archive does not hold it")
                if not member.isreg():
                    raise BatchError(f"archive member {name!r} is not a regular file")
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                if len(data) != entry.size or hashlib.sha256(data).hexdigest() != entry.sha256:
                    raise BatchError(f"archive member {name!r} does not match its size/sha256 in the manifest")
                rel = f"{device_id}/{segment_id}/{PurePosixPath(name).name}"
                known = store.media_sha256(segment_id, rel)
                if known is not None and known != entry.sha256:
                    raise BatchError(f"{rel} is already stored with other content; media is never overwritten "
                                     "(a new picture needs a new segment id)", status=409)
                if known is None:
                    _write_atomic(media_root / rel, data)
                frame = entry.frame if entry.kind == "keyframe" else None
                files.append(MediaFile(segment_id, rel, entry.kind, frame, entry.sha256, entry.size))
    except tarfile.TarError as err:
        raise BatchError(f"body is not a readable tar archive ({err})") from None
    created = store.add_batch(device_id, manifest.site, sha256, path.stat().st_size, files)
    return BatchReceipt(device_id, sha256, created, len(files), len({f.segment_id for f in files}))


def _check_ownership(store: CentralStore, device_id: str, segment_ids: set[str]) -> None:
    """403 when any of `segment_ids` is stored as another device's segment."""
    for sid, owner in sorted(store.segment_devices(segment_ids).items()):
        if owner != device_id:
            raise BatchError(f"segment {sid} was sent by device {owner!r}, not {device_id!r}; a device may "
                             "link media only to its own segments", status=403)


def _read_manifest(tar: tarfile.TarFile, device_id: str) -> tuple[BatchManifest, dict[str, tuple[str, BatchFile]]]:
    """The validated manifest and {member name: (canonical segment_id, file entry)}."""
    try:
        member = tar.getmember(MANIFEST_MEMBER)
    except KeyError:
        raise BatchError(f"archive has no {MANIFEST_MEMBER}; it was not made by laps-edge") from None
    fh = tar.extractfile(member)
    if fh is None:
        raise BatchError(f"{MANIFEST_MEMBER} in the archive is not a regular file")
    try:
        manifest = BatchManifest.from_json(fh.read())
    except MessageError as err:
        raise BatchError(f"{MANIFEST_MEMBER} is invalid: {err}") from None
    if manifest.device_id != device_id:
        raise BatchError(f"manifest says device {manifest.device_id!r} but the URL names {device_id!r}")
    entries: dict[str, tuple[str, BatchFile]] = {}
    for seg in manifest.segments:
        sid = seg.segment_id
        for entry in seg.files:
            name = entry.file
            parts = PurePosixPath(name).parts
            # Only <segment_id>/<keyframe or clip name>: nothing can be written outside its folder.
            if len(parts) != 2 or parts[0] != sid or not _FILE_NAME.match(parts[1]):
                raise BatchError(f"manifest file {name!r} is not <segment_id>/keyframe_NNNNNNNN.jpg or clip.avi "
                                 f"of segment {sid}")
            entries[name] = (canonical_segment_id(sid), entry)
    return manifest, entries


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # A unique temporary name: two requests unpacking the same batch at once each rename their own.
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{target.name}-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
