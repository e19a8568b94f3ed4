"""Restart on a finite source (a video file, synthetic://) continues where the last run stopped.

Why resume rather than replay with deterministic segment ids: a replay re-decodes, re-tracks
and re-publishes everything before the stop (as long again for a paced file, all of it sent
twice), and its ids only match when every boundary comes out the same, which no longer holds
once anything changed (calibration, OTA model, fps). Resuming costs a decode-only skip to the
position and publishes nothing twice.

What makes it exact: the position (frames at the service's fps that are fully turned into
committed segments) is written into the outbox database in the SAME transaction as each
segment (`Outbox.put(..., position=...)`), so a crash keeps both or neither; a clean stop, the
end of the file, or a reopen writes it after the pipeline closed its open segment. On the next
start the frames before it are decoded and skipped (no tracking, no pacing); segment frame
numbers and times are the source's own (`Frame.index`, `Frame.timestamp_s`), so they stay
relative to the file's first frame without any shift. A segment
that was open at a crash is re-detected from its start. A file processed to its end is not
processed again (one INFO line); `source.resume = false` always starts at frame 0.

A source is known by its content, not its name: `file:` + sha256 of its size and its first and
last MiB (a recorder's new file under the same name starts at 0; a moved file resumes).
Live sources (cameras, streams) have no position.
"""

from __future__ import annotations

import hashlib
import urllib.parse
from pathlib import Path


_FINGERPRINT_BYTES = 1 << 20


def source_identity(spec: str) -> str | None:
    """A stable identity of the finite source `spec`, or None when it has none (a missing
    file, which fails to open anyway). Only for sources that are not live."""
    text = spec.strip()
    if text.lower().startswith("synthetic:"):
        return "synthetic:" + text  # generated from its seed: the spec is the content
    path = Path(urllib.parse.unquote(urllib.parse.urlsplit(text).path) if text.startswith("file://") else text)
    try:
        size = path.stat().st_size
        digest = hashlib.sha256(str(size).encode())
        with open(path, "rb") as fh:
            digest.update(fh.read(_FINGERPRINT_BYTES))
            if size > _FINGERPRINT_BYTES:
                fh.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
                digest.update(fh.read(_FINGERPRINT_BYTES))
    except OSError:
        return None
    return "file:" + digest.hexdigest()[:32]


def resume_frame(frame: int, stored_fps: float, fps: float) -> int:
    """A stored position (frames at `stored_fps`) in frames at `fps` (the model may have changed)."""
    if stored_fps <= 0 or abs(stored_fps - fps) < 1e-9:
        return int(frame)
    return int(frame * fps / stored_fps)
