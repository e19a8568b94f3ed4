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

Within-activity boundaries (`latent_step` only, on when `split_window` w > 0): two activities
performed back to back leave no low-energy valley, so the hysteresis alone cannot separate them.
The split step is a two-window test on the latent stream (the same z that gives the energy):
with the last 2w finite latents in a ring, the change score at step t is

    c_t = || mean(z over the newest w) - mean(z over the w before) ||_2,

an estimate of how far the mean latent moved at b = t - w + 1 (the first step of the newer
window; the score peaks there when the mean steps, because the windows then straddle it). While
ON, a boundary b is a candidate when c_t >= split_theta and the piece before it would have at
least m = split_min_steps steps (b - s >= m); the highest candidate wins (non-maximum
suppression). It is confirmed, and the open segment is SPLIT at b, once the scores of the w
boundaries after it have been seen (t - w + 1 - b >= w) and the piece after it is long enough
that a down run starting now still leaves m steps (t + 1 - b >= m + down_steps). The SPLIT
event closes [s, b) (kept: m >= min_steps) and the open segment continues from s = b. Decision
lag: the SPLIT is emitted max(2w - 1, m + d - 1) steps after b. If OFF (or the cap, or the end
of stream) closes the segment while a candidate with e - b >= m is pending, both pieces close at
once: SPLIT_END ([s, b) and [b, e)). START and a closed segment forget the candidate. A
non-finite latent is not stored in the ring (its step has no score). The window difference is
kept as a running sum (three ring rows per step), so a step costs O(D) for any w up to
MAX_SPLIT_WINDOW.

