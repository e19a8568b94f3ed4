"""Turn a user's source string into a frame source: `open_source(spec, fps=None, size=None)`.

| spec                                         | source                          |
|----------------------------------------------|---------------------------------|
| `synthetic://assembly?seed=7&minutes=2`      | `SyntheticSource.from_uri(spec)` |
| `rtsp://…`, `rtsps://…`, `http://…`, `https://…` | `StreamSource(spec)`        |
| `gst:<pipeline>`, or any text containing ` ! ` | `GStreamerSource(pipeline)`   |
| `0`, `1`, …, `/dev/videoN`, `/dev/v4l/by-id/…` | `CameraSource(spec)`          |
| `file:///path/video.mp4` or any other text   | `FileSource(path)`              |

The source is returned NOT opened; open it with `with open_source(...) as src:` (or `.open()`),
which is where a missing file or unreachable camera raises its `SourceError`. With `fps` the
frames are resampled by timestamp (`FpsResampler`); with `size` = (width, height) they are then
resized (`ResizeSource`).
"""

from __future__ import annotations

import os
import re
import urllib.parse

from edge.errors import ConfigError
from edge.sources.base import FrameSource
from edge.sources.resample import check_fps, check_size, resample, resize
from edge.sources.stream import STREAM_SCHEMES
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_source(
    spec: str | int | os.PathLike,
    fps: float | None = None,
    size: tuple[int, int] | None = None,
    allow_truncated: bool = False,
) -> FrameSource:
    """The frame source named by `spec` (see the module table), optionally resampled and resized.

    `fps`: deliver frames at this rate, chosen by timestamp (None: the source's own rate).
    `size`: (width, height) in pixels to resize every delivered frame to (None: unchanged).
    `allow_truncated`: a video file cut short ends cleanly after its last good frame instead of
    raising (files only; see `edge.sources.file`).
    Raises ConfigError for a malformed spec, fps or size; source errors surface at `open()`.
    """
    if fps is not None:
        fps = check_fps(fps)
    if size is not None:
        size = check_size(size)
    source = source_for_spec(spec, allow_truncated=allow_truncated)
    if fps is not None:
        source = resample(source, fps)
    if size is not None:
        source = resize(source, size)
    return source


def source_for_spec(spec: str | int | os.PathLike, allow_truncated: bool = False) -> FrameSource:
    """The bare (not resampled, not resized, not opened) source for `spec`; `allow_truncated`
    goes to a `FileSource`."""
    if isinstance(spec, bool):
        raise ConfigError(f"source {spec!r} is not a source; pass a file path, URL or camera index")
    if isinstance(spec, int):
        from edge.sources.camera import CameraSource

        return CameraSource(spec)
    text = os.fspath(spec).strip() if isinstance(spec, os.PathLike) else str(spec).strip()
    if not text:
        raise ConfigError(
            "source is empty; give a video file path, rtsp:// or http(s):// URL, camera index "
            "or /dev/videoN, gst:<pipeline>, or synthetic://assembly"
        )
    match = _URL.match(text)
    scheme = match.group(1).lower() if match else ""
    if scheme == "synthetic":
        from edge.sources.synthetic import SyntheticSource

        return SyntheticSource.from_uri(text)
    if scheme in STREAM_SCHEMES:
        from edge.sources.stream import StreamSource

        return StreamSource(text)
    if text.startswith("gst:") or " ! " in text:
        from edge.sources.gstreamer import GStreamerSource

        return GStreamerSource(text)
    if text.isdigit() or re.fullmatch(r"/dev/video\d+", text) or text.startswith("/dev/v4l/"):
        from edge.sources.camera import CameraSource

        return CameraSource(text)
    if scheme == "file":
        path = urllib.parse.unquote(urllib.parse.urlsplit(text).path)
        from edge.sources.file import FileSource

        return FileSource(path, allow_truncated=allow_truncated)
    if scheme:
        raise ConfigError(
            f"source {text!r} has an unsupported scheme {scheme + '://'!r}; use a file path, "
            f"rtsp://, rtsps://, http(s)://, gst:<pipeline>, a camera index or /dev/videoN, or "
            f"synthetic://"
        )
    from edge.sources.file import FileSource

    return FileSource(text, allow_truncated=allow_truncated)
