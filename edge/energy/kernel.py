"""THE energy step: EMA smoothing and hysteresis ON/OFF with debounce, one call per step.

One `@njit` function, `energy_step`, is the whole state machine. The device loop calls it once
per frame; the whole-series loops (`edge.energy.series`) and the parallel parameter sweeps
(`edge.energy.sweep`) call it from jitted loops defined at the bottom of this file; calibration
and benchmarks use those. There is no second copy. Every jitted function of the package lives in
this one file because Numba's on-disk cache is invalidated by the defining file's content only.

State: a float64 vector (`new_state`), layout `S_*` below. Parameters: the float64 vector of
`edge.energy.params.HysteresisParams.to_array()`, layout `P_*` below (kept here, beside the code
compiled against it, for the same cache reason).

Definitions (step t counts calls from 0; y is the smoothed energy after step t):

- Smoothing: y = E for the first finite energy, then y = alpha*E + (1-alpha)*y_prev. A
  non-finite energy (NaN/inf, e.g. from a corrupt frame) leaves y unchanged; before the first
  finite energy y is NaN and counts as below every threshold.
- OFF -> ON: a run of `up_steps` (u) consecutive steps with y >= theta_on, none of them inside
  the cooldown, confirms ON. The segment STARTs at the first step of that run, s = t - u + 1;
  the START event is emitted at the confirming step t (so a consumer keeps the last u steps
  buffered to cover s..t).
- Cooldown: after an END or DISCARD event emitted at step t_e, the steps t_e+1 ..
  t_e+cooldown_steps cannot belong to an ON run; the earliest next start is
  t_e + cooldown_steps + 1.
- ON -> OFF: counted only on steps after the confirming step. A run of `down_steps` (d)
  consecutive steps with y < theta_off = ratio_off*theta_on confirms OFF at step t; the segment
  ENDs (exclusive) at the first step of that run, e = t - d + 1. The event is emitted at t.
- Cap (`max_steps` > 0): when an ON segment reaches max_steps steps (t - s + 1 == max_steps) and
  OFF was not confirmed at the same step, it is ended there: e = t + 1, emitted at t (a pending,
  unconfirmed down run stays inside the segment). The cooldown then applies as after any END.
- End of stream (`finish`): an ON segment is closed at e = number of steps processed (pending
  down runs stay inside).
- Every closed segment [s, e) with e - s >= min_steps gives END, a shorter one DISCARD.

At most one event per step (max_steps > up_steps is enforced by `HysteresisParams`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from edge.energy.cache import kernel_cache_enabled

EVENT_NONE, EVENT_START, EVENT_END, EVENT_DISCARD = 0, 1, 2, 3

# Slot of each field in the packed parameter vector (`HysteresisParams.to_array()`).
P_THETA_ON = 0
P_RATIO_OFF = 1
P_UP_STEPS = 2
P_DOWN_STEPS = 3
P_COOLDOWN_STEPS = 4
P_ALPHA = 5
P_MAX_STEPS = 6
P_MIN_STEPS = 7
N_PARAMS = 8

# --- state layout (float64 slots) -------------------------------------------------------------
S_STEP = 0          # steps processed so far; the last processed step index is S_STEP - 1
S_Y = 1             # smoothed energy y after the last step (NaN before the first finite energy)
S_E = 2             # raw energy E of the last step
S_ON = 3            # 1.0 while a segment is open (confirmed ON), else 0.0
S_UP = 4            # length of the current run of y >= theta_on while OFF (outside cooldown)
S_DOWN = 5          # length of the current run of y < theta_off while ON
S_COOLDOWN = 6      # cooldown steps still to wait before an ON run may begin
S_SEG_START = 7     # start step of the open or last closed segment; -1 before the first
S_SEG_END = 8       # exclusive end of the last closed segment; -1 while open or before the first
S_EVENT = 9         # event of the last step (or of `finish`)
S_N_KEPT = 10       # segments closed with END so far
S_N_DISCARDED = 11  # segments closed with DISCARD so far
S_HAS_PREV = 12     # latent_step: 1.0 once a previous finite latent is stored
S_LATENT_DIM = 13   # latent_step: length D of the stored previous latent
# Slots 14-15 spare. Slots 16-31 are RESERVED for a future within-activity boundary step (e.g.
# running code-distribution statistics that split an ON segment where the codes change; see
# LAPS_METHOD.md section 3). They stay 0.0 now; a new step may use them without changing the
# layout of anything above or the position of the latent below.
S_RESERVED_FIRST = 16
N_RESERVED = 16
HEADER = S_RESERVED_FIRST + N_RESERVED  # the previous latent z_{t-1} occupies [HEADER, HEADER + D)

_CACHE = kernel_cache_enabled()


def new_state(latent_dim: int = 0) -> np.ndarray:
    """A fresh kernel state, float64 (HEADER + latent_dim,); latent_dim > 0 for `latent_step`."""
    if latent_dim < 0:
        raise ValueError(f"latent_dim must be >= 0, got {latent_dim}")
    state = np.zeros(HEADER + int(latent_dim), dtype=np.float64)
    init_state(state, int(latent_dim))
    return state


@njit(cache=_CACHE)
def init_state(state: np.ndarray, latent_dim: int) -> None:
    """Reset `state` (length >= HEADER + latent_dim) to the start-of-stream values, in place."""
    state[:] = 0.0
    state[S_Y] = np.nan
    state[S_E] = np.nan
    state[S_SEG_START] = -1.0
    state[S_SEG_END] = -1.0
    state[S_LATENT_DIM] = latent_dim


@njit(cache=_CACHE)
def energy_step(state: np.ndarray, params: np.ndarray, energy: float) -> int:
    """Advance the state machine by one step with raw energy `energy`; returns the EVENT_* code.

    state: float64 state vector (modified in place). params: float64 (N_PARAMS,).
    """
    t = int(state[S_STEP])
    theta_on = params[P_THETA_ON]
    theta_off = params[P_RATIO_OFF] * theta_on
    alpha = params[P_ALPHA]

    state[S_E] = energy
    if math.isfinite(energy):
        if math.isnan(state[S_Y]):
            state[S_Y] = energy
        else:
            state[S_Y] = alpha * energy + (1.0 - alpha) * state[S_Y]
    y = state[S_Y]

    event = EVENT_NONE
    if state[S_ON] == 0.0:
        if state[S_COOLDOWN] > 0.0:
            state[S_COOLDOWN] -= 1.0
            state[S_UP] = 0.0
        elif y >= theta_on:
            state[S_UP] += 1.0
            if state[S_UP] >= params[P_UP_STEPS]:
                state[S_ON] = 1.0
                state[S_SEG_START] = t - state[S_UP] + 1.0
                state[S_SEG_END] = -1.0
                state[S_UP] = 0.0
                state[S_DOWN] = 0.0
                event = EVENT_START
        else:
            state[S_UP] = 0.0
    else:
        if y < theta_off:
            state[S_DOWN] += 1.0
        else:
            state[S_DOWN] = 0.0
        if state[S_DOWN] >= params[P_DOWN_STEPS]:
            event = _close(state, params, t - state[S_DOWN] + 1.0)
        elif params[P_MAX_STEPS] > 0.0 and t - state[S_SEG_START] + 1.0 >= params[P_MAX_STEPS]:
            event = _close(state, params, t + 1.0)

    state[S_STEP] = t + 1.0
    state[S_EVENT] = event
    return event


@njit(cache=_CACHE)
def latent_step(state: np.ndarray, params: np.ndarray, z: np.ndarray) -> int:
    """One step from a latent vector z (D,): E = ||z - z_prev||_2 (E = 0 on the first), then
    `energy_step`. A z with a non-finite entry gives E = NaN (y holds) and is not stored as
    z_prev. The state must come from `new_state(D)`.
    """
    return energy_step(state, params, latent_energy(state, z))


@njit(cache=_CACHE)
def latent_energy(state: np.ndarray, z: np.ndarray) -> float:
    """The Latent Action Energy of z (D,) against the stored z_prev, storing z as the next z_prev
    (the first half of `latent_step`; the hysteresis state is not touched)."""
    d = int(state[S_LATENT_DIM])
    if z.shape[0] != d:
        raise ValueError("latent_step: z length differs from the state's latent_dim")
    finite = True
    for i in range(d):
        if not math.isfinite(z[i]):
            finite = False
            break
    if not finite:
        return np.nan
    energy = 0.0
    if state[S_HAS_PREV] != 0.0:
        acc = 0.0
        for i in range(d):
            diff = float(z[i]) - state[HEADER + i]
            acc += diff * diff
        energy = math.sqrt(acc)
    for i in range(d):
        state[HEADER + i] = z[i]
    state[S_HAS_PREV] = 1.0
    return energy


@njit(cache=_CACHE)
def finish(state: np.ndarray, params: np.ndarray) -> int:
    """End of stream: close an open segment at e = steps processed (END or DISCARD); else NONE."""
    event = EVENT_NONE
    if state[S_ON] != 0.0:
        event = _close(state, params, state[S_STEP])
    state[S_EVENT] = event
    return event


@njit(cache=_CACHE)
def _close(state: np.ndarray, params: np.ndarray, end: float) -> int:
    state[S_ON] = 0.0
    state[S_SEG_END] = end
    state[S_UP] = 0.0
    state[S_DOWN] = 0.0
    state[S_COOLDOWN] = params[P_COOLDOWN_STEPS]
    if end - state[S_SEG_START] >= params[P_MIN_STEPS]:
        state[S_N_KEPT] += 1.0
        return EVENT_END
    state[S_N_DISCARDED] += 1.0
    return EVENT_DISCARD


# --- whole-series and parameter-sweep loops over the same step -------------------------------
# They live in this file on purpose: Numba's cache is keyed on the hash of the file that defines
# a function, not on the files of the jitted functions it calls, so a runner cached in another
# module would keep an old copy of energy_step after an upgrade.

@njit(cache=_CACHE)
def _record(state, event, bounds, kept, on, n):
    """Append the segment just closed by `event` (END or DISCARD) to bounds/kept, mark kept
    steps in `on`; returns (bounds, kept, n), the buffers doubled when full. Called only on a
    closing event: passing arrays in and out costs reference counting on every call."""
    if n == bounds.shape[0]:
        bigger = np.empty((2 * n, 2), dtype=np.int64)
        bigger[:n] = bounds
        bounds = bigger
        bigger_kept = np.zeros(2 * n, dtype=np.uint8)
        bigger_kept[:n] = kept
        kept = bigger_kept
    s = int(state[S_SEG_START])
    e = int(state[S_SEG_END])
    bounds[n, 0] = s
    bounds[n, 1] = e
    if event == EVENT_END:
        kept[n] = 1
        on[s:e] = True
    return bounds, kept, n + 1


@njit(cache=_CACHE)
def _series_energy(params, energy):
    t_len = energy.shape[0]
    state = np.empty(HEADER, dtype=np.float64)
    init_state(state, 0)
    smoothed = np.empty(t_len, dtype=np.float64)
    events = np.zeros(t_len, dtype=np.int8)
    on = np.zeros(t_len, dtype=np.bool_)
    bounds = np.empty((64, 2), dtype=np.int64)
    kept = np.zeros(64, dtype=np.uint8)
    n = 0
    for t in range(t_len):
        ev = energy_step(state, params, energy[t])
        events[t] = ev
        smoothed[t] = state[S_Y]
        if ev == EVENT_END or ev == EVENT_DISCARD:
            bounds, kept, n = _record(state, ev, bounds, kept, on, n)
    final = finish(state, params)
    if final != EVENT_NONE:
        bounds, kept, n = _record(state, final, bounds, kept, on, n)
    return smoothed, events, on, bounds[:n], kept[:n], final


@njit(cache=_CACHE)
def _series_latent(params, latents):
    # The energies first (latent_energy never looks at the hysteresis state), then the one
    # energy loop: the same calls, in the same order, as latent_step per step.
    t_len = latents.shape[0]
    d = latents.shape[1]
    state = np.empty(HEADER + d, dtype=np.float64)
    init_state(state, d)
    energy = np.empty(t_len, dtype=np.float64)
    for t in range(t_len):
        energy[t] = latent_energy(state, latents[t])
    smoothed, events, on, bounds, kept, final = _series_energy(params, energy)
    return energy, smoothed, events, on, bounds, kept, final


@njit(cache=_CACHE, parallel=True)
def _sweep_masks(energy, grid):
    n_sets = grid.shape[0]
    t_len = energy.shape[0]
    masks = np.zeros((n_sets, t_len), dtype=np.uint8)
    for i in prange(n_sets):
        params = grid[i]
        state = np.empty(HEADER, dtype=np.float64)
        init_state(state, 0)
        for t in range(t_len):
            if energy_step(state, params, energy[t]) == EVENT_END:
                masks[i, int(state[S_SEG_START]):int(state[S_SEG_END])] = 1
        if finish(state, params) == EVENT_END:
            masks[i, int(state[S_SEG_START]):int(state[S_SEG_END])] = 1
    return masks


@njit(cache=_CACHE, parallel=True)
def _sweep_counts(energy, grid, cum_labels):
    n_sets = grid.shape[0]
    t_len = energy.shape[0]
    total_pos = cum_labels[t_len]
    out = np.zeros((n_sets, 4), dtype=np.int64)
    for i in prange(n_sets):
        params = grid[i]
        state = np.empty(HEADER, dtype=np.float64)
        init_state(state, 0)
        tp = 0
        pred = 0
        for t in range(t_len + 1):
            # Step t_len is the end of the stream: `finish` closes an open segment there.
            if t < t_len:
                ev = energy_step(state, params, energy[t])
            else:
                ev = finish(state, params)
            if ev == EVENT_END:
                s = int(state[S_SEG_START])
                e = int(state[S_SEG_END])
                tp += cum_labels[e] - cum_labels[s]  # positives inside [s, e)
                pred += e - s
        fp = pred - tp
        out[i, 0] = tp
        out[i, 1] = fp
        out[i, 2] = total_pos - tp
        out[i, 3] = t_len - total_pos - fp
    return out


# --- readers (plain Python: cheaper than a jitted call from the interpreter) ------------------

def step_index(state: np.ndarray) -> int:
    """Index of the last processed step (-1 before the first)."""
    return int(state[S_STEP]) - 1


def steps_processed(state: np.ndarray) -> int:
    """Number of steps processed so far."""
    return int(state[S_STEP])


def smoothed_energy(state: np.ndarray) -> float:
    """Smoothed energy y after the last step (NaN before the first finite energy)."""
    return float(state[S_Y])


def raw_energy(state: np.ndarray) -> float:
    """Raw energy E of the last step."""
    return float(state[S_E])


def is_on(state: np.ndarray) -> bool:
    """True while a segment is open (ON confirmed, not yet ended)."""
    return bool(state[S_ON] != 0.0)


def segment_start(state: np.ndarray) -> int:
    """Start step of the open or the last closed segment (-1 before the first START)."""
    return int(state[S_SEG_START])


def segment_end(state: np.ndarray) -> int:
    """Exclusive end step of the last closed segment (-1 while one is open or none has closed)."""
    return int(state[S_SEG_END])


def last_event(state: np.ndarray) -> int:
    """EVENT_* code of the last step or `finish` call."""
    return int(state[S_EVENT])


def segment_counts(state: np.ndarray) -> tuple[int, int]:
    """(kept, discarded) segments closed so far."""
    return int(state[S_N_KEPT]), int(state[S_N_DISCARDED])
