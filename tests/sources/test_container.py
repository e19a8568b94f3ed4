"""`check_container`: complete or cut short, read from the container framing of real files
written by OpenCV/FFmpeg (AVI, MP4, Matroska) and cut with a byte count."""

from __future__ import annotations

import pytest

from edge.sources.container import check_container


@pytest.mark.parametrize("name,fourcc,kind", [
    ("clip.avi", "MJPG", "avi"), ("clip.mp4", "mp4v", "mp4"), ("clip.mkv", "MJPG", "matroska"),
])
def test_whole_files_are_complete_and_cut_files_are_not(make_video, cut_file, name, fourcc, kind):
    path = make_video(name, n_frames=30, fourcc=fourcc)
    whole = check_container(path)
    assert whole.kind == kind and whole.complete is True, whole
    cut = check_container(cut_file(path, 0.7))
    assert cut.kind == kind and cut.complete is False
    assert "past the end of the file" in cut.detail


def test_avi_index_counts_the_entries_that_hold_a_picture(sparse_avi):
    check = check_container(sparse_avi(pictures=68, slots=444))
    assert (check.pictures, check.entries) == (68, 444)


def test_unknown_containers_cannot_be_judged(tmp_path):
    path = tmp_path / "noise.ts"
    path.write_bytes(b"\x47" + bytes(187) * 3)
    assert check_container(path).complete is None
