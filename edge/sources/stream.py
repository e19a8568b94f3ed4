"""Network streams (RTSP, HTTP/HTTPS) read with OpenCV's FFmpeg backend, with bounded timeouts.

OpenCV's FFmpeg backend waits 30 s by default before giving up on a silent server; on a device
that must report "camera unreachable" quickly that is too long, so the open and per-read
timeouts are passed in VideoCapture's parameter list (`CAP_PROP_OPEN_TIMEOUT_MSEC`,
`CAP_PROP_READ_TIMEOUT_MSEC`). An unreachable, refusing or silent server fails within
`open_timeout_s` with `StreamUnreachableError`.

End of stream: an HTTP(S) URL naming a finite video ends with `read() -> None` once its
announced frames have been delivered; a live stream (RTSP, or any stream with no frame count)
that stops delivering raises `StreamUnreachableError`, so the service can reconnect.
"""

from __future__ import annotations

import os
import urllib.parse
from contextlib import contextmanager
from typing import Iterator

import cv2
import numpy as np

from edge.errors import ConfigError, StreamUnreachableError
from edge.sources.base import Frame
from edge.sources.capture import CaptureClock, CaptureSource

#: URL schemes this source accepts.
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")

_RTSP_TRANSPORTS = ("tcp", "udp", "udp_multicast", "http", "https")


class StreamSource(CaptureSource):
    """Frames from an RTSP or HTTP(S) URL.

    `open_timeout_s`: longest wait for the connection and the stream header.
    `read_timeout_s`: longest wait for one frame once streaming.
    `rtsp_transport`: force RTSP over "tcp" (reliable through NAT and lossy Wi-Fi) or "udp";
    None keeps FFmpeg's default (UDP, then TCP). Timestamps are the stream's presentation times
    relative to the first frame (wall-clock time since the first frame when those are unusable).
    """

    def __init__(
        self,
        url: str,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        rtsp_transport: str | None = None,
    ) -> None:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme not in STREAM_SCHEMES:
            raise ConfigError(
                f"stream URL {url!r} has scheme {scheme!r}; use one of "
                f"{', '.join(s + '://' for s in STREAM_SCHEMES)}"
            )
        if rtsp_transport is not None and rtsp_transport not in _RTSP_TRANSPORTS:
            raise ConfigError(
                f"rtsp_transport {rtsp_transport!r} is not allowed; use one of "
                f"{', '.join(_RTSP_TRANSPORTS)} or leave it unset"
            )
        if not (open_timeout_s > 0 and read_timeout_s > 0):
            raise ConfigError(
                f"stream timeouts must be positive seconds, got open={open_timeout_s!r} "
                f"read={read_timeout_s!r}; pass e.g. 5"
            )
        self.url = url
        self.name = redact_url(url)
        self.scheme = scheme
        self.open_timeout_s = float(open_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.rtsp_transport = rtsp_transport
        self._cap: cv2.VideoCapture | None = None
        self._clock: CaptureClock | None = None
        self._pending: np.ndarray | None = None
        self._index = 0
        self._fps = 0.0
        self._size = (0, 0)
        self._count: int | None = None
        self._ended = False

    def open(self) -> None:
        if self._cap is not None:
            return
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000),
        ]
        with _ffmpeg_capture_options(self.rtsp_transport if self.scheme.startswith("rtsp") else None):
            cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        self._adopt_stream(
            cap, 25.0,
            not_opened=f"stream {self.name} could not be opened within {self.open_timeout_s:g} s "
                       f"(unreachable host, refused or silent server, wrong path or credentials); "
                       f"check the URL plays in `ffplay` or VLC from this machine",
            no_frame=f"stream {self.name} connected but delivered no frame within "
                     f"{self.read_timeout_s:g} s; check the camera is streaming and its codec is H.264, "
                     f"H.265 or MJPEG",
        )
        self._ended = False

    def read(self) -> Frame | None:
        if self._cap is None:
            raise StreamUnreachableError(
                f"stream {self.name} is not open; call open() or use it in a `with` block"
            )
        if self._ended:
            return None
        image, self._pending = self._pending, None
        if image is None:
            ok, image = self._cap.read()
            if not ok or image is None:
                if self._count is not None and self._index >= self._count - max(2, self._count // 100):
                    self._ended = True
                    return None
                raise StreamUnreachableError(
                    f"stream {self.name} stopped delivering frames after {self._index} frames "
                    f"(no frame within {self.read_timeout_s:g} s, or the connection closed); "
                    f"check the network and the camera, the service reconnects"
                )
        return self._stamp(image)


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, for messages and logs."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


@contextmanager
def _ffmpeg_capture_options(rtsp_transport: str | None) -> Iterator[None]:
    """Set OpenCV's FFmpeg option variable for one open() call, then restore it.

    OpenCV reads `OPENCV_FFMPEG_CAPTURE_OPTIONS` ("key;value|key;value") when a capture opens;
    it is the only way to pass demuxer options such as `rtsp_transport`. A value the user
    exported themselves is kept and extended.
    """
    if rtsp_transport is None:
        yield
        return
    key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
    before = os.environ.get(key)
    options = [o for o in (before or "").split("|") if o and not o.startswith("rtsp_transport;")]
    os.environ[key] = "|".join(options + [f"rtsp_transport;{rtsp_transport}"])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before