At most one event per step (max_steps > up_steps is enforced by `HysteresisParams`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from edge.energy.cache import kernel_cache_enabled

EVENT_NONE, EVENT_START, EVENT_END, EVENT_DISCARD = 0, 1, 2, 3
#: The open segment was split: [split_from, split_at) closed (kept), the segment goes on from split_at.
EVENT_SPLIT = 4
#: A pending split and a close at once: [split_from, split_at) and [split_at, end) both closed (kept).
EVENT_SPLIT_END = 5

# Slot of each field in the packed parameter vector (`HysteresisParams.to_array()`).
P_THETA_ON = 0
P_RATIO_OFF = 1
P_UP_STEPS = 2
P_DOWN_STEPS = 3
P_COOLDOWN_STEPS = 4
P_ALPHA = 5
P_MAX_STEPS = 6
P_MIN_STEPS = 7
P_SPLIT_WINDOW = 8      # w: steps per window of the two-window test; 0 = no within-activity split
P_SPLIT_THETA = 9       # threshold on the change score c_t (units of the latent)
P_SPLIT_MIN_STEPS = 10  # m: shortest piece a split may leave, steps
N_PARAMS = 11

#: Largest split window (3.2 s at 10 fps): the ring holds 2 * MAX_SPLIT_WINDOW + 1 latents (both
#: windows and the latent that has just left the older one, for the running difference).
MAX_SPLIT_WINDOW = 32
RING_STEPS = 2 * MAX_SPLIT_WINDOW + 1

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
# Slots 14-15 spare. Slots 16-31 belong to the within-activity split step (latent_step).
S_RING_FILL = 16    # finite latents stored in the ring so far, capped at RING_STEPS
S_RING_POS = 17     # ring slot the next latent goes to
S_SCORE = 18        # change score c_t of the last step (NaN when it had none)
S_CAND_SCORE = 19   # score of the pending split candidate (-1 when none)
S_CAND_AT = 20      # step of the pending split candidate (-1 when none)
S_SPLIT_FROM = 21   # start of the first piece closed by the last SPLIT / SPLIT_END
S_SPLIT_AT = 22     # the boundary of the last SPLIT / SPLIT_END
S_N_SPLITS = 23     # splits so far
S_DIFF_W = 24       # window w the running difference was built for (0 = not built)
# Slots 25-31 spare.
S_RESERVED_FIRST = 16
N_RESERVED = 16
HEADER = S_RESERVED_FIRST + N_RESERVED  # the previous latent z_{t-1} occupies [HEADER, HEADER + D);
# then the ring of the last RING_STEPS finite latents (slot k at HEADER + D*(1+k)), then the running
# window difference (D slots): sum of the newest w ring latents minus the sum of the w before.

_CACHE = kernel_cache_enabled()


def new_state(latent_dim: int = 0) -> np.ndarray:
    """A fresh kernel state, float64 (state_size(latent_dim),); latent_dim > 0 for `latent_step`."""
    if latent_dim < 0:
        raise ValueError(f"latent_dim must be >= 0, got {latent_dim}")
    state = np.zeros(state_size(int(latent_dim)), dtype=np.float64)
    init_state(state, int(latent_dim))
    return state


def state_size(latent_dim: int) -> int:
    """Length of the state vector: the header, then for latents z_prev and the split ring."""
    return HEADER + (latent_dim * (2 + RING_STEPS) if latent_dim > 0 else 0)


@njit(cache=_CACHE)
def init_state(state: np.ndarray, latent_dim: int) -> None:
    """Reset `state` (length >= HEADER + latent_dim) to the start-of-stream values, in place."""
    state[:] = 0.0
    state[S_Y] = np.nan
    state[S_E] = np.nan
    state[S_SEG_START] = -1.0
    state[S_SEG_END] = -1.0
    state[S_LATENT_DIM] = latent_dim
    state[S_SCORE] = np.nan
    state[S_CAND_SCORE] = -1.0
    state[S_CAND_AT] = -1.0
    state[S_SPLIT_FROM] = -1.0
    state[S_SPLIT_AT] = -1.0


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
    `energy_step`, then (split_window > 0) the within-activity split step. A z with a non-finite
    entry gives E = NaN (y holds) and is stored neither as z_prev nor in the ring. The state must
    come from `new_state(D)`.
    """
    energy = latent_energy(state, z)
    event = energy_step(state, params, energy)
    if params[P_SPLIT_WINDOW] > 0.0:
        event = split_step(state, params, z, math.isfinite(energy), event)
        state[S_EVENT] = event
    return event


@njit(cache=_CACHE)
def split_step(state: np.ndarray, params: np.ndarray, z: np.ndarray, finite: bool, event: int) -> int:
    """The within-activity split step (module docstring), after `energy_step` returned `event`.

    Stores z in the ring (when finite), computes the change score, and returns `event`, or
    EVENT_SPLIT / EVENT_SPLIT_END when the open segment is split here.
    """
    w = int(params[P_SPLIT_WINDOW])
    m = params[P_SPLIT_MIN_STEPS]
    t = state[S_STEP] - 1.0  # energy_step has already advanced the step counter
    state[S_SCORE] = np.nan
    if finite:
        _ring_push(state, z)
        _update_difference(state, w)
        if state[S_RING_FILL] >= 2 * w:
            state[S_SCORE] = _change_score(state, w)
    if event == EVENT_START:
        _forget_candidate(state)
        return event
    if event == EVENT_END or event == EVENT_DISCARD:
        b = state[S_CAND_AT]
        if (event == EVENT_END and b >= 0.0 and b - state[S_SEG_START] >= m
                and state[S_SEG_END] - b >= m):
            return _split(state, b, EVENT_SPLIT_END)
        _forget_candidate(state)
        return event
    if state[S_ON] == 0.0:
        return event
    score = state[S_SCORE]
    b = t - w + 1.0
    if (math.isfinite(score) and score >= params[P_SPLIT_THETA] and b - state[S_SEG_START] >= m
            and score > state[S_CAND_SCORE]):
        state[S_CAND_SCORE] = score
        state[S_CAND_AT] = b
    cand = state[S_CAND_AT]
    if cand >= 0.0 and b - cand >= w and t + 1.0 - cand >= m + params[P_DOWN_STEPS]:
        return _split(state, cand, EVENT_SPLIT)
    return event


@njit(cache=_CACHE)
def _split(state: np.ndarray, at: float, event: int) -> int:
    """Record a split of the open (SPLIT) or just-closed (SPLIT_END) segment at step `at`."""
    state[S_SPLIT_FROM] = state[S_SEG_START]
    state[S_SPLIT_AT] = at
    state[S_SEG_START] = at
    state[S_N_KEPT] += 1.0  # the first piece; the second is the open or just-closed segment
    state[S_N_SPLITS] += 1.0
    _forget_candidate(state)
    return event


@njit(cache=_CACHE)
def _forget_candidate(state: np.ndarray) -> None:
    state[S_CAND_SCORE] = -1.0
    state[S_CAND_AT] = -1.0


@njit(cache=_CACHE)
def _ring_push(state: np.ndarray, z: np.ndarray) -> None:
    d = int(state[S_LATENT_DIM])
    base = HEADER + d * (1 + int(state[S_RING_POS]))
    for i in range(d):
        state[base + i] = z[i]
    state[S_RING_POS] = (state[S_RING_POS] + 1.0) % RING_STEPS
    if state[S_RING_FILL] < RING_STEPS:
        state[S_RING_FILL] += 1.0


@njit(cache=_CACHE)
def _ring_row(state: np.ndarray, back: int) -> int:
    """Offset of the ring latent stored `back` pushes ago (0 = the newest)."""
    d = int(state[S_LATENT_DIM])
    return HEADER + d * (1 + (int(state[S_RING_POS]) - 1 - back) % RING_STEPS)


@njit(cache=_CACHE)
def _update_difference(state: np.ndarray, w: int) -> None:
    """Bring the running window difference up to date after a push: O(D) per step whatever w is.

    With z_t the newest latent, the difference gains z_t, moves z_{t-w} from the newer window to
    the older one and drops z_{t-2w} (latents not yet stored count as 0). It is rebuilt from the
    ring when w differs from the one it was built for and once per ring turn (so float rounding
    cannot accumulate over a long stream)."""
    d = int(state[S_LATENT_DIM])
    diff = HEADER + d * (1 + RING_STEPS)
    fill = int(state[S_RING_FILL])
    if state[S_DIFF_W] != w or int(state[S_RING_POS]) == 0:
        for i in range(d):
            state[diff + i] = 0.0
        for k in range(min(w, fill)):
            new = _ring_row(state, k)
            for i in range(d):
                state[diff + i] += state[new + i]
        for k in range(w, min(2 * w, fill)):
            old = _ring_row(state, k)
            for i in range(d):
                state[diff + i] -= state[old + i]
        state[S_DIFF_W] = w
        return
    new = _ring_row(state, 0)
    for i in range(d):
        state[diff + i] += state[new + i]
    if fill > w:
        mid = _ring_row(state, w)
        for i in range(d):
            state[diff + i] -= 2.0 * state[mid + i]
    if fill > 2 * w:
        old = _ring_row(state, 2 * w)
        for i in range(d):
            state[diff + i] += state[old + i]


@njit(cache=_CACHE)
def _change_score(state: np.ndarray, w: int) -> float:
    """|| mean of the newest w ring latents - mean of the w before ||_2 (needs 2w stored)."""
    d = int(state[S_LATENT_DIM])
    diff = HEADER + d * (1 + RING_STEPS)
    acc = 0.0
    for i in range(d):
        acc += state[diff + i] * state[diff + i]
    return math.sqrt(acc) / w


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
    """End of stream: close an open segment at e = steps processed (END or DISCARD, or
    SPLIT_END when a split candidate is pending and both pieces are long enough); else NONE."""
    event = EVENT_NONE
    if state[S_ON] != 0.0:
        event = _close(state, params, state[S_STEP])
        b = state[S_CAND_AT]
        m = params[P_SPLIT_MIN_STEPS]
        if (params[P_SPLIT_WINDOW] > 0.0 and event == EVENT_END and b >= 0.0
                and b - state[S_SEG_START] >= m and state[S_SEG_END] - b >= m):
            event = _split(state, b, EVENT_SPLIT_END)
        _forget_candidate(state)
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
    """Append what a closing `event` (END, DISCARD, SPLIT, SPLIT_END) closed to bounds/kept and
    mark kept steps in `on`; returns (bounds, kept, n), the buffers doubled when full. Called
    only on a closing event: passing arrays in and out costs reference counting on every call."""
    if event == EVENT_SPLIT or event == EVENT_SPLIT_END:
        bounds, kept, n = _append(bounds, kept, on, n, int(state[S_SPLIT_FROM]), int(state[S_SPLIT_AT]), True)
        if event == EVENT_SPLIT:
            return bounds, kept, n
    return _append(bounds, kept, on, n, int(state[S_SEG_START]), int(state[S_SEG_END]),
                   event != EVENT_DISCARD)


@njit(cache=_CACHE)
def _append(bounds, kept, on, n, s, e, keep):
    if n == bounds.shape[0]:
        bigger = np.empty((2 * n, 2), dtype=np.int64)
        bigger[:n] = bounds
        bounds = bigger
        bigger_kept = np.zeros(2 * n, dtype=np.uint8)
        bigger_kept[:n] = kept
        kept = bigger_kept
    bounds[n, 0] = s
    bounds[n, 1] = e
    if keep:
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
        if ev != EVENT_NONE and ev != EVENT_START:
            bounds, kept, n = _record(state, ev, bounds, kept, on, n)
    final = finish(state, params)
    if final != EVENT_NONE:
        bounds, kept, n = _record(state, final, bounds, kept, on, n)
    return smoothed, events, on, bounds[:n], kept[:n], final


@njit(cache=_CACHE)
def _series_latent(params, latents):
    # latent_step per step, exactly as the device loop calls it (the split step needs the latents).
    t_len = latents.shape[0]
    d = latents.shape[1]
    state = np.empty(HEADER + d * (2 + RING_STEPS), dtype=np.float64)
    init_state(state, d)
    energy = np.empty(t_len, dtype=np.float64)
    score = np.empty(t_len, dtype=np.float64)
    smoothed = np.empty(t_len, dtype=np.float64)
    events = np.zeros(t_len, dtype=np.int8)
    on = np.zeros(t_len, dtype=np.bool_)
    bounds = np.empty((64, 2), dtype=np.int64)
    kept = np.zeros(64, dtype=np.uint8)
    n = 0
    for t in range(t_len):
        ev = latent_step(state, params, latents[t])
        energy[t] = state[S_E]
        score[t] = state[S_SCORE]
        events[t] = ev
        smoothed[t] = state[S_Y]
        if ev != EVENT_NONE and ev != EVENT_START:
            bounds, kept, n = _record(state, ev, bounds, kept, on, n)
    final = finish(state, params)
    if final != EVENT_NONE:
        bounds, kept, n = _record(state, final, bounds, kept, on, n)
    return energy, score, smoothed, events, on, bounds[:n], kept[:n], final


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


def change_score(state: np.ndarray) -> float:
    """The split step's change score c_t of the last step (NaN when it had none)."""
    return float(state[S_SCORE])


def split_from(state: np.ndarray) -> int:
    """Start of the first piece closed by the last SPLIT / SPLIT_END (-1 before the first)."""
    return int(state[S_SPLIT_FROM])


def split_at(state: np.ndarray) -> int:
    """Boundary of the last SPLIT / SPLIT_END: the first piece ends and the next starts here."""
    return int(state[S_SPLIT_AT])


def split_count(state: np.ndarray) -> int:
    """Within-activity splits so far."""
    return int(state[S_N_SPLITS])


def segment_counts(state: np.ndarray) -> tuple[int, int]:
    """(kept, discarded) segments closed so far."""
    return int(state[S_N_KEPT]), int(state[S_N_DISCARDED])
