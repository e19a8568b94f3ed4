"""Where and how the tracked points move in a segment: a fixed-length summary the device
computes from its tracker's velocities and sends with each segment (`Segment.motion`, the
`motion` field of `laps.segment/2`), the input of the "motion" embedding
(`edge.segment_embedding`).

Per step (one model frame) the tracker's grid of points is cut into MOTION_CELLS x MOTION_CELLS
cells (image rows outer, columns inner); each cell gives CELL_VALUES numbers: its mean x and
mean y velocity (pixels per step at the model's input size; a point that is not visible counts
as still), log(1 + its mean speed), its mean divergence (d vx/dx + d vy/dy over the point grid,
pixels per step per grid spacing: the motion spreads out, as a part lifted towards the camera,
or draws in, as a push away from it) and log(1 + the spread of its points' speeds) (a cell that
moves as one, like an arm in transit, against one where only some points move, like fingers):
STEP_DIM values. Per segment, its steps are summarised by
`statistics_pool` (mean, spread, first and last third, mean step-to-step change, log length)
into MOTION_DIM values.

Why the device computes it: the FSQ codes say little about WHERE the hand goes (reach,
transport and put-aside differ mainly in that) and central never sees the point tracks.
What it buys is measured in `benchmarks/clustering.py` (README, "Primitive library").

On the wire the summary is MOTION_DIM little-endian float16 values in base64 (1,072 characters),
tagged with MOTION_KIND; a different summary would get a new kind.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque

import numpy as np

from edge.errors import LapsError
from edge.segment_embedding import statistics_pool

#: cells per side of the motion grid
MOTION_CELLS = 4
#: values per cell and step: mean vx, mean vy, log(1 + mean speed), mean divergence, log(1 + speed spread)
CELL_VALUES = 5
#: values per step
STEP_DIM = CELL_VALUES * MOTION_CELLS * MOTION_CELLS
#: values per segment: `statistics_pool` of the steps
MOTION_DIM = 5 * STEP_DIM + 1
#: names this summary and its encoding in messages; a new summary gets a new kind
MOTION_KIND = "grid4-stats/1"


class MotionError(LapsError):
    """A motion summary that is not MOTION_DIM finite float16 values in base64."""


def cell_index(grid: int, cells: int = MOTION_CELLS) -> np.ndarray:
    """(grid*grid,) int: the cell (row-major, 0 .. cells*cells-1) of each point of a row-major
    grid x grid lattice; the cells split rows and columns as evenly as integers allow."""
    if grid < cells:
        raise ValueError(f"a {grid}x{grid} point grid cannot fill {cells}x{cells} motion cells")
    edges = np.linspace(0, grid, cells + 1).astype(int)
    band = np.searchsorted(edges, np.arange(grid), side="right") - 1  # the cell row/column of each grid line
    return (band[:, None] * cells + band[None, :]).reshape(-1)


class MotionSummary:
    """Turns one step's velocities into STEP_DIM values, and a segment's steps into its summary.

    grid: points per side of the tracker's lattice (N = grid*grid points, row-major).
    """

    def __init__(self, grid: int) -> None:
        self.grid = int(grid)
        self._cell = cell_index(self.grid)
        self._count = np.bincount(self._cell, minlength=MOTION_CELLS * MOTION_CELLS).astype(np.float64)

    def step(self, velocity: np.ndarray, visible: np.ndarray | None = None) -> np.ndarray:
        """(N, 2) velocities of one step (pixels/step, row-major grid order) and (N,) visibility
        -> (STEP_DIM,) float32, per cell (row-major) the CELL_VALUES numbers of the module
        docstring; invisible points count as still."""
        v = np.asarray(velocity, np.float64)
        g = self.grid
        if v.shape != (g * g, 2):
            raise ValueError(f"velocity has shape {v.shape}, expected ({g * g}, 2)")
        if visible is not None:
            v = np.where(np.asarray(visible, bool)[:, None], v, 0.0)
        speed = np.sqrt(v[:, 0] * v[:, 0] + v[:, 1] * v[:, 1])
        # Divergence on the lattice (central differences inside, one-sided at the border).
        div = (np.gradient(v[:, 0].reshape(g, g), axis=1) + np.gradient(v[:, 1].reshape(g, g), axis=0)).reshape(-1)
        n = MOTION_CELLS * MOTION_CELLS

        def mean(x: np.ndarray) -> np.ndarray:
            return np.bincount(self._cell, x, minlength=n) / self._count

        out = np.empty((n, CELL_VALUES), np.float64)
        out[:, 0] = mean(v[:, 0])
        out[:, 1] = mean(v[:, 1])
        mean_speed = mean(speed)
        out[:, 2] = np.log1p(mean_speed)
        out[:, 3] = mean(div)
        out[:, 4] = np.log1p(np.sqrt(np.maximum(mean(speed * speed) - mean_speed * mean_speed, 0.0)))
        return out.reshape(-1).astype(np.float32)

    @staticmethod
    def segment(steps: np.ndarray) -> np.ndarray:
        """(S, STEP_DIM) steps of one segment (S >= 1) -> (MOTION_DIM,) float32."""
        arr = np.asarray(steps, np.float32)
        if arr.ndim != 2 or arr.shape[1] != STEP_DIM or arr.shape[0] < 1:
            raise ValueError(f"motion steps have shape {arr.shape}, expected (S >= 1, {STEP_DIM})")
        return statistics_pool([arr])[0]


class MotionSteps:
    """The per-step motion rows of the steps a segment assembler still holds, keyed by source
    frame index, so each finished segment gets the summary of exactly its own frames.

    `add` one row per step; `summary(start, end)` summarises the rows of frames [start, end);
    `forget_before(frame)` drops rows no segment can still need (the pipeline passes the oldest
    frame its assembler holds), so memory follows the open segment, not the stream.
    """

    def __init__(self, grid: int) -> None:
        self.summary_of = MotionSummary(grid)
        self._rows: deque[tuple[int, np.ndarray]] = deque()

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, frame_index: int, velocity: np.ndarray, visible: np.ndarray) -> None:
        self._rows.append((int(frame_index), self.summary_of.step(velocity, visible)))

    def summary(self, start_frame: int, end_frame: int) -> np.ndarray | None:
        """(MOTION_DIM,) float32 of the rows with start_frame <= frame < end_frame; None when
        none is held (a segment that did not come from this pipeline's steps)."""
        rows = [r for f, r in self._rows if start_frame <= f < end_frame]
        return MotionSummary.segment(np.stack(rows)) if rows else None

    def forget_before(self, frame_index: int | None) -> None:
        """Drop the rows of frames before `frame_index` (None: drop all)."""
        if frame_index is None:
            self._rows.clear()
            return
        while self._rows and self._rows[0][0] < frame_index:
            self._rows.popleft()

    def clear(self) -> None:
        self._rows.clear()


def encode_motion(summary: np.ndarray) -> str:
    """(MOTION_DIM,) values -> base64 of little-endian float16 (what a segment carries).
    Values beyond float16's range are clipped to it (+-65504)."""
    arr = np.asarray(summary, np.float32).reshape(-1)
    if arr.size != MOTION_DIM or not np.all(np.isfinite(arr)):
        raise MotionError(f"a motion summary has {MOTION_DIM} finite values; got {arr.size}")
    half = np.clip(arr, -65504.0, 65504.0).astype("<f2")
    return base64.b64encode(half.tobytes()).decode("ascii")


def motion_bytes(text: str) -> bytes:
    """The float16 bytes of an encoded summary (what the central store keeps), checked: a
    `MotionError` names what is wrong."""
    if not isinstance(text, str):
        raise MotionError(f"motion values are {type(text).__name__}, expected base64 text")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MotionError("motion values are not base64 text") from None
    if len(raw) != 2 * MOTION_DIM:
        raise MotionError(f"motion values hold {len(raw)} bytes, expected {2 * MOTION_DIM} "
                          f"({MOTION_DIM} float16 values)")
    if not np.all(np.isfinite(np.frombuffer(raw, "<f2"))):
        raise MotionError("motion values hold numbers that are not finite")
    return raw


def decode_motion(text: str) -> np.ndarray:
    """The inverse of `encode_motion` -> (MOTION_DIM,) float32; `MotionError` when malformed."""
    return motion_from_bytes(motion_bytes(text))


def motion_from_bytes(raw: bytes) -> np.ndarray:
    """float16 bytes (as `motion_bytes` returns and the store keeps) -> (MOTION_DIM,) float32."""
    return np.frombuffer(bytes(raw), "<f2").astype(np.float32)
