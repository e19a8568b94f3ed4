"""Typed errors whose message is one line for a person: what went wrong, the value, the fix.

Every CLI catches `LapsError` and prints `error: <message>` with a non-zero exit, never a
traceback. Subsystems subclass it so callers (and tests) can tell failures apart.
"""

from __future__ import annotations


class LapsError(Exception):
    """Base class of every user-facing error. `str(err)` is a single line."""

    def __init__(self, message: str) -> None:
        # One line, always: a multi-line message breaks log parsers and the CLI promise.
        super().__init__(" ".join(message.split()))


class ConfigError(LapsError):
    """A configuration value is missing or not allowed."""


class SourceError(LapsError):
    """A frame source cannot be opened or read."""


class SourceNotFoundError(SourceError):
    """The file or device named by the source does not exist."""


class SourceUnreadableError(SourceError):
    """The file exists but is corrupt, truncated or not a video."""


class SourceEmptyError(SourceError):
    """The source opened but delivered no frames."""


class StreamUnreachableError(SourceError):
    """A network stream (RTSP/HTTP) or GStreamer pipeline could not be opened."""


class CameraUnavailableError(SourceError):
    """A USB/V4L2 camera is absent, busy or not permitted."""


class ModelError(LapsError):
    """A model file is missing, unreadable or does not match the pipeline."""
