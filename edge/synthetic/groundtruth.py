"""Ground truth of a synthetic recording: per-frame labels, primitive segments, and its JSON file.

JSON layout (schema "laps.synthetic-groundtruth/1"):
    {"schema", "fps", "n_frames", "duration_s", "label_names": ["rest", "reach", ...],
     "labels": [int per frame],
     "segments": [{"start_s", "end_s", "label", "start_frame", "end_frame", "hand",
                   "preceded_by": "start" | "rest" | "direct"}, ...],
     "meta": {seed, size, nuisances, hands, distractor, rest_fraction, cycles, primitives}}
Segments cover primitives only (rests are the frames outside them); `end_frame` is exclusive and
times are frame / fps.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import LapsError

SCHEMA = "laps.synthetic-groundtruth/1"


class GroundTruthError(LapsError):
    """A ground-truth file is missing, unreadable or malformed."""


@dataclass
class GroundTruth:
    """Labels and segments of one recording.

    fps: frames per second; n_frames: frame count; label_names: index 0 = "rest", then the
    primitives; labels: (n_frames,) int64; segments: (start_s, end_s, label_name) per primitive
    instance in time order; preceded_by: per segment "start", "rest" or "direct" (a direct
    transition: no rest frame between it and the previous primitive); hands: per segment
    "left"/"right"; meta: how the recording was made.
    """

    fps: float
    n_frames: int
    label_names: list[str]
    labels: np.ndarray
    segments: list[tuple[float, float, str]]
    preceded_by: list[str] = field(default_factory=list)
    hands: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fps

    def segment_frames(self) -> list[tuple[int, int, str]]:
        """Segments as (start_frame, end_frame exclusive, label_name)."""
        return [(int(round(s * self.fps)), int(round(e * self.fps)), lab) for s, e, lab in self.segments]

    def boundaries_s(self) -> list[float]:
        """Every segment start > 0 and end < duration, in seconds (the F1@tau boundary set)."""
        out = []
        for s, e, _ in self.segments:
            if s > 0:
                out.append(s)
            if e < self.duration_s:
                out.append(e)
        return sorted(out)

    def to_dict(self) -> dict:
        segs = []
        for k, (s, e, lab) in enumerate(self.segments):
            sf, ef = int(round(s * self.fps)), int(round(e * self.fps))
            segs.append({
                "start_s": s, "end_s": e, "label": lab, "start_frame": sf, "end_frame": ef,
                "hand": self.hands[k] if k < len(self.hands) else "",
                "preceded_by": self.preceded_by[k] if k < len(self.preceded_by) else "",
            })
        return {
            "schema": SCHEMA, "fps": self.fps, "n_frames": self.n_frames, "duration_s": self.duration_s,
            "label_names": list(self.label_names), "labels": [int(v) for v in self.labels],
            "segments": segs, "meta": self.meta,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":")) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "ground truth") -> "GroundTruth":
        """Parse JSON written by `to_json`; GroundTruthError (one line) if it is not such a file."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise GroundTruthError(f"{where} is not valid JSON ({err.msg} at line {err.lineno}); "
                                   "regenerate it with 'laps-edge synth'") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            found = data.get("schema") if isinstance(data, dict) else type(data).__name__
            raise GroundTruthError(f"{where} has schema {found!r}, expected {SCHEMA!r}; "
                                   "give the .json written beside a 'laps-edge synth' video")
        try:
            fps = float(data["fps"])
            n_frames = int(data["n_frames"])
            names = [str(v) for v in data["label_names"]]
            labels = np.asarray(data["labels"], np.int64)
            segments = [(float(s["start_s"]), float(s["end_s"]), str(s["label"])) for s in data["segments"]]
            preceded = [str(s.get("preceded_by", "")) for s in data["segments"]]
            hands = [str(s.get("hand", "")) for s in data["segments"]]
        except (KeyError, TypeError, ValueError) as err:
            raise GroundTruthError(f"{where} is missing or has a bad field ({err}); "
                                   "regenerate it with 'laps-edge synth'") from None
        if labels.shape != (n_frames,):
            raise GroundTruthError(f"{where} has {labels.size} labels for n_frames={n_frames}; "
                                   "the file is truncated or edited, regenerate it")
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise GroundTruthError(f"{where} has labels outside 0..{len(names) - 1}; regenerate it")
        return cls(fps=fps, n_frames=n_frames, label_names=names, labels=labels, segments=segments,
                   preceded_by=preceded, hands=hands, meta=dict(data.get("meta", {})))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path


def load_ground_truth(path: str | os.PathLike) -> GroundTruth:
    """Read a ground-truth JSON file; GroundTruthError (one line) if missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise GroundTruthError(f"ground-truth file {p} does not exist; write one with "
                               "'laps-edge synth --out DIR' (it sits beside the .mp4)")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise GroundTruthError(f"cannot read ground-truth file {p} ({err.__class__.__name__}); "
                               "check permissions or regenerate it") from None
    return GroundTruth.from_json(text, where=f"ground-truth file {p}")
