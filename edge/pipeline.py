"""The per-frame device pipeline: tracker -> features -> energy kernel -> segment assembler.

One `Pipeline.process(frame)` call per frame at the model fps; it returns an
`edge.loop.FrameStep` with the segments that ended at this frame (`FinishedSegment`: the
segment, its keyframes, an optional clip). `edge.loop.StreamLoop` drives it for `laps-edge run`
on a file, the long-running service, calibration recordings and the benchmarks, so there is
one path from pixels to segments.

Two feature sources feed the one kernel:
- `VelocityEnergy`: mean |v| over visible points per step (the paper's calibration proxy);
  used when no tokenizer model is given.
- `TokenizerFeatures`: the motion tokenizer's newest FSQ token per frame -> z_q -> the
  kernel's latent step (LAPS), or the paper-code window-mean energy.

When the model directory carries a primitive library (`edge.primitive_library`, shipped by
central in the OTA bundle), every finished segment with codes is labelled with its nearest
primitive and the distance (`Segment.primitive`), from z_q rebuilt from its codes with the
model's own FSQ: what central computes from the same codes.

Every finished segment also carries its motion summary (`edge.motion_summary`: where and how
the tracked points moved over the segment's own frames, `Segment.motion`), from the same
tracker steps the features came from; it costs about 50 us per frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from edge.assembler import SegmentAssembler
from edge.calibration_file import CalibrationFile
from edge.energy import HysteresisParams, kernel
from edge.errors import ConfigError
from edge.loop import FinishedSegment, FrameStep
from edge.motion_summary import MotionSteps, encode_motion
from edge.primitive_library import PrimitiveLibrary
from edge.recent_frames import ClipRecorder, KeyframeRing
from edge.segment_embedding import MOTION_METHODS
from edge.segments import Segment
from edge.sources.base import Frame
from edge.tracking import TRACKER_BACKENDS
from edge.tracking.base import PointTracker, TrackStep, grid_points
from edge.tracking.roi import RegionOfInterest

if TYPE_CHECKING:  # edge.tokenizer pulls in the inference backends; a velocity-only pipeline needs none
    from edge.tokenizer import FSQ

#: Defaults of the pipeline when no model directory is given (the velocity-energy proxy).
DEFAULT_FPS = 10.0
DEFAULT_INPUT_SIZE = (320, 240)
DEFAULT_GRID = 20
#: theta_on for the velocity-energy proxy (px/step at 320x240, 10 fps): the best mean F1@2s
#: on the synthetic VALIDATION seeds 500-504 (`python -m benchmarks.segmentation`, row
#: "velocity energy", column theta_on), never the held-out ones. A site calibrates its own
#: with `laps-calibrate`.
DEFAULT_VELOCITY_THETA_ON = 0.74


@dataclass
class StepFeatures:
    """What a feature extractor gives the kernel for one step.

    Exactly one of `energy` (a scalar for `energy_step`) or `latent` ((D,) float for
    `latent_step`) is set; `code` is the FSQ code when the features came from a tokenizer.
    """

    energy: float | None = None
    latent: np.ndarray | None = None
    code: int | None = None
    proxy: float | None = None  # the velocity-energy proxy when the extractor already computed it


class FeatureExtractor(Protocol):
    """Turns one tracker step into kernel input."""

    latent_dim: int

    def features(self, track: TrackStep) -> StepFeatures: ...

    def reset(self) -> None: ...


class VelocityEnergy:
    """The paper's proxy: mean |v| (px/step) over the points visible in this step."""

    latent_dim = 0

    def features(self, track: TrackStep) -> StepFeatures:
        energy = velocity_energy(track.velocity, track.visible)
        return StepFeatures(energy=energy, proxy=energy)

    def reset(self) -> None:
        pass


def velocity_energy(velocity: np.ndarray, visible: np.ndarray) -> float:
    """Mean speed in px/step over visible points; 0.0 when none is visible.

    velocity: (N, 2) float; visible: (N,) bool.
    """
    if not np.any(visible):
        return 0.0
    v = velocity[visible]
    return float(np.mean(np.sqrt(v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1])))


