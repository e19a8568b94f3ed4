"""StreamSource: bounded-time failures for unreachable streams, and a real HTTP video stream."""

from __future__ import annotations

import os
import time

import pytest

from edge.errors import ConfigError, StreamUnreachableError
from edge.sources.stream import StreamSource, redact_url


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_refused_connection_fails_fast_with_unreachable(scheme, free_port):
    url = f"{scheme}://127.0.0.1:{free_port}/cam1"
    t0 = time.monotonic()
    with pytest.raises(StreamUnreachableError, match="could not be opened within 2 s") as err:
        StreamSource(url, open_timeout_s=2.0).open()
    assert time.monotonic() - t0 < 4.0
    assert f"127.0.0.1:{free_port}/cam1" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
def test_silent_server_fails_within_the_open_timeout(scheme, silent_server):
    url = f"{scheme}://127.0.0.1:{silent_server}/stream"
    t0 = time.monotonic()
    with pytest.raises(StreamUnreachableError, match="could not be opened within 1.5 s"):
        StreamSource(url, open_timeout_s=1.5).open()
    elapsed = time.monotonic() - t0
    assert 1.0 < elapsed < 5.0, f"gave up after {elapsed:.1f} s"


def test_http_url_of_an_mp4_streams_every_frame_then_ends(http_server, make_video):
    base, root = http_server
    make_video("clip.mp4", n_frames=24, fps=24.0, size=(128, 96)).replace(root / "clip.mp4")
    with StreamSource(f"{base}/clip.mp4") as src:
        assert src.frame_size == (128, 96)
        assert src.fps == pytest.approx(24.0)
        frames = list(src)
    assert len(frames) == 24
    assert [f.index for f in frames] == list(range(24))
    assert frames[-1].timestamp_s == pytest.approx(23 / 24.0, abs=1e-3)


def test_http_url_that_is_not_found_is_unreachable(http_server):
    base, _ = http_server
    with pytest.raises(StreamUnreachableError, match="missing.mp4 could not be opened"):
        StreamSource(f"{base}/missing.mp4", open_timeout_s=2.0).open()


def test_password_never_appears_in_messages(free_port):
    url = f"rtsp://admin:s3cret@127.0.0.1:{free_port}/h264"
    with pytest.raises(StreamUnreachableError) as err:
        StreamSource(url, open_timeout_s=1.0).open()
    assert "s3cret" not in str(err.value)
    assert "admin:***@127.0.0.1" in str(err.value)


def test_redact_url_keeps_urls_without_password():
    assert redact_url("rtsp://10.0.0.5:554/live") == "rtsp://10.0.0.5:554/live"
    assert redact_url("rtsp://u:p@cam/live") == "rtsp://u:***@cam/live"


def test_unsupported_scheme_is_a_config_error():
    with pytest.raises(ConfigError, match="scheme 'ftp'; use one of rtsp://"):
        StreamSource("ftp://camera/video")


def test_unknown_rtsp_transport_is_a_config_error():
    with pytest.raises(ConfigError, match="rtsp_transport 'quic' is not allowed"):
        StreamSource("rtsp://cam/live", rtsp_transport="quic")


def test_rtsp_transport_option_is_restored_after_open(free_port, monkeypatch):
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "stimeout;1000000")
    with pytest.raises(StreamUnreachableError):
        StreamSource(f"rtsp://127.0.0.1:{free_port}/x", open_timeout_s=1.0, rtsp_transport="tcp").open()
    assert os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] == "stimeout;1000000"
