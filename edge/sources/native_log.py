"""Keep FFmpeg's and OpenCV's own messages out of the user's one line: log them at DEBUG.

FFmpeg (inside OpenCV's video I/O) prints straight to stderr from C: "moov atom not found",
"stream 0, offset 0x5a57: partial file", "ac-tex damaged at 8 4", ... A damaged file then ends
in several lines of that before our one-line `error: ...`. `route_native_logs()` installs an
`av_log` callback (through ctypes, on the libavutil OpenCV loaded) that formats each message
with FFmpeg's own `av_log_format_line2` and hands it to the logger `edge.sources.ffmpeg` at
DEBUG (`laps-edge -v` shows them). OpenCV's own C++ warnings ("backend is generally available
but can't be used to capture by name") cannot be redirected from Python, only levelled: they
are lowered to errors unless DEBUG logging is on when the first file is opened.

Where OpenCV links FFmpeg statically (no libavutil in the process) the messages stay on stderr;
that is logged once at DEBUG. Idempotent and thread-safe; the callback is removed at exit so
FFmpeg never calls into a finalised interpreter.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import threading

log = logging.getLogger("edge.sources.ffmpeg")

_AV_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_LINE_BYTES = 1024
_lock = threading.Lock()
_installed = False
_callback = None  # the ctypes function object must outlive every FFmpeg call


def route_native_logs() -> None:
    """Send FFmpeg's messages to `edge.sources.ffmpeg` at DEBUG and quiet OpenCV's warnings (once)."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    _quiet_opencv()
    _route_ffmpeg()


def _quiet_opencv() -> None:
    if log.isEnabledFor(logging.DEBUG):
        return
    import cv2

    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:  # a build without the logging utilities: leave it as it is
        pass


def _libavutil_path() -> str | None:
    """The libavutil shared object this process has loaded (OpenCV's), or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.rstrip("\n").split(maxsplit=5)
                if len(parts) == 6 and "/libavutil" in parts[5]:
                    return parts[5]
    except OSError:
        pass
    return None


def _route_ffmpeg() -> None:
    global _callback
    import cv2  # noqa: F401 - loads OpenCV and, with it, FFmpeg's libraries

    path = _libavutil_path()
    if path is None:
        log.debug("libavutil is not loaded as a shared library; FFmpeg's messages stay on stderr")
        return
    try:
        lib = ctypes.CDLL(path)
        set_callback = lib.av_log_set_callback
        get_level = lib.av_log_get_level
        format_line = lib.av_log_format_line2
    except (OSError, AttributeError) as err:
        log.debug("cannot hook FFmpeg's log in %s (%s); its messages stay on stderr", path, err)
        return
    set_callback.argtypes = [ctypes.c_void_p]
    set_callback.restype = None
    get_level.restype = ctypes.c_int
    format_line.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                            ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    format_line.restype = ctypes.c_int

    def on_message(avcl, level, fmt, va) -> None:
        # Runs on FFmpeg's threads too (ctypes takes the GIL); it must never raise.
        try:
            if level > get_level() or not log.isEnabledFor(logging.DEBUG):
                return
            line = ctypes.create_string_buffer(_LINE_BYTES)
            prefix = ctypes.c_int(1)  # per call: FFmpeg's threads must not share it
            format_line(avcl, level, fmt, va, line, _LINE_BYTES, ctypes.byref(prefix))
            text = line.value.decode("utf-8", "replace").strip()
            if text:
                log.debug("%s", text)
        except Exception:  # noqa: BLE001 - a logging hook must not take a decoder thread down
            pass

    _callback = _AV_LOG_CALLBACK(on_message)
    set_callback(ctypes.cast(_callback, ctypes.c_void_p))
    default = ctypes.cast(lib.av_log_default_callback, ctypes.c_void_p)
    atexit.register(set_callback, default)