class TokenizerFeatures:
    """LAPS features from the motion tokenizer runtime (`edge.tokenizer.TokenizerRuntime`)."""

    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.mode = runtime.energy_mode
        self.latent_dim = int(runtime.latent_dim) if self.mode == "newest" else 0

    def features(self, track: TrackStep) -> StepFeatures:
        out = self.runtime.step(track.velocity, track.visible)
        if self.mode == "newest":
            return StepFeatures(latent=out.z_q, code=out.code)
        # Window-mean: a new value every `stride` frames; the runtime holds it in between so the
        # kernel still steps once per frame.
        return StepFeatures(energy=self.runtime.held_energy, code=out.code)

    def reset(self) -> None:
        self.runtime.reset()


@dataclass
class Pipeline:
    """Per-frame pipeline. Build it with `build_pipeline`; drive it with `edge.loop.StreamLoop`.

    fps: model fps (frames given to `process` must already be at this rate).
    input_size: (width, height) the tracker and model work at; frames are resized to it.
    keep_keyframes: keep JPEG stills of recent frames so finished segments carry their keyframes.
    clips: optional `edge.recent_frames.ClipRecorder`: finished segments carry an MJPEG clip.
    origin_utc: wall-clock time of timestamp 0 until `start_stream` sets another.
    library: the model's primitive library; with it every finished segment is labelled
    (`Segment.primitive`): a "motion" library from the segment's motion summary, the others from
    its codes through `fsq`, the model's FSQ (`edge.tokenizer.FSQ`).
    grid: points per side of the tracker's lattice (the motion summary's cells cut it).
    """

    fps: float
    input_size: tuple[int, int]
    tracker: PointTracker
    extractor: FeatureExtractor
    params: HysteresisParams
    model_version: str = ""
    providers_in_use: list[str] = field(default_factory=lambda: ["cpu"])
    keep_keyframes: bool = True
    clips: ClipRecorder | None = None
    origin_utc: datetime | None = None
    library: PrimitiveLibrary | None = None
    fsq: FSQ | None = None
    grid: int = DEFAULT_GRID

    def __post_init__(self) -> None:
        if self.library is not None and self.library.method not in MOTION_METHODS and self.fsq is None:
            raise ConfigError("a primitive library needs the model's FSQ to rebuild z_q; build the pipeline "
                              "from the model directory that carries it")
        self._params_arr = self.params.to_array()
        self._keyframes = KeyframeRing() if self.keep_keyframes else None
        self._motion = MotionSteps(self.grid)
        self._stream_origin: datetime | None = None
        self.reset()

    # -- public -----------------------------------------------------------------------
    def warm_up(self) -> None:
        """Compile the kernel and run every stage once on a blank frame, then reset.

        The service signals READY only after this, so the first real frame is not slow.
        """
        w, h = self.input_size
        blank = np.zeros((h, w, 3), np.uint8)
        for i in range(3):
            self.process(Frame(blank, i / self.fps, i, i))
        self.reset()

    def set_params(self, params: HysteresisParams) -> None:
        """Use other hysteresis parameters from the next frame on (the stream state is reset)."""
        self.params = params
        self._params_arr = params.to_array()
        self.reset()

    def reset(self) -> None:
        """Forget all state (a new stream starts)."""
        self.tracker.reset()
        self.extractor.reset()
        self._state = kernel.new_state(self.extractor.latent_dim)
        self._stream_origin = None
        self._assembler = self._new_assembler()
        self._motion.clear()
        if self._keyframes is not None:
            self._keyframes.clear()
        if self.clips is not None:
            self.clips.clear()
        self.frames = 0

    def start_stream(self, origin_utc: datetime) -> None:
        """Count the times of the stream about to start from `origin_utc`, the wall-clock time
        of its timestamp 0 (`edge.segments.stream_origin`). Call after `reset()` (or on a new
        pipeline), before the stream's first frame; the next `reset()` forgets it again."""
        if self.frames:
            raise RuntimeError("start_stream() after frames were processed; call reset() first")
        self._stream_origin = origin_utc
        self._assembler = self._new_assembler()

    def process(self, frame: Frame) -> FrameStep:
        """Advance by one frame (at the model fps): what it produced, with the segments that
        ended here. Segment frames and times are `frame.index` and `frame.timestamp_s`."""
        t0 = time.perf_counter()
        image = frame.image
        w, h = self.input_size
        if image.shape[1] != w or image.shape[0] != h:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        track = self.tracker.step(image)
        t1 = time.perf_counter()
        self._motion.add(frame.index, track.velocity, track.visible)
        feats = self.extractor.features(track)
        t2 = time.perf_counter()
        if feats.latent is not None:
            event = kernel.latent_step(self._state, self._params_arr, feats.latent)
        else:
            event = kernel.energy_step(self._state, self._params_arr, float(feats.energy))
        segments = self._assembler.push(self._state, event, code=feats.code, frame_index=frame.index,
                                        timestamp_s=frame.timestamp_s)
        t3 = time.perf_counter()
        if self._keyframes is not None:
            self._keyframes.add(frame.index, image)
        if self.clips is not None:
            self.clips.add(frame.index, frame.image)
        self.frames += 1
        finished = self._finished(segments)
        return FrameStep(
            index=frame.index, timestamp_s=frame.timestamp_s, source_index=frame.source_index,
            raw_energy=float(kernel.raw_energy(self._state)),
            smoothed_energy=float(kernel.smoothed_energy(self._state)),
            code=-1 if feats.code is None else int(feats.code),
            proxy_energy=feats.proxy if feats.proxy is not None else velocity_energy(track.velocity, track.visible),
            latency_ms={"track": (t1 - t0) * 1e3, "features": (t2 - t1) * 1e3, "kernel": (t3 - t2) * 1e3,
                        "total": (time.perf_counter() - t0) * 1e3},
            finished=finished,
        )

    def finish(self) -> tuple[FinishedSegment, ...]:
        """End of stream: close a segment that is still open."""
        event = kernel.finish(self._state, self._params_arr)
        return self._finished(self._assembler.finish(self._state, event))

    @property
    def smoothed_energy(self) -> float:
        return float(kernel.smoothed_energy(self._state))

    # -- internals ----------------------------------------------------------------------
    def _new_assembler(self) -> SegmentAssembler:
        # START is confirmed up_steps after the segment's first step: the ring must reach back.
        return SegmentAssembler(
            fps=self.fps, origin_utc=self._stream_origin or self.origin_utc or datetime.now(timezone.utc),
            model_version=self.model_version, lookback_steps=max(16, self.params.up_steps + 1),
        )

    def _finished(self, segments: list[Segment]) -> tuple[FinishedSegment, ...]:
        for seg in segments:
            summary = self._motion.summary(seg.start_frame, seg.end_frame)
            if summary is not None:
                seg.motion = encode_motion(summary)
            if self.library is not None:
                seg.primitive = self.library.label_segment(seg, self.fsq)
        # Rows of frames before the oldest step the assembler holds belong to no future segment.
        self._motion.forget_before(self._assembler.oldest_frame)
        return tuple(
            FinishedSegment(
                seg,
                keyframes=self._keyframes.take(seg.keyframes) if self._keyframes is not None else {},
                clip=self.clips.clip(seg.start_frame, seg.end_frame) if self.clips is not None else None,
            )
            for seg in segments
        )


