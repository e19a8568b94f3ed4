"""Rings of JPEG stills of the most recent frames, keyed by `Frame.index`, so a finished
segment can carry its keyframes and a short clip without keeping the stream in memory."""

from __future__ import annotations

import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)


class KeyframeRing:
    """JPEG stills of the most recent frames, so a finished segment's keyframes can be uploaded.

    A ring of `capacity` frames (default 1200 = 2 minutes at 10 fps, ~10-20 MB at 320x240):
    a keyframe older than the ring is reported missing rather than kept forever.
    """

    def __init__(self, capacity: int = 1200, quality: int = 85) -> None:
        self.capacity = capacity
        self.quality = quality
        self._ring: OrderedDict[int, bytes] = OrderedDict()
        self.missing = 0

    def clear(self) -> None:
        """Forget every frame (a new stream starts)."""
        self._ring.clear()

    def add(self, index: int, image: np.ndarray) -> None:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            self._ring[index] = buf.tobytes()
            while len(self._ring) > self.capacity:
                self._ring.popitem(last=False)

    def take(self, indices: list[int]) -> dict[int, bytes]:
        """The stills of `indices` still held (a missing one is counted in `missing`)."""
        out: dict[int, bytes] = {}
        for i in indices:
            data = self._ring.get(i)
            if data is None:
                self.missing += 1
            else:
                out[i] = data
        return out


class ClipRecorder:
    """Keeps the last `max_s` seconds of frames as small JPEGs to cut a clip when a segment ends.

    fps: frames per second of the stream it sees. scale: frames are downscaled by this factor
    before encoding (memory: roughly fps * max_s * 10 KB at 320x240 and scale 0.5).
    """

    def __init__(self, fps: float, max_s: float = 10.0, scale: float = 0.5, quality: int = 80) -> None:
        self.fps, self.scale, self.quality = float(fps), float(scale), int(quality)
        self.capacity = max(1, int(round(max_s * fps)))
        self._ring: OrderedDict[int, bytes] = OrderedDict()
        self._size: tuple[int, int] | None = None

    def clear(self) -> None:
        """Forget every frame (a new stream starts)."""
        self._ring.clear()

    def add(self, index: int, image: np.ndarray) -> None:
        if self.scale != 1.0:
            image = cv2.resize(image, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if ok:
            self._size = (image.shape[1], image.shape[0])
            self._ring[index] = buf.tobytes()
            while len(self._ring) > self.capacity:
                self._ring.popitem(last=False)

    def clip(self, start_frame: int, end_frame: int) -> bytes | None:
        """MJPEG AVI bytes of frames [start_frame, end_frame) still in the ring (the newest
        `max_s` seconds of a longer segment); None when none of them is left."""
        frames = [self._ring[i] for i in range(start_frame, end_frame) if i in self._ring]
        if not frames or self._size is None:
            return None
        fd, name = tempfile.mkstemp(suffix=".avi")
        os.close(fd)
        try:
            writer = cv2.VideoWriter(name, cv2.VideoWriter_fourcc(*"MJPG"), self.fps, self._size)
            if not writer.isOpened():
                log.warning("OpenCV cannot write MJPEG AVI clips here; clips disabled for this segment")
                return None
            for data in frames:
                writer.write(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
            writer.release()
            return Path(name).read_bytes()
        finally:
            os.unlink(name)
