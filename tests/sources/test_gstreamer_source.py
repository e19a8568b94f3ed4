"""GStreamerSource: a clear error when OpenCV lacks GStreamer; pipelines completed with an appsink."""

from __future__ import annotations

import cv2
import pytest

from edge.errors import ConfigError, StreamUnreachableError
from edge.sources.gstreamer import (
    APPSINK_TAIL,
    GStreamerSource,
    GStreamerUnavailableError,
    complete_pipeline,
    gstreamer_available,
)


def _build_info_says_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return line.split(":", 1)[1].strip().startswith("YES")
    return False


def test_availability_follows_the_opencv_build_information():
    assert gstreamer_available() is _build_info_says_gstreamer()


@pytest.mark.skipif(gstreamer_available(), reason="this OpenCV has GStreamer")
def test_without_gstreamer_opening_says_what_to_install():
    src = GStreamerSource("videotestsrc num-buffers=5")
    with pytest.raises(GStreamerUnavailableError) as err:
        src.open()
    message = str(err.value)
    assert "built without GStreamer" in message
    assert "python3-opencv" in message and "rtsp://" in message
    assert isinstance(err.value, StreamUnreachableError)


@pytest.mark.skipif(not gstreamer_available(), reason="this OpenCV was built without GStreamer")
def test_with_gstreamer_a_test_pipeline_delivers_frames():
    with GStreamerSource("videotestsrc num-buffers=5 ! video/x-raw,width=160,height=120") as src:
        frames = list(src)
    assert len(frames) == 5 and frames[0].image.shape == (120, 160, 3)


def test_a_pipeline_without_appsink_gets_the_bgr_appsink_tail():
    assert complete_pipeline("gst:v4l2src device=/dev/video0") == f"v4l2src device=/dev/video0 ! {APPSINK_TAIL}"


def test_a_pipeline_with_its_own_appsink_is_kept():
    text = "rtspsrc location=rtsp://cam ! decodebin ! videoconvert ! appsink sync=false"
    assert complete_pipeline(text) == text


def test_an_empty_pipeline_is_a_config_error():
    with pytest.raises(ConfigError, match="GStreamer pipeline 'gst: ' is empty"):
        complete_pipeline("gst: ")
