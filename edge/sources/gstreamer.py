"""GStreamer pipelines (e.g. a Jetson's CSI camera through nvarguscamerasrc), via OpenCV.

Only an OpenCV built with GStreamer can run a pipeline; the pip wheels (`opencv-python*`) are
built without it. `gstreamer_available()` answers from `cv2.getBuildInformation()` (the doctor
command reports it); opening a pipeline without it raises `GStreamerUnavailableError` saying
what to install.

A pipeline that does not end in an `appsink` gets the standard tail appended
(`videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=2 sync=false`), so a user
can write just the capture part: `nvarguscamerasrc ! video/x-raw(memory:NVMM),width=1280,...`.
"""

from __future__ import annotations

import functools
import re

import cv2
import numpy as np

from edge.errors import ConfigError, StreamUnreachableError
from edge.sources.base import Frame
from edge.sources.capture import CaptureClock, CaptureSource

#: appended to a pipeline that has no appsink of its own
APPSINK_TAIL = "videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=2 sync=false"


class GStreamerUnavailableError(StreamUnreachableError):
    """The installed OpenCV was built without GStreamer, so no pipeline can be opened."""


@functools.lru_cache(maxsize=1)
def gstreamer_available() -> bool:
    """True when the installed OpenCV was built with GStreamer support."""
    match = re.search(r"^\s*GStreamer:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return bool(match) and match.group(1).upper() == "YES"


def complete_pipeline(pipeline: str) -> str:
    """The pipeline text OpenCV is given: `gst:` prefix removed, an appsink tail added if missing."""
    text = pipeline.strip()
    if text.startswith("gst:"):
        text = text[len("gst:"):].strip()
    if not text:
        raise ConfigError(
            f"GStreamer pipeline {pipeline!r} is empty; write e.g. "
            f"'gst:v4l2src device=/dev/video0 ! videoconvert ! appsink'"
        )
    if re.search(r"(^|!)\s*appsink\b", text) is None:
        text = text.rstrip(" !") + " ! " + APPSINK_TAIL
    return text


class GStreamerSource(CaptureSource):
    """Frames from a GStreamer pipeline (text as for `gst-launch-1.0`, ending in an appsink).

    Live by nature: a pipeline that stops delivering raises `StreamUnreachableError` from
    `read()` (the service reconnects); a pipeline that reaches end-of-stream (a file source
    inside it) ends with `read() -> None` once its announced frames are delivered.
    """

    def __init__(self, pipeline: str) -> None:
        self.pipeline = complete_pipeline(pipeline)
        self.name = f"gst:{self.pipeline}"
        self._cap: cv2.VideoCapture | None = None
        self._clock: CaptureClock | None = None
        self._pending: np.ndarray | None = None
        self._index = 0
        self._fps = 0.0
        self._size = (0, 0)
        self._count: int | None = None

    def open(self) -> None:
        if self._cap is not None:
            return
        if not gstreamer_available():
            raise GStreamerUnavailableError(
                f"this OpenCV {cv2.__version__} was built without GStreamer, so pipeline "
                f"{self.pipeline!r} cannot run; install an OpenCV built with GStreamer (on a "
                f"Jetson: `sudo apt install python3-opencv` and `pip uninstall "
                f"opencv-python-headless` in the venv) or use a file, rtsp:// or camera source"
            )
        cap = cv2.VideoCapture(self.pipeline, cv2.CAP_GSTREAMER)
        self._adopt_stream(
            cap, 30.0,
            not_opened=f"GStreamer pipeline {self.pipeline!r} failed to start; run it with "
                       f"`gst-launch-1.0` (replacing appsink by fakesink) to see the element that fails",
            no_frame=f"GStreamer pipeline {self.pipeline!r} started but delivered no frame; check "
                     f"the source element and that the caps end in video/x-raw,format=BGR",
        )

    def read(self) -> Frame | None:
        if self._cap is None:
            raise StreamUnreachableError(
                f"GStreamer pipeline {self.pipeline!r} is not open; call open() or use a `with` block"
            )
        image, self._pending = self._pending, None
        if image is None:
            ok, image = self._cap.read()
            if not ok or image is None:
                if self._count is not None and self._index >= self._count - max(2, self._count // 100):
                    return None
                raise StreamUnreachableError(
                    f"GStreamer pipeline {self.pipeline!r} stopped delivering frames after "
                    f"{self._index} frames; check the camera, the service reconnects"
                )
        return self._stamp(image)

