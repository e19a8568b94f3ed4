"""A small file system of our own for full-disk and read-only tests: a real tmpfs, mounted by
the test and unmounted afterwards; the test is skipped (with the reason) where mounting is not
permitted (not root, no CAP_SYS_ADMIN, a locked-down container)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


@contextmanager
def mounted_tmpfs(path: Path, size_bytes: int, read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of `size_bytes` at `path` (created) for the duration of the block."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("mount/umount are not installed: the full-disk test needs a tmpfs of its own")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={int(size_bytes)},mode=0755" + (",ro" if read_only else "")
    proc = subprocess.run([mount, "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}): the "
                    "full-disk test needs root or CAP_SYS_ADMIN")
    try:
        yield path
    finally:
        if subprocess.run([umount, str(path)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run([umount, "-l", str(path)], capture_output=True, timeout=30)  # busy: detach


def fill(path: Path, leave_bytes: int = 0) -> int:
    """Write a filler file into `path` until at most `leave_bytes` are free; returns its size."""
    filler = path / "filler.bin"
    chunk = b"\0" * 65536
    written = 0
    with open(filler, "ab") as fh:
        while True:
            st = os.statvfs(path)
            free = st.f_bavail * st.f_frsize
            if free <= leave_bytes:
                break
            try:
                written += fh.write(chunk[: max(1, min(len(chunk), free - leave_bytes))])
                fh.flush()
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise
                break
    return written


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