def build_pipeline(
    model_dir: str | None = None,
    tracker: str = "lk",
    providers: str = "auto",
    params: HysteresisParams | None = None,
    calibration_path: str | None = None,
    energy_mode: str = "newest",
    keep_keyframes: bool = True,
    roi: RegionOfInterest | None = None,
) -> Pipeline:
    """Assemble the pipeline from a model directory (LAPS) or, with none, the velocity proxy.

    roi: a region of interest (normalised polygons, `edge.tracking.roi`): the tracker follows
    only the grid points inside it; the others are reported invisible with zero velocity, so
    the model still gets its N points in grid order. A region that holds none of the grid
    points is refused.

    Thresholds come from, in order: `params`, `calibration_path`, the model directory's
    `calibration.json`, the built-in default for the velocity proxy. A model without any
    calibration is refused (its energy scale is its own).
    """
    if tracker not in TRACKER_BACKENDS:
        raise ConfigError(
            f"tracker backend {tracker!r} is not known; use one of {', '.join(TRACKER_BACKENDS)}"
        )
    if calibration_path is not None and params is None:
        params = CalibrationFile.read(calibration_path).params

    if model_dir is None:
        fps, size, grid, margin = DEFAULT_FPS, DEFAULT_INPUT_SIZE, DEFAULT_GRID, 1.0 / DEFAULT_GRID
        extractor: FeatureExtractor = VelocityEnergy()
        version, providers_in_use = "velocity-energy", ["cpu"]
        library = fsq = None
        if params is None:
            params = HysteresisParams(theta_on=DEFAULT_VELOCITY_THETA_ON)
    else:
        from edge.model import load_model_directory
        from edge.tokenizer import TokenizerRuntime

        model = load_model_directory(model_dir)
        meta = model.metadata
        fps, size, grid, margin = float(meta.fps), tuple(meta.input_size), int(meta.grid), float(meta.grid_margin)
        runtime = TokenizerRuntime(model, providers=providers, energy_mode=energy_mode)
        extractor = TokenizerFeatures(runtime)
        version, providers_in_use = meta.model_version, list(runtime.providers_in_use)
        library, fsq = model.library, runtime.fsq
        if params is None:
            if model.calibration is None:
                raise ConfigError(
                    f"model directory {model_dir} has no calibration.json; run laps-calibrate "
                    "or pass thresholds explicitly"
                )
            params = model.calibration.params
    if roi is not None:
        inside = int(roi.mask(grid_points(int(size[0]), int(size[1]), grid, margin), int(size[0]), int(size[1])).sum())
        if inside == 0:
            raise ConfigError(f"the region of interest {'; '.join(roi.to_texts())!r} holds none of the {grid}x{grid} "
                              "grid points; draw it larger (`laps-edge roi` shows the points it keeps)")
    trk = _make_tracker(tracker, grid, margin, model=None if model_dir is None else model, providers=providers,
                        input_size=(int(size[0]), int(size[1])), roi=roi)
    if getattr(trk, "n_points", grid * grid) != grid * grid:
        raise ConfigError(f"tracker gives {trk.n_points} points but the model expects {grid * grid}")
    return Pipeline(
        fps=fps, input_size=(int(size[0]), int(size[1])), tracker=trk, extractor=extractor,
        params=params, model_version=version, providers_in_use=providers_in_use,
        keep_keyframes=keep_keyframes, library=library, fsq=fsq, grid=grid,
    )


