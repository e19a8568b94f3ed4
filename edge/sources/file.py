"""Video files read with OpenCV's FFmpeg backend.

What happens with a damaged file (the choice a user of `laps-edge run` on a file would expect):

- missing path -> `SourceNotFoundError` at `open()`;
- 0 bytes, or a well-formed container that holds no video frames -> `SourceEmptyError` at `open()`;
- random bytes, not a video, an MP4 whose `moov` index is missing (recording interrupted before
  the index was written, or the file was cut before its end) -> `SourceUnreadableError` at `open()`;
- a file that opens but stops delivering frames before the count its header announces is judged
  by its container, not by that count (`edge.sources.container`): when every byte the container
  announces is present (an AVI from a variable-rate source whose index is mostly empty
  placeholders, an estimated Matroska count), the decoder reached the stream's own end and the
  file ends cleanly (one INFO line). When the container runs past the end of the file (an MP4
  with its index first that was cut short, a truncated AVI/MKV, a recording never finalised),
  every frame before the damage is delivered normally, then `read()` raises
  `SourceUnreadableError` saying how many frames were decoded and where the container breaks.
  Segments emitted up to that point stay valid; nothing is silently dropped. Pass
  `allow_truncated=True` (`laps-edge run --allow-truncated`, `source.allow_truncated`) to end
  cleanly instead (one warning in the log). A container this module cannot judge falls back to
  the count (a shortfall of more than 1 % is damage).

FFmpeg's and OpenCV's own messages go to the logger `edge.sources.ffmpeg` at DEBUG
(`edge.sources.native_log`), so the user sees our one line, not the decoder's chatter.

Timestamps come from the container's presentation times (`CAP_PROP_POS_MSEC`), made relative to
the first frame, as long as they are finite and strictly increasing; a frame whose reading is not
(some containers report 0 or repeat a value) gets the previous timestamp plus 1/fps instead.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import cv2
import numpy as np

from edge.errors import SourceEmptyError, SourceNotFoundError, SourceUnreadableError
from edge.sources.base import Frame
from edge.sources.capture import DEFAULT_FPS, CaptureClock, CaptureSource
from edge.sources.container import check_container, mp4_structure
from edge.sources.native_log import route_native_logs

log = logging.getLogger(__name__)


class FileSource(CaptureSource):
    """Frames of a video file, decoded by OpenCV's FFmpeg backend.

    `path`: the video file. `allow_truncated`: end cleanly (with a warning) instead of raising
    `SourceUnreadableError` when the file stops short of its announced frame count.
    Frames are (H, W, 3) uint8 BGR; `timestamp_s` is seconds from the first frame.
    """

    def __init__(self, path: str | os.PathLike, allow_truncated: bool = False) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.allow_truncated = allow_truncated
        self._cap: cv2.VideoCapture | None = None
        self._clock: CaptureClock | None = None
        self._index = 0
        self._fps = 0.0
        self._size = (0, 0)
        self._count: int | None = None
        self._pending: np.ndarray | None = None
        self._ended = False

    def open(self) -> None:
        if self._cap is not None:
            return
        route_native_logs()
        _check_file(self.path)
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise _open_failure(self.path)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if math.isfinite(fps) and fps > 0 else DEFAULT_FPS
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self._count = int(count) if math.isfinite(count) and count > 0 else None
        # Decode the first frame now so an empty or undecodable file fails at open(), where the
        # caller expects configuration problems, not in the middle of a processing loop.
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            if self._count:
                raise SourceUnreadableError(
                    f"video file {self.path} announces {self._count} frames but its first frame "
                    f"cannot be decoded: the file is corrupt or uses a codec this OpenCV/FFmpeg "
                    f"build lacks; re-encode it to H.264 or MPEG-4 and try again"
                )
            raise SourceEmptyError(
                f"video file {self.path} contains no video frames; record or export the video "
                f"again and check that it plays"
            )
        self._cap = cap
        self._size = (int(image.shape[1]), int(image.shape[0]))
        self._clock = CaptureClock(self._fps, live=False)
        self._pending = image
        self._index = 0
        self._ended = False

    def read(self) -> Frame | None:
        if self._cap is None:
            raise SourceUnreadableError(
                f"video file {self.path} is not open; call open() or use it in a `with` block"
            )
        if self._ended:
            return None
        if self._pending is not None:
            image, self._pending = self._pending, None
        else:
            ok, image = self._cap.read()
            if not ok or image is None:
                self._ended = True
                self._check_complete()
                return None
        return self._stamp(image)

    @property
    def frames_read(self) -> int:
        """Frames delivered so far."""
        return self._index

    def _check_complete(self) -> None:
        """At the end of decoding: raise (or warn) when the file stopped short of its own end."""
        if self._count is None:
            return
        # Some containers (MKV, AVI without index) only estimate the count from duration * fps,
        # so allow a small shortfall before asking the container.
        tolerance = max(2, int(0.01 * self._count))
        if self._index >= self._count - tolerance:
            return
        check = check_container(self.path)
        pictures_left = check.pictures is not None and self._index < check.pictures - tolerance
        if check.complete and not pictures_left:
            log.info("video file %s: %d frames decoded, its header announces %d; the container is "
                     "complete (%s), so this is the stream's own end", self.path, self._index, self._count,
                     check.detail)
            return
        if check.complete:  # all bytes there, but the index lists pictures the decoder never gave
            detail = f"{check.detail}, but decoding stopped after {self._index}: the video data is damaged"
        else:
            detail = check.detail or "decoding stopped early"
        message = (
            f"video file {self.path} ended after {self._index} of {self._count} frames "
            f"({detail}): the file is truncated or damaged; copy it again from the recorder"
        )
        if self.allow_truncated:
            log.warning("%s; continuing with the frames decoded so far (allow_truncated)", message)
            return
        raise SourceUnreadableError(
            message + ", or accept the frames before the damage with `laps-edge run --allow-truncated` "
            "(service: source.allow_truncated = true)"
        )


def _check_file(path: Path) -> None:
    """Raise the right SourceError for a path that cannot be a readable video file."""
    if not path.exists():
        hint = ""
        if str(path).isdigit():
            hint = f" (to use camera {path}, pass it as a number to the camera source)"
        raise SourceNotFoundError(
            f"video file {path} does not exist{hint}; check the path (relative paths start at "
            f"{os.getcwd()})"
        )
    if path.is_dir():
        raise SourceUnreadableError(
            f"video source {path} is a directory, not a video file; pass the path of one file"
        )
    if not os.access(path, os.R_OK):
        raise SourceUnreadableError(
            f"video file {path} is not readable by this user (permission denied); fix its "
            f"permissions, e.g. `chmod o+r {path}`"
        )
    if path.stat().st_size == 0:
        raise SourceEmptyError(
            f"video file {path} is empty (0 bytes); the recording or copy failed, record or "
            f"copy it again"
        )


def _open_failure(path: Path) -> Exception:
    """The error for a file that exists and is non-empty but OpenCV could not open."""
    diagnosis = mp4_structure(path)
    if diagnosis == "no-video":
        return SourceEmptyError(
            f"video file {path} is a valid MP4 container with no video track or frames; export "
            f"the video again with a video stream"
        )
    if diagnosis is not None:
        return SourceUnreadableError(
            f"video file {path} is truncated or damaged ({diagnosis}); copy it again from the "
            f"recorder, or repair an interrupted recording with a tool such as untrunc"
        )
    return SourceUnreadableError(
        f"video file {path} is not a readable video (corrupt, or a format this OpenCV/FFmpeg "
        f"build cannot decode); check it plays, or re-encode it to H.264 or MPEG-4 in MP4"
    )
