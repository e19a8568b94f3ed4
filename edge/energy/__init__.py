"""The energy kernel: EMA-smoothed latent action energy and hysteresis segmentation.

`kernel` holds THE per-step Numba function (`energy_step`, `latent_step`, `finish`) and the
state layout (with the within-activity split step of `latent_step`); `series` runs it over a whole series; `sweep` over many parameter sets in
parallel; `params` validates and packs `HysteresisParams`; `cache` decides Numba caching.
"""

from edge.energy.kernel import (
    EVENT_DISCARD,
    EVENT_END,
    EVENT_NONE,
    EVENT_SPLIT,
    EVENT_SPLIT_END,
    EVENT_START,
    MAX_SPLIT_WINDOW,
    energy_step,
    finish,
    is_on,
    last_event,
    latent_step,
    new_state,
    raw_energy,
    segment_end,
    segment_start,
    smoothed_energy,
    step_index,
)
from edge.energy.params import N_PARAMS, HysteresisParams, stack_params
from edge.energy.series import SeriesResult, run_series, run_series_latent
from edge.energy.sweep import run_sweep, sweep_confusion

__all__ = [
    "EVENT_DISCARD", "EVENT_END", "EVENT_NONE", "EVENT_SPLIT", "EVENT_SPLIT_END", "EVENT_START",
    "MAX_SPLIT_WINDOW", "N_PARAMS", "HysteresisParams",
    "SeriesResult", "energy_step", "finish", "is_on", "last_event", "latent_step", "new_state",
    "raw_energy", "run_series", "run_series_latent", "run_sweep", "segment_end", "segment_start",
    "smoothed_energy", "stack_params", "step_index", "sweep_confusion",
]
