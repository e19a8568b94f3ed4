"""Energy traces to calibrate on: from video through the device's own pipeline, or recorded.

A calibration needs, per recording, the raw energy the device's kernel steps on and the
velocity-energy proxy of the same steps. Two ways to get them:

- video (a file, a folder of files, or a `synthetic://` spec): run it through
  `edge.pipeline.Pipeline` — the same tracker, tokenizer and feature path as the device, at the
  model's fps and input size — and keep the pipeline's per-step trace;
- a trace the device already recorded (`laps-edge run --record-energy` writes `energy.npz`).

Before any frame is processed the recording is checked against the model's conventions (what
"does not match" means is in `check_video_conventions` and `check_trace_conventions`); a
mismatch is a one-line `RecordingMismatchError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edge.energy_trace import REQUIRED_KEYS, EnergyTrace, EnergyTraceRecorder, is_energy_trace
from edge.errors import ModelError, SourceNotFoundError
from edge.tracking.base import PointTracker, TrackStep
from calibration.proxy import CalibrationError

#: File name endings taken as video when a folder is searched.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
#: Version string of the pipeline without a tokenizer (`edge.pipeline.build_pipeline`).
VELOCITY_MODEL_VERSION = "velocity-energy"
#: A video's frame rate may be this fraction below the model fps (container rounding, 29.97 vs
#: 30) before it counts as too slow.
FPS_TOLERANCE = 0.01
#: Largest relative difference between the video's and the model input's aspect ratio: beyond
#: it the resize to the model input stretches one axis, and the tokenizer sees motion whose x and
#: y scales differ from the ones it was trained on.
ASPECT_TOLERANCE = 0.10
#: theta_on used while recording: no segment ever opens, so nothing is buffered (the trace
#: holds the raw energy, which does not depend on the thresholds).
_RECORDING_THETA = 1e300


class NoRecordingsError(SourceNotFoundError):
    """No video file or energy trace was found where the user pointed."""


class RecordingMismatchError(ModelError):
    """A recording does not match the model's conventions (fps, frame size, version)."""


@dataclass(frozen=True)
class ModelConventions:
    """What the recordings must agree with: a tokenizer model's metadata, or, without a model,
    the velocity-energy pipeline's defaults.

    model_dir: the model directory (None: velocity energy). model_version: the version the
    device stamps on its segments and traces. fps: model frame rate. input_size: (width, height)
    px the tracker works at. n_points: tracked points N.
    """

    model_dir: str | None
    model_version: str
    fps: float
    input_size: tuple[int, int]
    n_points: int

    @property
    def uses_tokenizer(self) -> bool:
        return self.model_dir is not None


