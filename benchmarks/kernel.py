"""Speed of the energy kernel: per-step cost and parameter-sweep throughput.

Rows (all medians over repeats, baselines measured in the same run):
- series_numba: `run_series` over a long series, ns per step.
- device_loop_numba: `energy_step` called from a Python loop once per frame (the device path),
  ns per call including the Python loop.
- series_reference: the plain-Python reference of tests/energy (same definition), ns per step.
- device_latent_step / device_latent_step_split: `latent_step` from a Python loop on a z_q of
  the small tokenizer's width (D = 256), without and with the within-activity split step
  (w = 8, and the largest window w = 32: a running sum makes the cost independent of w): the
  split step's own per-frame cost is their difference (target <= 10 us).
- sweep_confusion / run_sweep on all cores and on 1 thread: (parameter sets x steps) per second,
  vs 1 thread and vs the reference.

Run: python -m benchmarks.kernel   (writes benchmarks/results/kernel.json)
The energy series is synthetic rest/activity blocks from seed 900 (speed only; no accuracy).
"""

from __future__ import annotations

import numba
import numpy as np

from benchmarks.common import median_time_s, print_table, write_results
from edge.energy import (
    MAX_SPLIT_WINDOW,
    HysteresisParams,
    energy_step,
    latent_step,
    new_state,
    run_series,
    run_sweep,
    stack_params,
    sweep_confusion,
)
from tests.energy.reference_kernel import reference_run

SEED = 900
T_SERIES = 1_000_000
T_DEVICE = 200_000
T_REFERENCE = 20_000
T_SWEEP = 100_000
P_SWEEP = 256
P_REFERENCE = 4
T_SWEEP_REFERENCE = 5_000
T_LATENT = 50_000
LATENT_DIM = 256
SPLIT_WINDOW = 8


def bursty_energy(n: int, seed: int) -> np.ndarray:
    """Rest/activity blocks (3-60 steps) with noise, like an energy series of a workstation."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 60, n // 3 + 1)
    levels = np.where(np.arange(lengths.size) % 2 == 1, 2.0, 0.2)
    e = np.repeat(levels, lengths)[:n]
    return np.abs(e + rng.normal(0, 0.3, n))


def param_grid(n: int) -> np.ndarray:
    thetas = np.linspace(0.2, 2.5, n // 2)
    return stack_params([HysteresisParams(theta_on=float(t), max_steps=m)
                         for t in thetas for m in (0, 40)][:n])


def main() -> None:
    params = HysteresisParams(theta_on=1.0)
    p = params.to_array()
    e = bursty_energy(T_SERIES, SEED)
    rows = []

    run_series(e[:1000], params)  # compile (or load the cache) outside the timing
    t_series = median_time_s(lambda: run_series(e, params), repeats=5)
    ns_series = t_series / T_SERIES * 1e9

    e_ref = e[:T_REFERENCE]
    ref_kwargs = params.to_dict()
    t_ref = median_time_s(lambda: reference_run(e_ref, **ref_kwargs), repeats=3, warmup=0)
    ns_ref = t_ref / T_REFERENCE * 1e9

    e_dev = [float(v) for v in e[:T_DEVICE]]

    def device_loop() -> None:
        state = new_state()
        for v in e_dev:
            energy_step(state, p, v)

    t_dev = median_time_s(device_loop, repeats=5)
    ns_dev = t_dev / T_DEVICE * 1e9

    rows.append({"name": "series_numba", "steps": T_SERIES, "ns_per_step": ns_series,
                 "speedup_vs_reference": ns_ref / ns_series})
    rows.append({"name": "device_loop_numba", "steps": T_DEVICE, "ns_per_step": ns_dev,
                 "speedup_vs_reference": ns_ref / ns_dev})
    rows.append({"name": "series_reference_python", "steps": T_REFERENCE, "ns_per_step": ns_ref,
                 "speedup_vs_reference": 1.0})

    # The device's latent path: latent_step per frame on z_q (D = 256), split step off and on.
    rng = np.random.default_rng(SEED)
    z = np.repeat(rng.normal(0.0, 1.0, (T_LATENT // 20 + 1, LATENT_DIM)), 20, axis=0)[:T_LATENT]
    z = (z + rng.normal(0.0, 0.3, z.shape)).astype(np.float32)
    latent_ns = {}
    for name, lp in (("device_latent_step", HysteresisParams(theta_on=1.0)),
                     ("device_latent_step_split", HysteresisParams(theta_on=1.0, split_window=SPLIT_WINDOW,
                                                                   split_theta=2.0, split_min_steps=5)),
                     (f"device_latent_step_split_w{MAX_SPLIT_WINDOW}",
                      HysteresisParams(theta_on=1.0, split_window=MAX_SPLIT_WINDOW, split_theta=2.0,
                                       split_min_steps=5))):
        arr = lp.to_array()
        rows_z = list(z)

        def latent_loop(arr=arr, rows_z=rows_z) -> None:
            state = new_state(LATENT_DIM)
            for row in rows_z:
                latent_step(state, arr, row)

        latent_ns[name] = median_time_s(latent_loop, repeats=3) / T_LATENT * 1e9
    base = latent_ns["device_latent_step"]
    for name, ns in latent_ns.items():
        rows.append({"name": name, "steps": T_LATENT, "latent_dim": LATENT_DIM, "ns_per_step": ns,
                     "split_cost_us_per_step": (ns - base) / 1e3, "ratio_vs_no_split": ns / base})

    # Sweeps: throughput in (parameter sets x steps) per second.
    grid = param_grid(P_SWEEP)
    e_sweep = e[:T_SWEEP]
    labels = e_sweep > 1.0
    work = P_SWEEP * T_SWEEP
    ref_grid = [HysteresisParams.from_array(r).to_dict() for r in grid[:P_REFERENCE]]
    e_sref = e[:T_SWEEP_REFERENCE]
    lab_ref = labels[:T_SWEEP_REFERENCE]

    def reference_sweep() -> None:
        for kw in ref_grid:
            m = reference_run(e_sref, **kw)["mask"]
            [(m & lab_ref).sum(), (m & ~lab_ref).sum(), (~m & lab_ref).sum(), (~m & ~lab_ref).sum()]

    t_sref = median_time_s(reference_sweep, repeats=3, warmup=0)
    ref_rate = P_REFERENCE * T_SWEEP_REFERENCE / t_sref

    n_threads = numba.config.NUMBA_NUM_THREADS
    for label, fn in (("sweep_confusion", lambda: sweep_confusion(e_sweep, grid, labels)),
                      ("run_sweep", lambda: run_sweep(e_sweep, grid))):
        rates = {}
        for threads in (1, n_threads):
            numba.set_num_threads(threads)
            rates[threads] = work / median_time_s(fn, repeats=5)
        numba.set_num_threads(n_threads)
        for threads in sorted(set((1, n_threads))):
            rows.append({"name": f"{label}_{threads}thread", "sets": P_SWEEP, "steps": T_SWEEP,
                         "set_steps_per_s": rates[threads],
                         "speedup_vs_1_thread": rates[threads] / rates[1],
                         "speedup_vs_reference": rates[threads] / ref_rate})
    rows.append({"name": "sweep_reference_python", "sets": P_REFERENCE, "steps": T_SWEEP_REFERENCE,
                 "set_steps_per_s": ref_rate, "speedup_vs_reference": 1.0})

    print_table(rows, title=f"energy kernel speed ({n_threads} threads available)")
    write_results("kernel", rows, extra={"seed": SEED, "numba": numba.__version__,
                                         "threads": n_threads})


if __name__ == "__main__":
    main()
