"""Fixtures for the frame-source tests: real video files written with OpenCV, MP4 surgery
(moving the index first, cutting files short), and real loopback servers (HTTP with byte ranges,
a silent TCP server, a port nobody listens on)."""

from __future__ import annotations

import http.server
import re
import socket
import struct
import threading
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import pytest


def _textured_frames(n_frames: int, size: tuple[int, int], seed: int = 0) -> Iterator[np.ndarray]:
    """Smooth random texture scrolling 2 px per frame, so frames differ and compress well."""
    w, h = size
    rng = np.random.default_rng(seed)
    big = rng.random((h + 8, w + 2 * n_frames + 8)).astype(np.float32)
    big = cv2.GaussianBlur(big, (0, 0), 2.0)
    big = ((big - big.min()) / (big.max() - big.min()) * 255).astype(np.uint8)
    for i in range(n_frames):
        grey = big[4:4 + h, 2 * i:2 * i + w]
        yield cv2.merge([grey, np.roll(grey, 3, axis=0), 255 - grey])


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """`make_video(name, n_frames=30, fps=30.0, size=(160, 120), fourcc="mp4v") -> Path`."""

    def make(name: str, n_frames: int = 30, fps: float = 30.0, size: tuple[int, int] = (160, 120),
             fourcc: str = "mp4v") -> Path:
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        assert writer.isOpened(), f"OpenCV cannot write {path} with {fourcc}"
        for image in _textured_frames(n_frames, size):
            writer.write(image)
        writer.release()
        return path

    return make


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of the ISO-BMFF boxes in data[start:end] (32-bit sizes only)."""
    out = []
    offset = start
    while offset < end:
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        assert size >= 8, "64-bit box sizes are not needed for these small test files"
        out.append((kind, offset, size))
        offset += size
    return out


def _shift_chunk_offsets(moov: bytearray, delta: int) -> None:
    """Add `delta` to every stco chunk offset inside a moov box (in place)."""
    containers = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}

    def walk(start: int, end: int) -> None:
        for kind, offset, size in _boxes(moov, start, end):
            if kind in containers:
                walk(offset + 8, offset + size)
            elif kind == b"stco":
                count = struct.unpack(">I", moov[offset + 12:offset + 16])[0]
                for i in range(count):
                    pos = offset + 16 + 4 * i
                    value = struct.unpack(">I", moov[pos:pos + 4])[0]
                    moov[pos:pos + 4] = struct.pack(">I", value + delta)
            elif kind == b"co64":
                raise AssertionError("co64 offsets are not expected in these small test files")

    walk(8, len(moov))


@pytest.fixture
def faststart() -> Callable[[Path, Path], Path]:
    """`faststart(src, dst)`: rewrite an MP4 with its moov index before the media data (what
    `ffmpeg -movflags +faststart` does), so a copy cut short still has an index to decode from."""

    def convert(src: Path, dst: Path) -> Path:
        data = src.read_bytes()
        boxes = _boxes(data, 0, len(data))
        moov = [b for b in boxes if b[0] == b"moov"]
        assert len(moov) == 1, f"{src} has no single moov box"
        _, m_off, m_size = moov[0]
        moov_bytes = bytearray(data[m_off:m_off + m_size])
        first_media = min(off for kind, off, _ in boxes if kind == b"mdat")
        assert m_off > first_media, f"{src} already has its index first"
        _shift_chunk_offsets(moov_bytes, m_size)
        rest = b"".join(data[off:off + size] for kind, off, size in boxes
                        if kind != b"moov" and off >= first_media)
        dst.write_bytes(data[:first_media] + bytes(moov_bytes) + rest)
        return dst

    return convert


@pytest.fixture
def cut_file(tmp_path: Path) -> Callable[[Path, float], Path]:
    """`cut_file(path, fraction)`: a copy holding only the first `fraction` of the bytes."""

    def cut(path: Path, fraction: float) -> Path:
        data = path.read_bytes()
        dst = tmp_path / f"cut-{fraction:g}-{path.name}"
        dst.write_bytes(data[: int(len(data) * fraction)])
        return dst

    return cut


class _RangeFileHandler(http.server.BaseHTTPRequestHandler):
    """Serves files of one directory with HTTP byte ranges, as nginx or a camera would."""

    directory = Path(".")

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.directory / Path(self.path.split("?", 1)[0]).name
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) else len(data) - 1
            body = data[first:last + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{first + len(body) - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real loopback HTTP server with byte ranges; yields (base URL, directory it serves)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_RangeFileHandler,), {"directory": root})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A loopback TCP server that accepts connections and never answers; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except socket.timeout:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        sock.close()


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_sparse_avi(path: Path, pictures: int, slots: int, fps: float = 10.0,
                     size: tuple[int, int] = (160, 120)) -> Path:
    """An intact MJPEG AVI with `slots` index entries of which only `pictures` hold a frame; the
    rest are empty '00dc' chunks. This is what FFmpeg's AVI muxer writes for a variable-rate
    source (a constant-rate container that marks the frames it did not get): the header
    announces `slots` frames, a decoder gives `pictures`."""
    w, h = size

    def chunk(fourcc: bytes, data: bytes) -> bytes:
        return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    def riff_list(kind: bytes, body: bytes) -> bytes:
        return b"LIST" + struct.pack("<I", len(body) + 4) + kind + body

    real = set(np.linspace(0, slots - 1, pictures).round().astype(int).tolist())
    images = _textured_frames(pictures, size)
    movi, idx1, offset = b"", b"", 4
    for slot in range(slots):
        data = cv2.imencode(".jpg", next(images))[1].tobytes() if slot in real else b""
        idx1 += b"00dc" + struct.pack("<III", 0x10 if data else 0, offset, len(data))
        piece = chunk(b"00dc", data)
        movi += piece
        offset += len(piece)
    avih = struct.pack("<10I4I", int(1e6 / fps), 0, 0, 0x10, slots, 0, 1, 0, w, h, 0, 0, 0, 0)
    strh = b"vids" + b"MJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, int(fps), 0, slots, 0,
                                           0xFFFFFFFF, 0, 0, 0, w, h)
    strf = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, int.from_bytes(b"MJPG", "little"), w * h * 3, 0, 0, 0, 0)
    hdrl = riff_list(b"hdrl", chunk(b"avih", avih) + riff_list(b"strl", chunk(b"strh", strh) + chunk(b"strf", strf)))
    body = b"AVI " + hdrl + riff_list(b"movi", movi) + chunk(b"idx1", idx1)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.fixture
def sparse_avi(tmp_path: Path) -> Callable[..., Path]:
    """`sparse_avi(name, pictures=68, slots=444)`: see `write_sparse_avi`."""

    def make(name: str = "sparse.avi", pictures: int = 68, slots: int = 444) -> Path:
        return write_sparse_avi(tmp_path / name, pictures, slots)

    return make