def _make_tracker(kind: str, grid: int, margin: float, model=None, providers: str = "auto",
                  input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
                  roi: RegionOfInterest | None = None) -> PointTracker:
    """One branch per backend in TRACKER_BACKENDS.

    "onnx" takes tracker.onnx from `model` (the pipeline's already verified `ModelDirectory`),
    or, without one (the velocity proxy), from the shipped default bundle; its grid, margin and
    input size must be the model's.
    """
    if kind == "onnx":
        from edge.model import shipped_model_dir
        from edge.tracking.onnx_student import OnnxStudentTracker

        source = model if model is not None else shipped_model_dir()
        if source is None:
            raise ConfigError("tracker 'onnx' needs tracker.onnx, but there is no model directory and this "
                              "installation ships no default model; pass --model DIR or use --tracker lk")
        trk = OnnxStudentTracker(source, grid=grid, margin=margin, providers=providers, roi=roi)
        if tuple(trk.input_size) != tuple(input_size):
            raise ConfigError(
                f"tracker {trk.path} takes {trk.input_size[0]}x{trk.input_size[1]} frames but the model works at "
                f"{input_size[0]}x{input_size[1]}; export the tracker into this model directory or use --tracker lk"
            )
        return trk
    from edge.tracking.lk import LucasKanadeTracker

    return LucasKanadeTracker(grid=grid, margin=margin, roi=roi)