@dataclass
class EnergyRecording:
    """Per-step series of one recording at the model fps.

    name: a short unique name (file stem; labels are matched to it). source: the path or spec.
    energy: (T,) float64 raw energy the kernel steps on (NaN where the device had none).
    proxy: (T,) float64 velocity energy, px/step. fps: steps per second (the model fps).
    model_version: the model that produced `energy`. kind: "video", "trace" or "tracks".
    native_fps / native_frames: the recording's own frame rate and frame count before
    resampling (for per-frame labels); None when unknown.
    codes: (T,) int64 FSQ code per step (-1 where none), for the split step's latents
    (`calibration.split.recording_latents`); None for velocity energy or an old trace without codes.
    """

    name: str
    source: str
    energy: np.ndarray
    proxy: np.ndarray
    fps: float
    model_version: str
    kind: str
    native_fps: float | None = None
    native_frames: int | None = None
    codes: np.ndarray | None = None

    @classmethod
    def from_trace(cls, trace: EnergyTrace, name: str, kind: str, native_fps: float | None = None,
                   native_frames: int | None = None) -> "EnergyRecording":
        """The recording of an `edge.energy_trace.EnergyTrace` (recorded by `laps-edge run` or
        gathered from the pipeline here); its codes are kept only when some step has one."""
        codes = trace.codes if np.any(trace.codes >= 0) else None
        return cls(name=name, source=trace.source, energy=trace.energy.copy(), proxy=trace.velocity_energy.copy(),
                   fps=trace.fps, model_version=trace.model_version, kind=kind, native_fps=native_fps,
                   native_frames=native_frames, codes=None if codes is None else codes.copy())

    @property
    def n_steps(self) -> int:
        return int(self.energy.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_steps / self.fps


def resolve_model(spec: str | None) -> ModelConventions:
    """'none' -> velocity energy; 'default' -> the shipped model (velocity energy in an
    installation without one); anything else -> that model directory, loaded and verified."""
    from edge.model import resolve_model_spec
    from edge.pipeline import DEFAULT_FPS, DEFAULT_GRID, DEFAULT_INPUT_SIZE

    model_dir = resolve_model_spec(spec)
    if model_dir is None:
        return ModelConventions(None, VELOCITY_MODEL_VERSION, float(DEFAULT_FPS),
                                tuple(DEFAULT_INPUT_SIZE), DEFAULT_GRID * DEFAULT_GRID)
    from edge.model import load_model_directory

    meta = load_model_directory(model_dir).metadata
    return ModelConventions(str(model_dir), meta.model_version, float(meta.fps),
                            (int(meta.input_size[0]), int(meta.input_size[1])), int(meta.n_points))


def find_inputs(paths: Sequence[str]) -> list[str]:
    """Expand the user's inputs into recordings: video files, energy traces (.npz) and
    `synthetic://` specs. A folder contributes its video files and energy traces (not recursive,
    sorted by name). Raises NoRecordingsError when nothing usable is found.
    """
    found: list[str] = []
    for raw in paths:
        text = str(raw)
        if text.startswith("synthetic://"):
            found.append(text)
            continue
        p = Path(text)
        if p.is_dir():
            inside = [str(c) for c in sorted(p.iterdir())
                      if c.is_file() and (c.suffix.lower() in VIDEO_SUFFIXES or is_energy_trace(c))]
            if not inside:
                raise NoRecordingsError(
                    f"no video found in folder {p} (looked for {', '.join('*' + s for s in VIDEO_SUFFIXES[:5])}, "
                    f"... and energy.npz traces); point at a video file, a folder of videos, or an energy.npz "
                    f"from `laps-edge run --record-energy`"
                )
            found.extend(inside)
        elif p.is_file():
            if p.suffix.lower() == ".npz" and not is_energy_trace(p):
                raise CalibrationError(
                    f"{p} is not an energy trace (it lacks {', '.join(REQUIRED_KEYS)}); record one with "
                    f"`laps-edge run --source VIDEO --out DIR --record-energy`"
                )
            found.append(str(p))
        else:
            raise NoRecordingsError(
                f"no video found at {p}: the path does not exist; give a video file, a folder of videos, "
                f"an energy.npz trace or a synthetic:// spec"
            )
    if not found:
        raise NoRecordingsError("no video found: no input was given; pass a video file or a folder of videos")
    return found


def load_recordings(
    inputs: Sequence[str],
    model: ModelConventions,
    tracker: str = "lk",
    providers: str = "auto",
    energy_mode: str = "newest",
    progress: bool = True,
) -> list[EnergyRecording]:
    """Energy recordings of every input (see `find_inputs`), each checked against `model`.

    Every input is checked before any is processed, so a mismatch is reported at once, not
    after an hour of tracking.
    """
    plans = []
    for item in inputs:
        if str(item).lower().endswith(".npz"):
            plans.append(("trace", item, None))
        else:
            plans.append(("video", item, probe_video(item, model)))
    names: dict[str, int] = {}
    out = []
    for kind, item, probe in plans:
        if kind == "trace":
            rec = read_trace(item, model)
        else:
            rec = record_video(item, model, tracker=tracker, providers=providers, energy_mode=energy_mode,
                               progress=progress, probe=probe)
        # Names identify recordings (and their labels); make repeats unique in input order.
        n = names.get(rec.name, 0)
        names[rec.name] = n + 1
        if n:
            rec.name = f"{rec.name}-{n + 1}"
        out.append(rec)
    return out


def recording_name(item: str) -> str:
    """The name labels are matched by: the file stem; for `DIR/energy.npz` the folder's name;
    for a synthetic spec `synthetic-seed<S>` (what `laps-edge synth` names its files)."""
    text = str(item)
    if text.startswith("synthetic://"):
        from urllib.parse import parse_qsl, urlsplit

        seed = dict(parse_qsl(urlsplit(text).query)).get("seed", "7")
        return f"synthetic-seed{seed}"
    p = Path(text)
    if p.suffix.lower() == ".npz" and p.stem == "energy" and p.parent.name:
        return p.parent.name
    return p.stem


@dataclass(frozen=True)
class VideoProbe:
    """A video's own properties, read before processing: fps, (width, height), frame count."""

    fps: float
    size: tuple[int, int]
    frames: int | None


def probe_video(spec: str, model: ModelConventions) -> VideoProbe:
    """Open the video, read its fps, frame size and count, close it, and check them against
    the model (`check_video_conventions`)."""
    from edge.sources.factory import source_for_spec

    with source_for_spec(spec) as src:
        probe = VideoProbe(float(src.fps), (int(src.frame_size[0]), int(src.frame_size[1])), src.frame_count)
    check_video_conventions(recording_name(spec), probe.fps, probe.size, model)
    return probe


def check_video_conventions(name: str, fps: float, size: tuple[int, int], model: ModelConventions) -> None:
    """Raise RecordingMismatchError when a video cannot give the model what it was trained on.

    "Does not match" for a video means any of:
    - its frame rate is below the model fps (by more than FPS_TOLERANCE): resampling cannot
      invent frames, so each step would span more time and every velocity would be too large;
    - its frames are smaller than the model input in width or height: upscaling invents no
      detail, and the tracker would follow blur;
    - its aspect ratio differs from the model input's by more than ASPECT_TOLERANCE: the resize
      stretches one axis, so motion along x and y is scaled differently from training.
    A larger frame of the same shape or a higher frame rate is fine: the device resizes and
    resamples exactly like this.
    """
    w, h = size
    mw, mh = model.input_size
    label = f"model {model.model_version!r}"
    if math.isfinite(fps) and fps > 0 and fps < model.fps * (1.0 - FPS_TOLERANCE):
        raise RecordingMismatchError(
            f"video {name} runs at {fps:g} fps but the {label} expects {model.fps:g} fps; record at "
            f"{model.fps:g} fps or more, or calibrate a model trained at {fps:g} fps"
        )
    if w < mw or h < mh:
        raise RecordingMismatchError(
            f"video {name} frames are {w}x{h}, smaller than the {label} input {mw}x{mh}; record at "
            f"{mw}x{mh} or larger, or use a model trained for {w}x{h}"
        )
    aspect, model_aspect = w / h, mw / mh
    if abs(aspect / model_aspect - 1.0) > ASPECT_TOLERANCE:
        raise RecordingMismatchError(
            f"video {name} frames are {w}x{h} (aspect {aspect:.2f}) but the {label} input is {mw}x{mh} "
            f"(aspect {model_aspect:.2f}); crop the video to {mw}:{mh} or use a model trained for that view"
        )


def check_trace_conventions(name: str, fps: float, model_version: str, model: ModelConventions) -> None:
    """Raise RecordingMismatchError when a recorded trace came from another model or fps.

    The energy scale belongs to one tokenizer, so a trace recorded with another model version
    (or with velocity energy when a tokenizer is being calibrated, and vice versa) would give
    thresholds for the wrong model; a different fps changes what a step is.
    """
    if not math.isclose(float(fps), model.fps, rel_tol=1e-6):
        raise RecordingMismatchError(
            f"energy trace {name} was recorded at {fps:g} fps but the model {model.model_version!r} runs at "
            f"{model.fps:g} fps; record it again with this model"
        )
    if model_version != model.model_version:
        raise RecordingMismatchError(
            f"energy trace {name} was recorded with model {model_version!r} but you are calibrating "
            f"{model.model_version!r}; record it again with `laps-edge run --model ... --record-energy` "
            f"or pass the model it was recorded with"
        )


def read_trace(path: str | os.PathLike, model: ModelConventions) -> EnergyRecording:
    """Read an `energy.npz` written by `laps-edge run --record-energy` and check it."""
    trace = EnergyTrace.read(path)
    name = recording_name(str(path))
    if trace.n_steps == 0:
        raise CalibrationError(f"energy trace {path} holds no steps; record a longer video")
    check_trace_conventions(name, trace.fps, trace.model_version, model)
    return EnergyRecording.from_trace(trace, name, "trace", native_fps=trace.fps, native_frames=trace.n_steps)


def record_video(
    spec: str,
    model: ModelConventions,
    tracker: str = "lk",
    providers: str = "auto",
    energy_mode: str = "newest",
    progress: bool = True,
    probe: VideoProbe | None = None,
) -> EnergyRecording:
    """Run a video through the device pipeline (tracker, tokenizer, kernel) and keep its trace."""

    from edge.energy import HysteresisParams
    from edge.loop import StreamLoop
    from edge.pipeline import build_pipeline
    from edge.sinks import ProgressBar
    from edge.sources.factory import open_source

    if probe is None:
        probe = probe_video(spec, model)
    name = recording_name(spec)
    pipe = build_pipeline(
        model_dir=model.model_dir, tracker=tracker, providers=providers,
        params=HysteresisParams(theta_on=_RECORDING_THETA), energy_mode=energy_mode, keep_keyframes=False,
    )
    if pipe.model_version != model.model_version or not math.isclose(pipe.fps, model.fps):
        raise RecordingMismatchError(
            f"the pipeline built from {model.model_dir} reports model {pipe.model_version!r} at {pipe.fps:g} fps, "
            f"not {model.model_version!r} at {model.fps:g} fps; re-export the model"
        )
    recorder = EnergyTraceRecorder(fps=pipe.fps, model_version=pipe.model_version, source=str(spec))
    with open_source(spec, fps=pipe.fps, size=pipe.input_size) as src:
        bar = ProgressBar(src.frame_count, desc=f"tracking {name}", disable=not progress, leave=False)
        try:
            StreamLoop(pipe, [recorder, bar]).run(src)
        finally:
            bar.close()
    trace = recorder.trace()
    if trace.n_steps == 0:
        raise CalibrationError(f"video {spec} delivered no frames at {pipe.fps:g} fps; check the file")
    return EnergyRecording.from_trace(trace, name, "video", native_fps=probe.fps, native_frames=probe.frames)


def record_tracks(
    name: str,
    velocity: np.ndarray,
    visible: np.ndarray,
    model: ModelConventions,
    providers: str = "auto",
    energy_mode: str = "newest",
    source: str = "",
) -> EnergyRecording:
    """The energy recording of saved tracks (velocity (T, N, 2) px/step at the model fps and
    input size, visibility (T, N)), through the device's own `Pipeline` with the tracks replayed
    in place of a live tracker (`SavedTracks`): same features, same kernel, same trace."""
    from edge.energy import HysteresisParams
    from edge.loop import StreamLoop
    from edge.pipeline import build_pipeline
    from edge.sources.blank import BlankSource

    vel = np.asarray(velocity, dtype=np.float32)
    vis = np.asarray(visible, dtype=bool)
    if vel.ndim != 3 or vel.shape[2] != 2 or vis.shape != vel.shape[:2]:
        raise CalibrationError(
            f"tracks have velocity {vel.shape} and visibility {vis.shape}; expected (T, N, 2) and (T, N)"
        )
    if vel.shape[1] != model.n_points:
        raise RecordingMismatchError(
            f"tracks {name} have {vel.shape[1]} points but the model {model.model_version!r} expects "
            f"{model.n_points}; track with the model's grid"
        )
    pipe = build_pipeline(model_dir=model.model_dir, providers=providers,
                          params=HysteresisParams(theta_on=_RECORDING_THETA), energy_mode=energy_mode,
                          keep_keyframes=False)
    pipe.tracker = SavedTracks(vel, vis)
    recorder = EnergyTraceRecorder(fps=pipe.fps, model_version=pipe.model_version, source=source or name)
    # The replayed tracker never looks at the pixels: black frames at the model fps.
    with BlankSource(vel.shape[0], pipe.fps, pipe.input_size) as src:
        StreamLoop(pipe, [recorder]).run(src)
    trace = recorder.trace()
    return EnergyRecording.from_trace(trace, name, "tracks", native_fps=float(pipe.fps),
                                      native_frames=int(vel.shape[0]))


class SavedTracks(PointTracker):
    """A `PointTracker` that replays saved tracks, one step per call (for recordings whose
    tracks were computed before, e.g. the training-data track cache)."""

    def __init__(self, velocity: np.ndarray, visible: np.ndarray) -> None:
        self.velocity = velocity
        self.visible = visible
        self.n_points = int(velocity.shape[1])
        self._t = 0

    def step(self, image: np.ndarray) -> TrackStep:
        if self._t >= self.velocity.shape[0]:
            raise CalibrationError(f"saved tracks end after {self._t} steps; the video has more frames")
        t = self._t
        self._t += 1
        return TrackStep(points=np.zeros((self.n_points, 2), np.float32), visible=self.visible[t],
                         velocity=self.velocity[t])

    def reset(self) -> None:
        self._t = 0


def data_hash(recordings: Sequence[EnergyRecording], extra: dict | None = None) -> str:
    """sha256 over what a calibration saw: each recording's name, fps, energy and proxy bytes
    (float64 little-endian), in order, plus `extra` (e.g. the labels) as sorted JSON."""
    h = hashlib.sha256()
    for rec in recordings:
        h.update(rec.name.encode() + b"\0" + repr(float(rec.fps)).encode() + b"\0")
        h.update(np.ascontiguousarray(rec.energy, dtype="<f8").tobytes())
        h.update(np.ascontiguousarray(rec.proxy, dtype="<f8").tobytes())
    if extra:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()
