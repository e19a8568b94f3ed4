"""HTTP(S) downloads for bundles: Range resume, streaming sha256, disk check, size limit.

A file is fetched into `<name>.part` beside its final path; after an interrupted transfer (a
cut connection, a killed process) the next attempt sends `Range: bytes=<have>-` and appends,
hashing the bytes already on disk first, so the digest always covers the whole file. A server
that ignores Range (answers 200) restarts the file from zero. Only a file whose size and
sha256 match the signed manifest is renamed to its final name (and fsynced); a mismatch
deletes the partial file (its bytes cannot be trusted) and is the bundle's fault.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from edge.ota.errors import BundleRejected, DownloadFailed
from edge.ota.steps import reached

CHUNK = 256 * 1024
#: manifest.json and manifest.sig are small; a larger answer is refused before it fills memory
MAX_METADATA_BYTES = 4 * 1024 * 1024


def fetch_bytes(url: str, *, timeout_s: float = 30.0, ca_file: str = "",
                max_bytes: int = MAX_METADATA_BYTES, missing_ok: bool = False) -> bytes | None:
    """GET a small document into memory. `missing_ok`: a 404 returns None instead of failing."""
    try:
        with _open(url, {}, timeout_s, ca_file) as resp:
            data = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as err:
        if err.code == 404 and missing_ok:
            return None
        raise DownloadFailed(f"GET {url} answered HTTP {err.code}; check the bundle URL and the server") from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DownloadFailed(f"GET {url} failed ({_reason(err)}); the server is unreachable, will retry") from None
    if len(data) > max_bytes:
        raise BundleRejected(f"{url} is larger than {max_bytes} bytes; that is not a bundle manifest")
    return data


def check_disk_space(folder: str | os.PathLike, needed_bytes: int, reserve_bytes: int = 0) -> None:
    """Refuse to start a download that cannot fit (free space < needed + reserve)."""
    os.makedirs(folder, exist_ok=True)
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    if free < needed_bytes + reserve_bytes:
        raise DownloadFailed(
            f"not enough disk space in {folder}: {free} bytes free, the bundle needs {needed_bytes} "
            f"plus a reserve of {reserve_bytes}; free space or lower ota.keep_bundles"
        )


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str,
    size: int,
    timeout_s: float = 30.0,
    ca_file: str = "",
    on_bytes: Callable[[int], None] | None = None,
) -> int:
    """Fetch `url` into `dest`, resuming `dest.part` if present. Returns the bytes transferred
    in this call (0 when `dest` was already complete).

    Raises `DownloadFailed` for transport and disk problems (the partial file is kept for the
    next attempt, except after a disk error) and `BundleRejected` when the completed bytes do not
    match `size`/`sha256` (the partial file is deleted).
    """
    final = Path(dest)
    if final.is_file() and final.stat().st_size == size and _sha256_of(final) == sha256:
        return 0
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    digest = hashlib.sha256()
    if have:
        with open(part, "rb") as fh:  # resume: the digest must cover the bytes already here
            for block in iter(lambda: fh.read(CHUNK), b""):
                digest.update(block)
    transferred = 0
    if have < size or size == 0:
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            resp = _open(url, headers, timeout_s, ca_file)
        except urllib.error.HTTPError as err:
            if err.code == 416 and have == size:
                resp = None  # the partial file is already complete
            else:
                raise DownloadFailed(f"GET {url} answered HTTP {err.code}; check the bundle URL and the server") from None
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise DownloadFailed(f"GET {url} failed ({_reason(err)}); will resume from byte {have}") from None
        if resp is not None:
            with resp:
                if have and resp.status != 206:  # the server ignored Range: start over
                    have, digest = 0, hashlib.sha256()
                mode = "ab" if have else "wb"
                try:
                    with open(part, mode) as out:
                        while True:
                            try:
                                block = resp.read(CHUNK)
                            except (OSError, ValueError) as err:  # cut connection, IncompleteRead
                                out.flush()
                                os.fsync(out.fileno())
                                raise DownloadFailed(
                                    f"transfer of {url} broke after {have + transferred} of {size} bytes "
                                    f"({_reason(err)}); will resume"
                                ) from None
                            if not block:
                                break
                            if have + transferred + len(block) > size:
                                out.truncate(0)
                                raise BundleRejected(
                                    f"{url} is longer than the {size} bytes the signed manifest lists; "
                                    "the server holds a different file"
                                )
                            out.write(block)
                            digest.update(block)
                            transferred += len(block)
                            if on_bytes is not None:
                                on_bytes(len(block))
                            if have + transferred < size:
                                reached("download_partial")
                        out.flush()
                        os.fsync(out.fileno())
                except OSError as err:
                    _remove(part)  # a disk error may have left a torn tail
                    raise DownloadFailed(_disk_reason(err, final.parent)) from None
    got = have + transferred
    if got != size:
        raise DownloadFailed(f"transfer of {url} ended after {got} of {size} bytes; will resume")
    if digest.hexdigest() != sha256:
        _remove(part)
        raise BundleRejected(
            f"downloaded {final.name} has sha256 {digest.hexdigest()[:12]}…, the signed manifest says "
            f"{sha256[:12]}…; the file on the server was tampered with"
        )
    os.replace(part, final)
    fsync_dir(final.parent)
    return transferred


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory so a rename inside it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- helpers ---------------------------------------------------------------------------------------
def _open(url: str, headers: dict, timeout_s: float, ca_file: str):
    if not url.startswith(("http://", "https://")):
        raise DownloadFailed(f"bundle URL {url!r} is not http:// or https://; fix the rollout's base URL")
    req = urllib.request.Request(url, headers={"User-Agent": "laps-edge-ota", **headers})
    ctx = None
    if url.startswith("https://"):
        ctx = ssl.create_default_context(cafile=ca_file or None)
    return urllib.request.urlopen(req, timeout=timeout_s, context=ctx)


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.URLError) and not isinstance(err, urllib.error.HTTPError):
        return str(err.reason)
    return str(err) or type(err).__name__


def _disk_reason(err: OSError, folder: Path) -> str:
    if err.errno == errno.ENOSPC:
        what = "the disk is full"
    elif err.errno == errno.EFBIG:
        what = "the file-size limit was reached"
    elif err.errno == errno.EDQUOT:
        what = "the disk quota is exceeded"
    else:
        what = err.strerror or str(err)
    free = shutil.disk_usage(folder).free if folder.exists() else 0
    return f"writing the bundle into {folder} failed: {what} ({free} bytes free); free space and the update is retried"
