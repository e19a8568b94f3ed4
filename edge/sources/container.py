"""Does a video file end where its container says it ends? The judge of "truncated".

A decoder that delivers fewer frames than the header announces is not proof of damage: an AVI
written from a variable-rate source holds an index entry for every frame slot but leaves most
of them empty (444 index chunks, 68 pictures), Matroska and MPEG-TS counts are estimates, MP4
edit lists shorten the presentation. What a cut-short copy always shows is its container
running past the end of the file. `check_container(path)` reads only the container's own
framing (no decoding) and says:

- `complete=True`: every byte the container announces is present (RIFF chunks of an AVI, all
  top-level boxes of an MP4 with its index, a sized Matroska segment); for an AVI with an
  `idx1` index also how many of its video entries hold a picture (`pictures`);
- `complete=False` with `detail`: where it runs past the end (truncated) or is malformed;
- `complete=None`: a container this module does not know, or one that does not state its
  length (a live-recorded Matroska segment of unknown size); the caller falls back to counts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ContainerCheck:
    """kind: "mp4", "avi", "matroska" or "" (not recognised). complete: see the module text.
    detail: the damage, or what a complete index holds. pictures: video index entries that
    hold a picture (an AVI's idx1), None when unknown. entries: all video index entries."""

    kind: str
    complete: bool | None
    detail: str = ""
    pictures: int | None = None
    entries: int | None = None


def check_container(path: str | Path) -> ContainerCheck:
    """Judge `path` by its container framing; never raises for a readable file."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(12)
    except OSError as err:
        return ContainerCheck("", None, f"cannot read it ({err.strerror})")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return _check_avi(p)
    if head[4:8] == b"ftyp":
        damage = mp4_structure(p)
        if damage is None or damage == "no-video":
            return ContainerCheck("mp4", True, "every top-level box is complete")
        return ContainerCheck("mp4", False, damage)
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return _check_matroska(p)
    return ContainerCheck("", None)


# -- AVI (RIFF) -------------------------------------------------------------------------------------
_VIDEO_CHUNKS = (b"dc", b"db")  # compressed / uncompressed video data
_IDX1 = np.dtype([("ckid", "S4"), ("flags", "<u4"), ("offset", "<u4"), ("size", "<u4")])


def _check_avi(path: Path) -> ContainerCheck:
    """RIFF 'AVI ' (and OpenDML 'AVIX' continuations): each chunk must fit in the file."""
    size = path.stat().st_size
    pictures = entries = None
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            kind, length = struct.unpack("<4sI", fh.read(8))
            if kind != b"RIFF":
                # Data the RIFF sizes do not cover: a recorder that was killed never patched
                # them (a 0 or the first chunk's size), so the file's end is not known.
                return ContainerCheck("avi", False, f"{size - offset} bytes after the last RIFF chunk "
                                      "(the recording was never finalised)")
            end = offset + 8 + length + (length & 1)
            if offset + 8 + length > size:
                return ContainerCheck("avi", False, f"RIFF chunk at byte {offset} runs "
                                      f"{offset + 8 + length - size} bytes past the end of the file")
            if offset == 0:
                pictures, entries = _avi_index_pictures(fh, offset + 12, offset + 8 + length)
            offset = end
    detail = "every RIFF chunk is complete"
    if pictures is not None:
        detail += f"; {pictures} of its {entries} video index entries hold a picture"
    return ContainerCheck("avi", True, detail, pictures, entries)


def _avi_index_pictures(fh, start: int, end: int) -> tuple[int | None, int | None]:
    """(non-empty, all) entries of the first video stream in the legacy idx1 index, if any."""
    offset = start
    while offset + 8 <= end:
        fh.seek(offset)
        kind, length = struct.unpack("<4sI", fh.read(8))
        if kind == b"idx1":
            rows = np.frombuffer(fh.read(length - length % _IDX1.itemsize), dtype=_IDX1)
            video = [(ckid[:2], size) for ckid, size in zip(rows["ckid"].tolist(), rows["size"].tolist())
                     if ckid[2:4] in _VIDEO_CHUNKS]
            if not video:
                return None, None
            stream = video[0][0]  # the first video stream's entries only
            sizes = [size for ckid, size in video if ckid == stream]
            return sum(1 for size in sizes if size > 0), len(sizes)
        offset += 8 + length + (length & 1)
    return None, None


# -- Matroska / WebM (EBML) ---------------------------------------------------------------------------
_SEGMENT_ID = 0x18538067


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int, bool] | None:
    """An EBML variable-length integer at data[pos]: (value, length, all value bits set)."""
    if pos >= len(data) or data[pos] == 0:
        return None
    length = 8 - data[pos].bit_length() + 1
    if pos + length > len(data):
        return None
    value = int.from_bytes(data[pos:pos + length], "big")
    if not keep_marker:
        value &= (1 << (7 * length)) - 1
    return value, length, value == (1 << (7 * length)) - 1


def _check_matroska(path: Path) -> ContainerCheck:
    """The EBML header, then the Segment: a sized segment must end inside the file."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(64)
        pos = 4
        hdr = _vint(head, pos, keep_marker=False)
        if hdr is None:
            return ContainerCheck("matroska", False, "the EBML header is cut off")
        pos += hdr[1] + hdr[0]
        fh.seek(pos)
        seg = fh.read(12)
    ident = _vint(seg, 0, keep_marker=True)
    if ident is None or ident[0] != _SEGMENT_ID:
        return ContainerCheck("matroska", False if len(seg) < 12 else None,
                              "no Segment after the EBML header")
    length = _vint(seg, ident[1], keep_marker=False)
    if length is None:
        return ContainerCheck("matroska", False, "the Segment header is cut off")
    if length[2]:
        return ContainerCheck("matroska", None, "the Segment does not state its size (a live recording)")
    end = pos + ident[1] + length[1] + length[0]
    if end > size:
        return ContainerCheck("matroska", False, f"the Segment runs {end - size} bytes past the end of the file")
    return ContainerCheck("matroska", True, "the Segment is complete")


# -- MP4 / MOV (ISO base media) ------------------------------------------------------------------------
# ISO base media (MP4/MOV) top-level boxes; anything else at the top means it is not one.
_TOP_LEVEL_BOXES = {
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"moof", b"mfra",
    b"styp", b"sidx", b"pdin", b"prft", b"emsg", b"udta",
}


_NO_MOOV = "no 'moov' index: the recording was interrupted or the file was cut short"


def mp4_structure(path: Path) -> str | None:
    """Check an MP4/MOV file's top-level box layout.

    Returns None when the file is not ISO base media or looks intact, "no-video" when it is
    well formed but its index holds no track, or a short description of the damage ("box 'mdat'
    runs past the end of the file", "no 'moov' index").
    """
    size = path.stat().st_size
    boxes: list[bytes] = []
    moov_tracks = 0
    try:
        with open(path, "rb") as fh:
            offset = 0
            while offset < size:
                fh.seek(offset)
                header = fh.read(16)
                if len(header) < 8:
                    return "a box header is cut off at the end of the file"
                box_size, kind = struct.unpack(">I4s", header[:8])
                if not boxes and kind != b"ftyp":
                    return None
                if kind not in _TOP_LEVEL_BOXES:
                    return None if not boxes else f"unknown box {kind!r} at byte {offset}"
                header_len = 8
                if box_size == 1:
                    if len(header) < 16:
                        return "a box header is cut off at the end of the file"
                    box_size = struct.unpack(">Q", header[8:16])[0]
                    header_len = 16
                elif box_size == 0:  # box extends to the end of the file
                    box_size = size - offset
                if box_size < header_len:
                    return f"box {kind.decode('latin-1')!r} at byte {offset} has an invalid size"
                if offset + box_size > size:
                    overrun = (
                        f"box {kind.decode('latin-1')!r} runs {offset + box_size - size} bytes "
                        f"past the end of the file"
                    )
                    if kind != b"moov" and b"moov" not in boxes and b"moof" not in boxes:
                        return f"{_NO_MOOV}, {overrun}"
                    return overrun
                if kind == b"moov":
                    fh.seek(offset + header_len)
                    moov_tracks = fh.read(box_size - header_len).count(b"trak")
                boxes.append(kind)
                offset += box_size
    except OSError:
        return None
    if b"moov" not in boxes and b"moof" not in boxes:
        return _NO_MOOV
    if b"moov" in boxes and moov_tracks == 0 and b"moof" not in boxes:
        return "no-video"
    return None
