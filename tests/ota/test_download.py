"""Bundle downloads (`edge.ota.download`) over a real HTTP server on loopback: resume after a
cut, streaming sha256, a tampered file, the disk check and a file-size limit mid-download."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest

from edge.ota.download import check_disk_space, download_file
from edge.ota.errors import BundleRejected, DownloadFailed
from ota_testkit import REPO, CuttingServer


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_cut_download_resumes_with_range_and_completes_with_the_right_hash(bundles, tmp_path):
    src = bundles["v2"] / "tokenizer.onnx"
    size = src.stat().st_size
    server = CuttingServer(src, cut_at=size // 2)
    dest = tmp_path / "tokenizer.onnx"
    try:
        with pytest.raises(DownloadFailed, match="will resume"):
            download_file(server.url, dest, sha256=digest(src), size=size, timeout_s=5)
        part = tmp_path / "tokenizer.onnx.part"
        assert part.stat().st_size == size // 2 and not dest.exists()
        transferred = download_file(server.url, dest, sha256=digest(src), size=size, timeout_s=5)
    finally:
        server.close()
    assert server.ranges == ["", f"bytes={size // 2}-"]
    assert transferred == size - size // 2  # only the missing half travelled again
    assert digest(dest) == digest(src) and not part.exists()


def test_bytes_that_do_not_match_the_signed_hash_are_refused_and_deleted(bundles, tmp_path):
    good = bundles["v2"] / "tokenizer.onnx"
    server = CuttingServer(bundles["v8-tampered-file"] / "tokenizer.onnx", cut_at=0, cuts=0)
    dest = tmp_path / "tokenizer.onnx"
    try:
        with pytest.raises(BundleRejected, match="tampered"):
            download_file(server.url, dest, sha256=digest(good), size=good.stat().st_size, timeout_s=5)
    finally:
        server.close()
    assert not dest.exists() and not (tmp_path / "tokenizer.onnx.part").exists()


def test_the_disk_check_refuses_a_bundle_larger_than_the_free_space(tmp_path):
    free = os.statvfs(tmp_path).f_bavail * os.statvfs(tmp_path).f_frsize
    with pytest.raises(DownloadFailed, match="not enough disk space"):
        check_disk_space(tmp_path, needed_bytes=free + 1)
    check_disk_space(tmp_path, needed_bytes=1)


def test_a_file_size_limit_hit_during_the_download_fails_cleanly_without_a_torn_file(bundles, tmp_path):
    # A real write error (EFBIG from RLIMIT_FSIZE, as a full disk gives ENOSPC) in a child process.
    src = bundles["v2"] / "tokenizer.onnx"
    server = CuttingServer(src, cut_at=0, cuts=0)
    script = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))
from edge.ota.download import download_file
from edge.ota.errors import DownloadFailed
try:
    download_file({server.url!r}, {str(tmp_path / 'tokenizer.onnx')!r}, sha256={digest(src)!r},
                  size={src.stat().st_size}, timeout_s=5)
except DownloadFailed as err:
    print("FAILED", err)
"""
    try:
        out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60)
    finally:
        server.close()
    assert out.stdout.startswith("FAILED") and "file-size limit" in out.stdout, out.stdout + out.stderr
    assert not (tmp_path / "tokenizer.onnx").exists() and not (tmp_path / "tokenizer.onnx.part").exists()
