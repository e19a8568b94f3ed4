"""FileSource: reading real video files, and one clear error for each way a file can be bad."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from edge.errors import SourceEmptyError, SourceNotFoundError, SourceUnreadableError
from edge.sources.base import FrameSource
from edge.sources.capture import CaptureClock
from edge.sources.file import FileSource


def read_all(source: FrameSource) -> list:
    with source:
        return list(source)


def test_reads_every_frame_with_index_and_timestamp(make_video):
    path = make_video("clip.mp4", n_frames=30, fps=30.0, size=(160, 120))
    src = FileSource(path)
    frames = read_all(src)
    assert len(frames) == 30
    assert [f.index for f in frames] == list(range(30))
    assert [f.source_index for f in frames] == list(range(30))
    np.testing.assert_allclose([f.timestamp_s for f in frames], np.arange(30) / 30.0, atol=1e-3)
    assert frames[0].image.shape == (120, 160, 3) and frames[0].image.dtype == np.uint8


def test_reports_fps_size_and_count_after_open(make_video):
    path = make_video("clip.mp4", n_frames=12, fps=25.0, size=(96, 64))
    with FileSource(path) as src:
        assert src.fps == pytest.approx(25.0)
        assert src.frame_size == (96, 64)
        assert src.frame_count == 12


def test_frames_decode_to_the_written_content(make_video):
    path = make_video("clip.mp4", n_frames=3, fps=30.0, size=(160, 120), fourcc="MJPG")
    frames = read_all(FileSource(path))
    # consecutive frames of the scrolling texture differ, identical re-reads would not
    assert np.abs(frames[0].image.astype(int) - frames[1].image.astype(int)).mean() > 5


def test_missing_file_raises_not_found_naming_the_path(tmp_path):
    path = tmp_path / "nope.mp4"
    with pytest.raises(SourceNotFoundError, match="nope.mp4 does not exist") as err:
        FileSource(path).open()
    assert "\n" not in str(err.value)


def test_random_bytes_named_mp4_raise_unreadable(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(20_000))
    with pytest.raises(SourceUnreadableError, match="noise.mp4 is not a readable video") as err:
        FileSource(path).open()
    assert "re-encode" in str(err.value)


def test_zero_byte_file_raises_empty(tmp_path):
    path = tmp_path / "zero.mp4"
    path.write_bytes(b"")
    with pytest.raises(SourceEmptyError, match=r"zero.mp4 is empty \(0 bytes\)"):
        FileSource(path).open()


def test_valid_avi_without_frames_raises_empty(make_video):
    path = make_video("empty.avi", n_frames=0, fourcc="MJPG")
    with pytest.raises(SourceEmptyError, match="empty.avi contains no video frames"):
        FileSource(path).open()


def test_valid_mp4_without_frames_raises_empty(make_video):
    path = make_video("empty.mp4", n_frames=0)
    with pytest.raises(SourceEmptyError, match="empty.mp4 is a valid MP4 container with no video"):
        FileSource(path).open()


def test_mp4_cut_in_half_with_index_at_the_end_is_unreadable_at_open(make_video, cut_file):
    # OpenCV's MP4 writer puts the moov index last, so the first half has no index at all
    half = cut_file(make_video("clip.mp4", n_frames=60), 0.5)
    with pytest.raises(SourceUnreadableError, match="no 'moov' index") as err:
        FileSource(half).open()
    assert "truncated" in str(err.value)


def test_mp4_cut_in_half_with_index_first_delivers_frames_then_raises(make_video, faststart, cut_file, tmp_path):
    full = faststart(make_video("clip.mp4", n_frames=60), tmp_path / "fast.mp4")
    assert len(read_all(FileSource(full))) == 60  # the rewritten file itself is intact
    half = cut_file(full, 0.5)
    src = FileSource(half)
    delivered = []
    with pytest.raises(SourceUnreadableError, match=r"ended after \d+ of 60 frames") as err:
        with src:
            for frame in src:
                delivered.append(frame.index)
    assert 10 < len(delivered) < 60
    assert delivered == list(range(len(delivered)))
    assert "past the end of the file" in str(err.value)
    assert "--allow-truncated" in str(err.value) and "source.allow_truncated" in str(err.value)


def test_allow_truncated_ends_cleanly_after_the_damage(make_video, faststart, cut_file, tmp_path):
    half = cut_file(faststart(make_video("clip.mp4", n_frames=60), tmp_path / "fast.mp4"), 0.5)
    frames = read_all(FileSource(half, allow_truncated=True))
    assert 10 < len(frames) < 60


def test_avi_cut_in_half_delivers_the_first_half_then_raises(make_video, cut_file):
    half = cut_file(make_video("clip.avi", n_frames=40, fourcc="MJPG"), 0.5)
    src = FileSource(half)
    count = 0
    with pytest.raises(SourceUnreadableError, match="of 40 frames"):
        with src:
            for _ in src:
                count += 1
    assert 10 < count < 40


def test_directory_raises_unreadable(tmp_path):
    with pytest.raises(SourceUnreadableError, match="is a directory"):
        FileSource(tmp_path).open()


def test_read_before_open_raises(make_video):
    with pytest.raises(SourceUnreadableError, match="is not open"):
        FileSource(make_video("clip.mp4", n_frames=2)).read()


def test_close_twice_is_safe_and_read_after_end_stays_none(make_video):
    src = FileSource(make_video("clip.mp4", n_frames=2))
    src.open()
    assert src.read() is not None and src.read() is not None
    assert src.read() is None and src.read() is None
    src.close()
    src.close()


def test_capture_clock_uses_container_times_relative_to_the_first_frame():
    clock = CaptureClock(nominal_fps=30.0, live=False)
    assert [clock.timestamp(ms) for ms in (500.0, 540.0, 580.0)] == pytest.approx([0.0, 0.04, 0.08])
    assert clock.fallbacks == 0


def test_capture_clock_replaces_stuck_or_backward_times_with_one_period():
    clock = CaptureClock(nominal_fps=10.0, live=False)
    times = [clock.timestamp(ms) for ms in (0.0, 0.0, 0.0, 50.0, float("nan"), 900.0)]
    assert times == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4, 0.9])
    assert clock.fallbacks == 4


def test_capture_clock_keeps_a_long_pause_in_a_file_but_not_in_a_live_source():
    file_clock = CaptureClock(nominal_fps=10.0, live=False)
    assert [file_clock.timestamp(ms) for ms in (0.0, 100.0, 60_100.0)] == pytest.approx([0.0, 0.1, 60.1])
    live_clock = CaptureClock(nominal_fps=10.0, live=True)
    times = [live_clock.timestamp(ms) for ms in (0.0, 100.0, 60_100.0)]
    assert times[1] == pytest.approx(0.1)
    assert 0.1 < times[2] < 5.0 and live_clock.fallbacks == 1  # wall clock, not a 60 s jump


# -- judged by the container's own end, not the header's frame count (issue 18) -------------------
def test_intact_avi_with_empty_index_entries_ends_cleanly_at_its_last_picture(sparse_avi, caplog):
    caplog.set_level(logging.INFO, logger="edge.sources.file")
    path = sparse_avi(pictures=68, slots=444)
    with FileSource(path) as src:
        assert src.frame_count == 444  # what the header announces
        frames = list(src)
    assert len(frames) == 68
    assert [f.index for f in frames] == list(range(68))
    assert any("68 of its 444 video index entries hold a picture" in r.getMessage() for r in caplog.records)


def test_the_same_avi_cut_short_is_truncated_after_its_good_frames(sparse_avi, cut_file):
    cut = cut_file(sparse_avi(pictures=68, slots=444), 0.6)
    delivered = 0
    with pytest.raises(SourceUnreadableError, match=r"ended after \d+ of 444 frames \(RIFF chunk at byte 0 "
                                                     r"runs \d+ bytes past the end of the file\)") as err:
        with FileSource(cut) as src:
            for _ in src:
                delivered += 1
    assert 20 < delivered < 68
    assert "\n" not in str(err.value) and "--allow-truncated" in str(err.value)


def test_a_complete_avi_whose_pictures_stop_decoding_is_damaged_not_ended(sparse_avi, tmp_path):
    # All bytes present, but the second half of the pictures is overwritten with noise: the
    # index says there were more pictures than the decoder could give.
    path = sparse_avi(pictures=60, slots=60)
    data = bytearray(path.read_bytes())
    movi = data.index(b"movi")
    start = movi + (len(data) - movi) // 2
    rng = np.random.default_rng(3)
    end = data.index(b"idx1")
    data[start:end] = rng.integers(0, 256, end - start, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    src = FileSource(path)
    with pytest.raises(SourceUnreadableError, match="the video data is damaged"):
        with src:
            for _ in src:
                pass


def test_an_avi_never_finalised_by_its_recorder_is_truncated(sparse_avi):
    path = sparse_avi(pictures=40, slots=40)
    data = bytearray(path.read_bytes())
    data[4:8] = (4).to_bytes(4, "little")  # RIFF size as a recorder writes it before finalising
    path.write_bytes(bytes(data))
    from edge.sources.container import check_container

    check = check_container(path)
    assert check.kind == "avi" and check.complete is False and "never finalised" in check.detail


def test_ffmpeg_messages_stay_out_of_the_one_line_error_and_go_to_debug(make_video, faststart, cut_file, tmp_path):
    # FFmpeg reports this file's damage itself ("partial file", "ac-tex damaged" ...) on stderr;
    # the user must see our one line, and `-v` must still show FFmpeg's words, as log records.
    half = cut_file(faststart(make_video("clip.mp4", n_frames=60), tmp_path / "fast.mp4"), 0.5)
    base = [sys.executable, "-m", "edge.cli"]
    args = ["run", "--source", str(half), "--out", str(tmp_path / "out"), "--model", "none", "--quiet"]
    quiet = subprocess.run(base + args, capture_output=True, text=True, timeout=180)
    assert quiet.returncode == 2
    assert [line for line in quiet.stderr.splitlines() if line.strip()] == \
        [line for line in quiet.stderr.splitlines() if line.startswith("error:")], quiet.stderr
    assert "partial file" not in quiet.stderr and "[mov," not in quiet.stderr
    verbose = subprocess.run(base + ["-v"] + args, capture_output=True, text=True, timeout=180)
    assert verbose.returncode == 2
    ffmpeg = [line for line in verbose.stderr.splitlines() if "DEBUG edge.sources.ffmpeg:" in line]
    assert any("partial file" in line for line in ffmpeg), verbose.stderr[-3000:]
