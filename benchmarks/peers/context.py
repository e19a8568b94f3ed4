"""What a segmenter may know about a video besides its features: built leave-one-video-out.

`leave_one_out(videos, i)` gives the context for scoring video i: the labelled videos of the same
dataset EXCEPT video i (for K, the period, labelled calibration), and the unlabelled features of
every video of the dataset, video i included (an unsupervised calibration may look at the footage
it will run on, as a device calibrates on its own camera view). Video i's labels never enter it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from benchmarks.real_labelled.corpus import CorpusError, LabelledVideo


@dataclass(frozen=True)
class Context:
    """dataset: name. fps: frames per second of every video of the dataset. others: the dataset's other
    labelled videos. pool_features: (T_i, D) features of every video of the dataset, unlabelled."""

    dataset: str
    fps: float
    others: tuple[LabelledVideo, ...]
    pool_features: tuple[np.ndarray, ...]

    @property
    def k_segments(self) -> int:
        """Mean number of true segments per other video, rounded (at least 1)."""
        return max(1, int(round(float(np.mean([len(v.segments()) for v in self.others])))))

    @property
    def mean_segment_s(self) -> float:
        """Mean length in seconds of the other videos' true segments."""
        spans = np.concatenate([v.segments() for v in self.others])
        return float(np.mean(spans[:, 1] - spans[:, 0]))


def leave_one_out(videos: Sequence[LabelledVideo], index: int) -> Context:
    """The context for scoring `videos[index]`; all videos must come from one dataset, at one fps.

    Raises CorpusError when the dataset has fewer than 2 videos (nothing to learn K from) or the
    other videos hold no labelled segment.
    """
    scored = videos[index]
    if any(v.dataset != scored.dataset for v in videos):
        names = sorted({v.dataset for v in videos})
        raise CorpusError(f"leave-one-out context over several datasets ({', '.join(names)}); give one dataset's videos")
    if any(v.fps != scored.fps for v in videos):
        rates = sorted({v.fps for v in videos})
        raise CorpusError(f"dataset {scored.dataset!r} mixes frame rates {rates}; convert its videos to one fps")
    others = tuple(v for j, v in enumerate(videos) if j != index)
    if not others:
        raise CorpusError(
            f"dataset {scored.dataset!r} has 1 video; leave-one-video-out needs at least 2 to learn K and the period"
        )
    if not any(len(v.segments()) for v in others):
        raise CorpusError(f"dataset {scored.dataset!r}: the other videos hold no labelled action; check the labels")
    return Context(
        dataset=scored.dataset, fps=scored.fps, others=others,
        pool_features=tuple(v.features for v in videos),
    )
