"""Run the energy kernel over a whole series: the offline twin of the per-frame device loop.

Both runners loop `edge.energy.kernel.energy_step` (or `latent_step`) inside one jitted
function (defined in `kernel.py`, see there why), so a series run and the device loop give the
same segments by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.energy.kernel import _series_energy, _series_latent
from edge.energy.params import HysteresisParams
from edge.errors import ConfigError


@dataclass(frozen=True)
class SeriesResult:
    """What one kernel run over T steps produced.

    segments:    (K, 2) int64 [start, end) steps of the kept segments (END, SPLIT and SPLIT_END
                 events), in order.
    discarded:   (J, 2) int64 [start, end) of segments closed shorter than min_steps.
    smoothed:    (T,) float64 smoothed energy y after each step (NaN before the first finite E).
    energy:      (T,) float64 raw energy E per step (for latents, ||z_t - z_{t-1}||, E_0 = 0).
    on:          (T,) bool, True on steps inside a kept segment.
    events:      (T,) int8 EVENT_* emitted at each step.
    final_event: EVENT_* emitted by `finish` at the end of the stream.
    score:       (T,) float64 the split step's change score c_t per step (latent runs with a
                 split window; NaN where a step had none), else None.
    """

    segments: np.ndarray
    discarded: np.ndarray
    smoothed: np.ndarray
    energy: np.ndarray
    on: np.ndarray
    events: np.ndarray
    final_event: int
    score: np.ndarray | None = None


def run_series(energy: np.ndarray, params: HysteresisParams) -> SeriesResult:
    """Run the kernel over a raw energy series (T,) (any float dtype; computed in float64)."""
    e = np.ascontiguousarray(energy, dtype=np.float64)
    if e.ndim != 1:
        raise ConfigError(f"energy series has shape {e.shape}; expected a 1-D array (T,)")
    smoothed, events, on, bounds, kept, final = _series_energy(params.to_array(), e)
    return _result(e.copy(), smoothed, events, on, bounds, kept, final)


def run_series_latent(latents: np.ndarray, params: HysteresisParams) -> SeriesResult:
    """Run the kernel over latents (T, D): E_t = ||z_t - z_{t-1}||_2, E_0 = 0, then as `run_series`.

    float32 latents are used as they are (the distance is accumulated in float64).
    """
    z = np.asarray(latents)
    if z.ndim != 2:
        raise ConfigError(f"latents have shape {z.shape}; expected a 2-D array (T, D)")
    if z.dtype not in (np.float32, np.float64):
        z = z.astype(np.float64)
    z = np.ascontiguousarray(z)
    energy, score, smoothed, events, on, bounds, kept, final = _series_latent(params.to_array(), z)
    return _result(energy, smoothed, events, on, bounds, kept, final,
                   score if params.splits else None)


def _result(energy, smoothed, events, on, bounds, kept, final, score=None) -> SeriesResult:
    kept = kept.astype(bool)
    return SeriesResult(
        segments=np.ascontiguousarray(bounds[kept]),
        discarded=np.ascontiguousarray(bounds[~kept]),
        smoothed=smoothed,
        energy=energy,
        on=on,
        events=events,
        final_event=int(final),
        score=score,
    )
