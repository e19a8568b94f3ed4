"""`energy.npz`: the per-step energy trace of one run, for `laps-calibrate`.

`EnergyTrace` is the file's one owner: `laps-edge run --record-energy` writes it
(`EnergyTrace.write`, the steps gathered by an `EnergyTraceRecorder`), `laps-calibrate` reads
it (`EnergyTrace.read`). One NumPy .npz archive, one entry per step of the model (T steps):

    schema           "laps.energy-trace/1"
    energy           (T,) float64 raw energy the kernel stepped on (NaN where there was none)
    smoothed         (T,) float64 the kernel's EMA-smoothed energy
    codes            (T,) int64 FSQ code of the step, -1 where none (velocity energy)
    velocity_energy  (T,) float64 velocity-energy proxy, px/step (what calibration's pseudo-labels need)
    frame_index      (T,) int64 the source's `Frame.index` of the step
    timestamp_s      (T,) float64 the source's own timestamp of the step, seconds
    fps              model frame rate (steps per second)
    model_version    the model that produced `energy`
    params           JSON of the `HysteresisParams` the run used
    source           the source spec or path

Older traces (no schema, no frame_index / timestamp_s) still load: index = arange(T),
timestamp = index / fps. Only energy, velocity_energy, fps and model_version are required.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.energy import HysteresisParams
from edge.errors import ConfigError, LapsError
from edge.loop import FrameStep, SinkBase

SCHEMA = "laps.energy-trace/1"
FILE_NAME = "energy.npz"
#: Entries every trace has, old ones included (what calibration needs).
REQUIRED_KEYS = ("energy", "velocity_energy", "fps", "model_version")
_RECORD_HINT = "record one with `laps-edge run --source VIDEO --out DIR --record-energy`"


class EnergyTraceError(LapsError):
    """An energy trace cannot be read or is inconsistent (one line: which file, what, the fix)."""


@dataclass(frozen=True)
class EnergyTrace:
    """The per-step series of one run at the model fps (see the module docstring for units).

    energy, smoothed, velocity_energy, timestamp_s: (T,) float64. codes, frame_index: (T,) int64.
    fps: steps per second. model_version: the model of `energy`. params: the run's hysteresis
    parameters (None when unknown). source: the source spec or path.
    """

    energy: np.ndarray
    smoothed: np.ndarray
    codes: np.ndarray
    velocity_energy: np.ndarray
    frame_index: np.ndarray
    timestamp_s: np.ndarray
    fps: float
    model_version: str
    params: HysteresisParams | None = None
    source: str = ""

    def __post_init__(self) -> None:
        for name, dtype in (("energy", np.float64), ("smoothed", np.float64), ("codes", np.int64),
                            ("velocity_energy", np.float64), ("frame_index", np.int64),
                            ("timestamp_s", np.float64)):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=dtype).ravel())
        n = self.energy.shape[0]
        sizes = {name: getattr(self, name).shape[0] for name in
                 ("smoothed", "codes", "velocity_energy", "frame_index", "timestamp_s")}
        odd = {name: size for name, size in sizes.items() if size != n}
        if odd:
            name, size = next(iter(odd.items()))
            raise EnergyTraceError(f"energy trace has {n} energies but {size} {name} values; record it again")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise EnergyTraceError(f"energy trace has fps {self.fps!r}; a trace needs a frame rate > 0")
        object.__setattr__(self, "fps", float(self.fps))

    @property
    def n_steps(self) -> int:
        return int(self.energy.shape[0])

    # -- the file ------------------------------------------------------------------------------
    def write(self, path: str | os.PathLike) -> Path:
        """Write the trace as a compressed .npz, atomically; returns its path. OSError (a full or
        read-only disk) is left to the caller, which knows which option names the folder."""
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez_compressed(
                fh, schema=SCHEMA, energy=self.energy, smoothed=self.smoothed, codes=self.codes,
                velocity_energy=self.velocity_energy, frame_index=self.frame_index, timestamp_s=self.timestamp_s,
                fps=self.fps, model_version=self.model_version,
                params=json.dumps(self.params.to_dict() if self.params is not None else None), source=self.source,
            )
        os.replace(tmp, p)
        return p

    @classmethod
    def read(cls, path: str | os.PathLike) -> "EnergyTrace":
        """Read a trace written by any laps-edge version; a file that is not one, or is damaged,
        is a one-line `EnergyTraceError`."""
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as data:
                missing = [k for k in REQUIRED_KEYS if k not in data.files]
                if missing:
                    raise EnergyTraceError(f"{p} is not an energy trace (it lacks {', '.join(missing)}); {_RECORD_HINT}")
                if "schema" in data.files and str(data["schema"]) != SCHEMA:
                    raise EnergyTraceError(f"energy trace {p} has schema {str(data['schema'])!r}, this version reads "
                                           f"{SCHEMA!r}; update laps-edge or record it again")
                energy = np.asarray(data["energy"], dtype=np.float64).ravel()
                n = energy.shape[0]
                fps = float(data["fps"])
                index = (np.asarray(data["frame_index"], np.int64) if "frame_index" in data.files
                         else np.arange(n, dtype=np.int64))
                fields = dict(
                    energy=energy,
                    smoothed=_optional(data, "smoothed", n, np.nan),
                    codes=_optional(data, "codes", n, -1),
                    velocity_energy=np.asarray(data["velocity_energy"]),
                    frame_index=index,
                    timestamp_s=(np.asarray(data["timestamp_s"]) if "timestamp_s" in data.files
                                 else index / fps if fps > 0 else np.zeros(n)),
                    fps=fps, model_version=str(data["model_version"]),
                    params=_params(str(data["params"])) if "params" in data.files else None,
                    source=str(data["source"]) if "source" in data.files else str(p),
                )
        except (OSError, ValueError, KeyError) as err:
            raise EnergyTraceError(f"energy trace {p} is unreadable ({err}); record it again") from None
        try:
            return cls(**fields)
        except EnergyTraceError as err:
            raise EnergyTraceError(f"{p}: {err}") from None


def is_energy_trace(path: str | os.PathLike) -> bool:
    """True for an .npz with the entries of an energy trace (other .npz files, such as saved
    tracks, are not traces)."""
    p = Path(path)
    if p.suffix.lower() != ".npz":
        return False
    try:
        with np.load(p, allow_pickle=False) as data:
            return all(k in data.files for k in REQUIRED_KEYS)
    except (OSError, ValueError):
        return False


@dataclass
class EnergyTraceRecorder(SinkBase):
    """Gathers an `EnergyTrace` one step at a time: a sink of the frame loop (`edge.loop`), or
    fed by `add`.

    fps / model_version / params / source: as in `EnergyTrace`.
    """

    fps: float
    model_version: str
    params: HysteresisParams | None = None
    source: str = ""
    _rows: list[tuple[float, float, int, float, int, float]] = field(default_factory=list, repr=False)

    def add(self, raw: float, smoothed: float, code: int, proxy: float, frame_index: int, timestamp_s: float) -> None:
        """One step: raw and smoothed energy, FSQ code (-1 none), velocity-energy proxy (px/step),
        the source's frame index and timestamp (s)."""
        self._rows.append((float(raw), float(smoothed), int(code), float(proxy), int(frame_index),
                           float(timestamp_s)))

    def frame(self, step: FrameStep) -> None:
        """The sink protocol: one processed frame."""
        self.add(step.raw_energy, step.smoothed_energy, step.code, step.proxy_energy, step.index, step.timestamp_s)

    def __len__(self) -> int:
        return len(self._rows)

    def trace(self) -> EnergyTrace:
        """The steps so far as an `EnergyTrace` (the recorder keeps gathering)."""
        raw, smoothed, codes, proxy, index, stamp = (list(c) for c in zip(*self._rows)) if self._rows else ([],) * 6
        return EnergyTrace(energy=raw, smoothed=smoothed, codes=codes, velocity_energy=proxy, frame_index=index,
                           timestamp_s=stamp, fps=self.fps, model_version=self.model_version, params=self.params,
                           source=self.source)


def _optional(data, key: str, n: int, missing: float) -> np.ndarray:
    """An optional column; absent or of the wrong length (a damaged column) it is `missing`
    throughout, as older readers treated it."""
    if key in data.files:
        column = np.asarray(data[key]).ravel()
        if column.shape[0] == n:
            return column
    return np.full(n, missing)


def _params(text: str) -> HysteresisParams | None:
    try:
        data = json.loads(text)
        return None if data is None else HysteresisParams.from_dict(data)
    except (ValueError, TypeError, ConfigError):
        return None  # provenance only: calibration never runs with the recorded thresholds
