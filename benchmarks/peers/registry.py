"""The methods of `benchmarks/real_segmentation.py`, one row each.

A method is a plain function `(features (T, D) float32, fps, context) -> (K, 2) [start, end)
seconds`; `context` (see `context.Context`) carries what it may know beyond the features, built
without the scored video's labels. To add a row, write such a function and add one `Method` to
`METHODS` (the "+ split" rows are an example).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from benchmarks.peers.abd import abd_segments
from benchmarks.peers.back_half import (
    back_half_labelled, back_half_split_labelled, back_half_split_only, back_half_split_unsupervised,
    back_half_unsupervised,
)
from benchmarks.peers.baselines import equal_split, periodic
from benchmarks.peers.context import Context
from benchmarks.peers.twfinch import twfinch_segments

Segmenter = Callable[[np.ndarray, float, Context], np.ndarray]


@dataclass(frozen=True)
class Method:
    """name: the table row. segment: the segmenter. uses: what it takes from the context."""

    name: str
    segment: Segmenter
    uses: str


def periodic_lovo(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    return periodic(features.shape[0] / fps, context.mean_segment_s)


def equal_split_lovo(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    return equal_split(features.shape[0] / fps, context.k_segments)


def abd_lovo(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    return abd_segments(features, fps, context.k_segments)


def twfinch_lovo(features: np.ndarray, fps: float, context: Context) -> np.ndarray:
    return twfinch_segments(features, fps, context.k_segments)


METHODS: tuple[Method, ...] = (
    Method("periodic", periodic_lovo, "period = mean true segment length of the other videos"),
    Method("equal split", equal_split_lovo, "K = mean true segment count of the other videos"),
    Method("ABD", abd_lovo, "K as equal split; alpha 0.4 fixed"),
    Method("TW-FINCH", twfinch_lovo, "K as equal split"),
    Method("LAPS back half, unsupervised", back_half_unsupervised,
           "Otsu pseudo-labels of the energy over the dataset's videos, no labels"),
    Method("LAPS back half, labelled LOVO", back_half_labelled,
           "calibrate_labelled on the other videos' labels"),
    Method("LAPS back half + split, unsupervised", back_half_split_unsupervised,
           "as the unsupervised row, plus the split step: Otsu on the log change-score peaks"),
    Method("LAPS back half + split, labelled LOVO", back_half_split_labelled,
           "as the labelled row, plus calibrate_split_labelled on the other videos' labels"),
    Method("LAPS split only, window from LOVO lengths", back_half_split_only,
           "activity everywhere; window = half the other videos' median segment (decision lag 4-6 s, over the "
           "device's 2 s budget: an offline setting); Otsu threshold, no labels"),
)


def methods_named(names: list[str] | None) -> tuple[Method, ...]:
    """The methods with these names (all when None); ValueError naming the unknown one."""
    if names is None:
        return METHODS
    by_name = {m.name: m for m in METHODS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"method {unknown[0]!r} is not known; use one of: {'; '.join(by_name)}")
    return tuple(by_name[n] for n in names)
