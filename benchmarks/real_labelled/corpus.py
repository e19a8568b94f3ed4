"""`LabelledVideo`: one real video's per-frame features and human frame labels, and its file.

File (one per video): `<root>/<dataset>/<name>.npz` with
    features     (T, D) float32   per-frame feature vectors (whatever the dataset provides)
    labels       (T,)   int64     per-frame label id, an index into label_names
    fps          ()     float64   frames per second of features and labels
    label_names  (L,)   str       name of every label id
    background   (B,)   int64     label ids that mean "no action" (may be empty)
    dataset, name ()    str
This module is the only one that writes or reads that file.

Ground truth (`segments`): every run of one non-background label is a segment [start, end) in
seconds; background runs are gaps, not segments, exactly as rest is not a segment in the
synthetic workstation's ground truth. Two different actions back to back give two segments that
touch, so the boundary between them counts as an end and a start (docs/method.md#evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edge.errors import LapsError

#: Where `scripts/build_real_labelled.py` writes the corpus by default (git-ignored).
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".cache" / "real_labelled"
_KEYS = ("features", "labels", "fps", "label_names", "background", "dataset", "name")


class CorpusError(LapsError):
    """A corpus file or folder is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class LabelledVideo:
    """One video of a labelled corpus.

    dataset, name: where it belongs and what it is called (the file stem). features: (T, D)
    float32. labels: (T,) int64 label ids in [0, len(label_names)). fps: frames per second.
    label_names: one name per label id. background: label ids that are not actions.
    """

    dataset: str
    name: str
    features: np.ndarray
    labels: np.ndarray
    fps: float
    label_names: tuple[str, ...]
    background: tuple[int, ...] = field(default=())

    def __post_init__(self) -> None:
        x = np.ascontiguousarray(self.features, dtype=np.float32)
        y = np.ascontiguousarray(self.labels, dtype=np.int64)
        object.__setattr__(self, "features", x)
        object.__setattr__(self, "labels", y)
        object.__setattr__(self, "label_names", tuple(str(n) for n in self.label_names))
        object.__setattr__(self, "background", tuple(int(b) for b in self.background))
        where = f"{self.dataset}/{self.name}"
        if x.ndim != 2 or x.shape[0] < 2:
            raise CorpusError(f"{where}: features have shape {x.shape}; expected (T, D) with T >= 2 frames")
        if not np.all(np.isfinite(x)):
            raise CorpusError(f"{where}: features hold NaN or inf; rebuild the corpus from verified sources")
        if y.shape != (x.shape[0],):
            raise CorpusError(f"{where}: {y.shape} labels for {x.shape[0]} frames; give one label per frame")
        if y.size and (y.min() < 0 or y.max() >= len(self.label_names)):
            raise CorpusError(
                f"{where}: label ids span {y.min()}..{y.max()} but there are {len(self.label_names)} label names"
            )
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise CorpusError(f"{where}: fps is {self.fps}; it must be a positive number of frames per second")

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def segments(self) -> np.ndarray:
        """(K, 2) float64 ground-truth [start, end) seconds: runs of one non-background label."""
        return label_runs_to_segments(self.labels, self.fps, self.background)

    def save(self, path: str | Path) -> Path:
        """Write the video to `path` (.npz); the file is replaced atomically."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".part")
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh, features=self.features, labels=self.labels, fps=np.float64(self.fps),
                label_names=np.asarray(self.label_names, dtype=str),
                background=np.asarray(self.background, dtype=np.int64),
                dataset=np.asarray(self.dataset), name=np.asarray(self.name),
            )
        tmp.replace(p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> "LabelledVideo":
        """Read a file written by `save`; CorpusError (one line) when it is missing or malformed."""
        p = Path(path)
        if not p.is_file():
            raise CorpusError(f"corpus file {p} does not exist; build the corpus with scripts/build_real_labelled.py")
        try:
            with np.load(p, allow_pickle=False) as data:
                missing = [k for k in _KEYS if k not in data.files]
                if missing:
                    raise CorpusError(f"corpus file {p} lacks {', '.join(missing)}; rebuild it with scripts/build_real_labelled.py")
                return cls(
                    dataset=str(data["dataset"]), name=str(data["name"]), features=data["features"],
                    labels=data["labels"], fps=float(data["fps"]),
                    label_names=tuple(str(n) for n in data["label_names"]),
                    background=tuple(int(b) for b in data["background"]),
                )
        except (OSError, ValueError) as err:
            raise CorpusError(f"corpus file {p} is unreadable ({err}); rebuild it with scripts/build_real_labelled.py") from None


def label_runs_to_segments(labels: np.ndarray, fps: float, background: Iterable[int] = ()) -> np.ndarray:
    """(K, 2) [start, end) seconds of the runs of equal labels, background runs left out."""
    y = np.asarray(labels)
    if y.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    cuts = np.flatnonzero(y[1:] != y[:-1]) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [y.size]])
    keep = ~np.isin(y[starts], np.asarray(list(background), dtype=y.dtype))
    return np.stack([starts[keep], ends[keep]], axis=1).astype(np.float64) / float(fps)


def load_corpus(root: str | Path = DEFAULT_ROOT, datasets: Sequence[str] | None = None) -> list[LabelledVideo]:
    """Every video under `root` (one folder per dataset), sorted by dataset then name.

    datasets: only these folders (all when None). Raises CorpusError when `root` or a named
    dataset is missing or holds no video.
    """
    base = Path(root)
    if not base.is_dir():
        raise CorpusError(f"no corpus at {base}; build it with scripts/build_real_labelled.py")
    folders = sorted(p for p in base.iterdir() if p.is_dir())
    if datasets is not None:
        known = {p.name: p for p in folders}
        unknown = [d for d in datasets if d not in known]
        if unknown:
            raise CorpusError(
                f"dataset {unknown[0]!r} is not in the corpus at {base} (it has {', '.join(known) or 'none'}); "
                f"build it or name another"
            )
        folders = [known[d] for d in datasets]
    videos = [LabelledVideo.load(f) for folder in folders for f in sorted(folder.glob("*.npz"))]
    if not videos:
        raise CorpusError(f"the corpus at {base} holds no video; build it with scripts/build_real_labelled.py")
    return videos
