"""Plain Python/NumPy reference of the energy kernel, written from the definition in the
`edge.energy.kernel` docstring and deliberately NOT sharing its structure: the kernel counts runs
step by step; this reference re-reads windows of the smoothed series. It never imports `edge`.

    y:        y = E for the first finite E, then y = alpha*E + (1-alpha)*y; a non-finite E
              leaves y unchanged; NaN before the first finite E.
    OFF->ON:  at step t, the window [t-u+1, t] all y >= theta_on and t-u+1 >= earliest, where
              earliest = 0 at the start and t_e + cooldown + 1 after a close emitted at t_e.
              START at t; segment start s = t-u+1.
    ON->OFF:  at step t, the window [t-d+1, t] lies after the confirming step and all y <
              ratio_off*theta_on: close with end t-d+1. Otherwise, if max_steps and
              t-s+1 == max_steps: close with end t+1.
    finish:   an open segment closes with end T.
    close:    END if end-s >= min_steps else DISCARD.
    split:    (latents, split_window w > 0) score at t = || mean of the last w finite latents up
              to t - mean of the w before || when t's latent is finite and 2w are stored; while
              ON with no event at t, b = t-w+1 becomes the candidate when score >= split_theta,
              b - s >= m and score beats the candidate's; the candidate c splits at t when
              b - c >= w and t+1-c >= m + down_steps: [s, c) kept, s = c. A close (END) with a
              candidate c where c-s >= m and end-c >= m keeps [s, c) and [c, end) (SPLIT_END);
              START and any close forget the candidate.
"""

from __future__ import annotations

import math

import numpy as np

NONE, START, END, DISCARD, SPLIT, SPLIT_END = 0, 1, 2, 3, 4, 5


def reference_smooth(energy, alpha):
    """Smoothed energy per step as Python floats."""
    out = []
    y = None
    for e in energy:
        e = float(e)
        if math.isfinite(e):
            y = e if y is None else alpha * e + (1.0 - alpha) * y
        out.append(math.nan if y is None else y)
    return out


def reference_run(energy, theta_on, ratio_off=0.95, up_steps=2, down_steps=2, cooldown_steps=1,
                  alpha=0.7, max_steps=0, min_steps=3, split_window=0, split_theta=0.0,
                  split_min_steps=5, latents=None):
    """Run the definition over a whole series (with `latents` (T, D), also the split step).

    Returns a dict: smoothed (list of T floats), events (list of T ints), final_event (int),
    kept (list of (start, end)), discarded (list of (start, end)), mask (np.ndarray (T,) bool),
    scores (list of T floats, NaN where none; only with latents and a split window).
    """
    ys = reference_smooth(energy, alpha)
    w, m = split_window, split_min_steps
    splitting = latents is not None and w > 0
    scores = reference_scores(latents, w) if splitting else [math.nan] * len(ys)
    cand = None  # (score, step)
    n = len(ys)
    theta_off = ratio_off * theta_on
    events = [NONE] * n
    kept, discarded = [], []
    on = False
    earliest = 0
    start = confirm = None

    def close(end, t_emit):
        nonlocal on, earliest, cand
        on = False
        earliest = t_emit + cooldown_steps + 1
        pending, cand = cand, None
        if end - start >= min_steps:
            if splitting and pending is not None and pending[1] - start >= m and end - pending[1] >= m:
                kept.extend([(start, pending[1]), (pending[1], end)])
                return SPLIT_END
            kept.append((start, end))
            return END
        discarded.append((start, end))
        return DISCARD

    for t in range(n):
        if not on:
            s = t - up_steps + 1
            if s >= earliest and all(ys[k] >= theta_on for k in range(s, t + 1)):
                on, start, confirm, cand = True, s, t, None
                events[t] = START
        else:
            d0 = t - down_steps + 1
            if d0 > confirm and all(ys[k] < theta_off for k in range(d0, t + 1)):
                events[t] = close(d0, t)
            elif max_steps and t - start + 1 == max_steps:
                events[t] = close(t + 1, t)
            elif splitting:
                b = t - w + 1
                sc = scores[t]
                if sc == sc and sc >= split_theta and b - start >= m and (cand is None or sc > cand[0]):
                    cand = (sc, b)
                if cand is not None and b - cand[1] >= w and t + 1 - cand[1] >= m + down_steps:
                    kept.append((start, cand[1]))
                    start, cand = cand[1], None
                    events[t] = SPLIT
    final = close(n, n - 1) if on else NONE

    mask = np.zeros(n, dtype=bool)
    for s, e in kept:
        mask[s:e] = True
    return {"smoothed": ys, "events": events, "final_event": final, "kept": kept,
            "discarded": discarded, "mask": mask, "scores": scores}


def reference_scores(latents, w):
    """Per step: || mean(last w finite latents) - mean(the w before) || when step t's latent is
    finite and 2w finite latents have been seen up to t; else NaN."""
    stored = []
    out = []
    for z in np.asarray(latents, dtype=np.float64):
        if not np.all(np.isfinite(z)):
            out.append(math.nan)
            continue
        stored.append(z)
        if len(stored) < 2 * w:
            out.append(math.nan)
            continue
        newer = np.mean(stored[-w:], axis=0)
        older = np.mean(stored[-2 * w:-w], axis=0)
        out.append(float(np.linalg.norm(newer - older)))
    return out


def reference_latent_energy(latents):
    """E_t = ||z_t - z_{t-1}||_2 over the last finite z, E_0 = 0; NaN for a non-finite z."""
    out = []
    prev = None
    for z in np.asarray(latents, dtype=np.float64):
        if not np.all(np.isfinite(z)):
            out.append(math.nan)
            continue
        out.append(0.0 if prev is None else float(np.linalg.norm(z - prev)))
        prev = z
    return out
