"""open_source: each kind of source string gives the right source, wrapped as asked."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edge.errors import ConfigError, SourceNotFoundError
from edge.sources.camera import CameraSource
from edge.sources.factory import open_source
from edge.sources.file import FileSource
from edge.sources.gstreamer import GStreamerSource
from edge.sources.resample import FpsResampler, ResizeSource
from edge.sources.stream import StreamSource


@pytest.mark.parametrize("spec", ["rtsp://10.0.0.5:554/live", "RTSPS://cam/live", "http://cam/video.mjpg",
                                  "https://example.com/a.mp4"])
def test_network_urls_open_stream_sources(spec):
    src = open_source(spec)
    assert isinstance(src, StreamSource) and src.url == spec


@pytest.mark.parametrize("spec", ["gst:videotestsrc", "v4l2src ! videoconvert ! appsink"])
def test_gst_prefix_or_bang_opens_gstreamer(spec):
    assert isinstance(open_source(spec), GStreamerSource)


@pytest.mark.parametrize("spec, device", [(0, "/dev/video0"), ("1", "/dev/video1"),
                                          ("/dev/video4", "/dev/video4"),
                                          ("/dev/v4l/by-id/usb-x-video-index0", "/dev/v4l/by-id/usb-x-video-index0")])
def test_indices_and_video_nodes_open_cameras(spec, device):
    src = open_source(spec)
    assert isinstance(src, CameraSource) and src.device == device


def test_anything_else_is_a_file(tmp_path):
    src = open_source(str(tmp_path / "line 3.mp4"))
    assert isinstance(src, FileSource) and src.path == tmp_path / "line 3.mp4"


def test_file_url_is_a_file(tmp_path):
    src = open_source(f"file://{tmp_path}/a%20b.mp4")
    assert isinstance(src, FileSource) and src.path == tmp_path / "a b.mp4"


def test_factory_does_not_open_and_a_missing_file_fails_at_open(tmp_path):
    src = open_source(tmp_path / "missing.mp4")
    with pytest.raises(SourceNotFoundError, match="missing.mp4 does not exist"):
        src.open()


def test_unknown_scheme_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match=r"unsupported scheme 'ftp://'.*rtsp://"):
        open_source("ftp://server/video.mp4")


def test_empty_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="source is empty"):
        open_source("  ")


def test_fps_wraps_in_the_resampler_and_size_in_the_resize():
    src = open_source("clip.mp4", fps=10, size=(320, 240))
    assert isinstance(src, ResizeSource) and isinstance(src.source, FpsResampler)
    assert src.source.target_fps == 10.0 and src.frame_size == (320, 240)


def test_bad_fps_or_size_fails_before_anything_is_opened():
    with pytest.raises(ConfigError, match="fps must be a positive number"):
        open_source("clip.mp4", fps=0)
    with pytest.raises(ConfigError, match="frame size must be"):
        open_source("clip.mp4", size=(320, -1))


def test_a_file_through_the_factory_comes_out_at_model_fps_and_size(make_video):
    path = make_video("clip.mp4", n_frames=60, fps=30.0, size=(160, 120))
    with open_source(str(path), fps=10, size=(80, 60)) as src:
        frames = list(src)
    assert len(frames) == 20
    assert {f.image.shape for f in frames} == {(60, 80, 3)}
    np.testing.assert_allclose([f.timestamp_s for f in frames], np.arange(20) / 10.0, atol=2e-3)
    assert [f.source_index for f in frames] == list(range(0, 60, 3))


@pytest.mark.skipif(importlib.util.find_spec("edge.sources.synthetic") is None,
                    reason="edge.sources.synthetic (another engineer's module) is not written yet")
def test_synthetic_uri_opens_the_synthetic_workstation():
    from edge.sources.synthetic import SyntheticSource

    spec = "synthetic://assembly?seed=500&minutes=0.05&size=160x120&fps=30"
    src = open_source(spec, fps=10)
    assert isinstance(src, FpsResampler) and isinstance(src.source, SyntheticSource)
    with src:
        frames = list(src)
    assert len(frames) >= 25
    assert frames[0].image.shape == (120, 160, 3)
    np.testing.assert_allclose([f.timestamp_s for f in frames[:5]], np.arange(5) / 10.0, atol=1e-9)
