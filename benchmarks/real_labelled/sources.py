"""One converter per dataset: verified source files -> `LabelledVideo`s.

Each converter takes a `SourceTree` (which checks every byte against the manifest) and returns
the videos in a fixed order. What each dataset is, its frame rate and its terms are in the
manifest; what the converter does with the files is said in its docstring.
"""

from __future__ import annotations

import io
from typing import Callable

import numpy as np

from benchmarks.real_labelled.corpus import LabelledVideo
from benchmarks.real_labelled.manifest import SourceError, SourceTree


def convert_ha4m(tree: SourceTree) -> list[LabelledVideo]:
    """HA4M demo videos: Azure Kinect arm skeleton (14 joints x 3 coordinates, mm) per frame.

    Files: `Demo/ArmSkel/<video>.npy` (42, T) float64 and `Demo/GroundTruth/<video>.txt` (one label
    per frame, 0 = no action, 1-12 = the 12 assembly actions of the epicyclic gear train). Label 0
    is background: it covers the frames before the first and after the last action.
    """
    fps = tree.source.fps
    names = ("background",) + tuple(f"assembly_action_{k:02d}" for k in range(1, 13))
    videos = []
    for entry in tree.source.files:
        if not entry.path.startswith("Demo/ArmSkel/"):
            continue
        stem = entry.path.rsplit("/", 1)[1][: -len(".npy")]
        skel = np.load(io.BytesIO(tree.read(entry.path)), allow_pickle=False)
        labels = np.loadtxt(io.StringIO(tree.read(f"Demo/GroundTruth/{stem}.txt").decode("ascii")), dtype=np.int64)
        features = np.asarray(skel, dtype=np.float32).T
        if features.shape[0] != labels.shape[0]:
            raise SourceError(
                f"HA4M {stem}: {features.shape[0]} skeleton frames but {labels.shape[0]} labels; "
                f"the manifest's files do not belong together"
            )
        videos.append(LabelledVideo("ha4m", stem, features, labels, fps, names, background=(0,)))
    return videos


def convert_mocap6(tree: SourceTree) -> list[LabelledVideo]:
    """CMU mocap exercise sequences (Fox, Hughes, Sudderth, Jordan 2014): `mocap6.mat`.

    Each sequence has 12 joint-angle channels (zero-mean, block-averaged to 10 fps) and a
    human-annotated exercise per frame (12 exercises, 1-based in the file). No background label:
    every frame is one of the exercises.
    """
    from scipy.io import loadmat

    mat = loadmat(io.BytesIO(tree.read("mocap6.mat")), squeeze_me=True, struct_as_record=False)
    names = tuple(str(n) for n in np.atleast_1d(mat["ActionNames"]))
    videos = []
    for seq in np.atleast_1d(mat["DataBySeq"]):
        labels = np.asarray(seq.TrueZ, dtype=np.int64).ravel() - 1  # the file counts from 1
        videos.append(LabelledVideo("mocap6", str(seq.filename), np.asarray(seq.X), labels, tree.source.fps, names))
    return videos


#: dataset name (as in the manifest) -> converter.
CONVERTERS: dict[str, Callable[[SourceTree], list[LabelledVideo]]] = {
    "ha4m": convert_ha4m,
    "mocap6": convert_mocap6,
}
