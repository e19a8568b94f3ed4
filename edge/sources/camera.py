"""USB / V4L2 cameras, by index (`0`) or device node (`/dev/video0`).

Before OpenCV touches the device, `open()` opens the node itself (`os.open(O_RDWR|O_NONBLOCK)`)
and asks the driver what it is (`VIDIOC_QUERYCAP`), because OpenCV only says "can't open
camera by index" whatever went wrong. The errno tells a person what to do: ENOENT/ENODEV/ENXIO
(absent or unplugged), EACCES/EPERM (permissions: the `video` group, or a container that was not
given the device), EBUSY (another process holds it), ENOTTY (not a V4L2 device at all). A node
that is a V4L2 device but cannot capture video (a UVC metadata node) is reported as such.

A camera that stops delivering frames raises `CameraUnavailableError` from `read()`: a live
source has no end of stream, so a failed read means it was unplugged or stalled, and the service
reconnects with back-off.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
import time

import cv2
import numpy as np

from edge.errors import CameraUnavailableError, ConfigError
from edge.sources.base import Frame
from edge.sources.capture import CaptureClock, CaptureSource

log = logging.getLogger(__name__)

# VIDIOC_QUERYCAP = _IOR('V', 0, struct v4l2_capability); the struct is 104 bytes:
# driver[16] card[32] bus_info[32] version u32 capabilities u32 device_caps u32 reserved[3] u32.
_VIDIOC_QUERYCAP = (2 << 30) | (104 << 16) | (ord("V") << 8) | 0
_V4L2_CAP_VIDEO_CAPTURE = 0x00000001
_V4L2_CAP_VIDEO_CAPTURE_MPLANE = 0x00001000
_V4L2_CAP_DEVICE_CAPS = 0x80000000

_FIX_ABSENT = "list cameras with `ls /dev/video*` and check the cable"
_FIX_PERMISSION = (
    "add the service user to the 'video' group (`sudo usermod -aG video $USER`, then log in "
    "again), or in a container pass the device (`--device {dev}`)"
)


class CameraSource(CaptureSource):
    """Frames from a V4L2 camera.

    `index_or_dev_path`: a camera index (`0`, `"0"`) meaning `/dev/video0`, or a device path.
    `fourcc`: pixel format to ask for, e.g. "MJPG" (USB cameras need it for 720p at 30 fps).
    `read_timeout_s`: longest wait for a frame where the V4L2 backend supports a read timeout.
    `width`, `height`, `fps`: requested capture mode; the driver picks the nearest mode it
    supports and the source reports what it actually got (`frame_size`, `fps`), logging a
    warning when that differs from the request. Timestamps are the driver's buffer times
    relative to the first frame (wall-clock time since the first frame when those are unusable).
    """

    def __init__(
        self,
        index_or_dev_path: int | str,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        fourcc: str | None = None,
        read_timeout_s: float = 5.0,
    ) -> None:
        if fourcc is not None and (len(fourcc) != 4 or not fourcc.isascii()):
            raise ConfigError(
                f"camera pixel format {fourcc!r} is not a four-character code; use e.g. 'MJPG' "
                f"or 'YUYV' (`v4l2-ctl --list-formats` shows what the camera offers)"
            )
        self.fourcc = fourcc
        self.device = camera_device_path(index_or_dev_path)
        self.name = self.device
        self.requested = (width, height, fps)
        self.read_timeout_s = read_timeout_s
        self._cap: cv2.VideoCapture | None = None
        self._clock: CaptureClock | None = None
        self._index = 0
        self._fps = 0.0
        self._size = (0, 0)
        self._pending: np.ndarray | None = None
        #: the card name the driver reports, after open()
        self.card = ""

    def open(self) -> None:
        if self._cap is not None:
            return
        self.card = probe_v4l2_device(self.device)
        # No parameter list here: a backend that does not know a parameter refuses to open at
        # all (OpenCV bails out on unused open() parameters); the read timeout is set after.
        cap = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not cap.isOpened():
            cap.release()
            raise CameraUnavailableError(
                f"camera {self.device} ({self.card}) could not be opened by OpenCV's V4L2 backend "
                f"(busy, or no format OpenCV can capture); check `fuser {self.device}` and "
                f"`v4l2-ctl -d {self.device} --list-formats-ext`"
            )
        # V4L2 backends that support it stop a read after this long (default 10 s) instead of
        # blocking on a stalled camera; where unsupported, set() just returns False.
        cap.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000))
        width, height, fps = self.requested
        if self.fourcc:
            # before the size: most UVC cameras reach 720p at 30 fps only in MJPG
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(width))
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(height))
        if fps:
            cap.set(cv2.CAP_PROP_FPS, float(fps))
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            raise CameraUnavailableError(
                f"camera {self.device} ({self.card}) opened but delivered no frame within "
                f"{self.read_timeout_s:g} s (busy with another process, or the USB bandwidth is "
                f"exhausted); check `fuser {self.device}`, or lower the resolution or fps"
            )
        self._size = (int(image.shape[1]), int(image.shape[0]))
        got_fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = float(got_fps) if got_fps and got_fps > 0 else float(fps or 30.0)
        if (width and width != self._size[0]) or (height and height != self._size[1]):
            log.warning("camera %s: asked for %sx%s, the driver gave %dx%d",
                        self.device, width, height, *self._size)
        if fps and abs(self._fps - fps) > 0.5:
            log.warning("camera %s: asked for %g fps, the driver gave %g", self.device, fps,
                        self._fps)
        self._cap = cap
        self._clock = CaptureClock(self._fps, live=True)
        self._index = 0
        self._pending = image

    def read(self) -> Frame | None:
        if self._cap is None:
            raise CameraUnavailableError(
                f"camera {self.device} is not open; call open() or use it in a `with` block"
            )
        image, self._pending = self._pending, None
        if image is None:
            t0 = time.monotonic()
            ok, image = self._cap.read()
            if not ok or image is None:
                raise CameraUnavailableError(
                    f"camera {self.device} stopped delivering frames after {self._index} frames "
                    f"({time.monotonic() - t0:.1f} s without a frame): unplugged or stalled; "
                    f"check the cable and `dmesg`, the service reconnects"
                )
        return self._stamp(image)


def camera_device_path(index_or_dev_path: int | str) -> str:
    """`0` or `"0"` -> `/dev/video0`; a path is returned unchanged."""
    if isinstance(index_or_dev_path, bool):
        raise CameraUnavailableError(
            f"camera {index_or_dev_path!r} is not a camera index or device path; pass e.g. 0 or "
            f"/dev/video0"
        )
    if isinstance(index_or_dev_path, int):
        if index_or_dev_path < 0:
            raise CameraUnavailableError(
                f"camera index {index_or_dev_path} is negative; pass 0 for /dev/video0, 1 for "
                f"/dev/video1, ... ({_FIX_ABSENT})"
            )
        return f"/dev/video{index_or_dev_path}"
    text = str(index_or_dev_path).strip()
    if text.isdigit():
        return f"/dev/video{int(text)}"
    return text


def probe_v4l2_device(device: str) -> str:
    """Check that `device` is a V4L2 node this process can open and that it captures video.

    Returns the card name the driver reports. Raises `CameraUnavailableError` with a message
    built from the errno (see `errno_message`) or naming what the node is instead.
    """
    try:
        fd = os.open(device, os.O_RDWR | os.O_NONBLOCK)
    except OSError as err:
        raise CameraUnavailableError(errno_message(device, err.errno)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISCHR(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a regular file"
            raise CameraUnavailableError(
                f"camera {device} is {kind}, not a video device; pass a camera node such as "
                f"/dev/video0 ({_FIX_ABSENT}), or open a video file as a file source"
            )
        buf = bytearray(104)
        try:
            fcntl.ioctl(fd, _VIDIOC_QUERYCAP, buf)
        except OSError as err:
            raise CameraUnavailableError(errno_message(device, err.errno)) from None
        card = buf[16:48].split(b"\0", 1)[0].decode("utf-8", "replace")
        caps, device_caps = struct.unpack_from("<II", buf, 84)
        if caps & _V4L2_CAP_DEVICE_CAPS:
            caps = device_caps
        if not caps & (_V4L2_CAP_VIDEO_CAPTURE | _V4L2_CAP_VIDEO_CAPTURE_MPLANE):
            raise CameraUnavailableError(
                f"camera {device} ({card}) is a V4L2 node that cannot capture video (a UVC "
                f"camera's metadata node, or an output device); try the neighbouring node, "
                f"`v4l2-ctl --list-devices` shows which node of the camera captures"
            )
        return card
    finally:
        os.close(fd)


def errno_message(device: str, code: int | None) -> str:
    """The one-line message for an errno met while opening or querying a camera node."""
    name = errno.errorcode.get(code or 0, str(code))
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return (
            f"camera {device} is not present ({name}: no such device, or unplugged); "
            f"{_FIX_ABSENT}, and that the user is in the 'video' group"
        )
    if code in (errno.EACCES, errno.EPERM):
        return f"camera {device}: permission denied ({name}); " + _FIX_PERMISSION.format(dev=device)
    if code == errno.EBUSY:
        return (
            f"camera {device} is busy ({name}): another process is using it; find it with "
            f"`fuser -v {device}` and stop it"
        )
    if code == errno.ENOTTY:
        return (
            f"camera {device} is not a V4L2 video device ({name}: it does not answer "
            f"VIDIOC_QUERYCAP); {_FIX_ABSENT}"
        )
    return (
        f"camera {device} could not be opened ({name}: {os.strerror(code or 0)}); "
        f"{_FIX_ABSENT}"
    )
