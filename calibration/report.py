"""The calibration report: one HTML file with PNG plots beside it, readable without the tool.

    write_report(out_dir, cal, recordings, labels=None, record=None) -> out_dir/report.html

Plots (matplotlib, drawn on Agg canvases without pyplot, so no display and no global state):
- `plots/energy_NN.png`, one per recording (the first MAX_PLOTTED_RECORDINGS, the first
  MAX_PLOT_S seconds of each): raw and smoothed energy, theta_on and theta_off, and strips
  with the resulting segments, the pseudo-labels and, in labelled mode, the labels;
- `plots/score_vs_theta.png`: F1 and Youden's J against the pseudo-labels over theta_on for the
  chosen (r, u, d, alpha), with the best over all other parameters dashed; in labelled mode
  also boundary F1@tau against the labels;
- `plots/proxy_histogram.png`: the velocity-energy proxy's histogram with the Otsu split.
The page opens with a verdict that follows the scores: red when the proxy separates poorly
or the pseudo-labels are degenerate; amber ("not confirmed") when the energy agrees only weakly
with the proxy (J < TRUST_J or F1 < TRUST_F1), the thresholds mark a very different share of
the steps active than the pseudo-labels, the energy is the proxy itself (velocity energy), or
the new thresholds score below the current ones against real boundaries; green only otherwise.
It compares the new thresholds with the model's current ones on the same recordings
(`calibration.comparison`) and ends with the commands that deploy them.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Sequence

import numpy as np

from calibration.unsupervised import WEAK_PROXY_J
from edge.energy import run_series

REPORT_NAME = "report.html"
PLOTS_DIR = "plots"
#: Energy plots are drawn for at most this many recordings, over at most this many seconds each
#: (longer plots are unreadable at report width).
MAX_PLOTTED_RECORDINGS = 8
MAX_PLOT_S = 600.0
_DPI = 100
#: the verdict is green only from these agreements with the pseudo-labels up: J 0.4 is, e.g.,
#: 70 % of the active and 70 % of the rest steps agreeing; F1 0.5 half the active steps matched.
#: (The shipped tokenizer on synthetic validation videos agrees less, J 0.15-0.23, and its
#: thresholds were still within 0.03-0.06 F1@2s of the best: such a calibration is "not
#: confirmed" by its recordings, not necessarily wrong.)
TRUST_J = 0.4
TRUST_F1 = 0.5


def write_report(out_dir, cal, recordings: Sequence, labels: dict | None = None, record: dict | None = None,
                 comparison: Sequence | None = None, current_source: str = "", model_dir: str | None = None) -> Path:
    """Write `report.html` and its PNGs under `out_dir`; returns the HTML path.

    cal: a `Calibration`; recordings: its `EnergyRecording`s; labels: {name: RecordingLabels}
    in labelled mode; record: the calibration.json record (for the provenance table).
    comparison: `calibration.comparison.ThresholdFigures` of "current" (when the model has
    thresholds) and "new"; current_source: where the current ones come from; model_dir: the
    model the thresholds belong to (for the deploy commands; None = velocity energy).
    """
    out = Path(out_dir)
    plots = out / PLOTS_DIR
    plots.mkdir(parents=True, exist_ok=True)
    labels = labels or {}
    images: list[tuple[str, str]] = []
    images.append((f"{PLOTS_DIR}/score_vs_theta.png", "Scores over theta_on"))
    _score_plot(cal, plots / "score_vs_theta.png")
    images.append((f"{PLOTS_DIR}/proxy_histogram.png", "Velocity-energy proxy and its Otsu split"))
    _histogram_plot(cal, plots / "proxy_histogram.png")
    energy_images = []
    for i, (rec, pseudo) in enumerate(zip(recordings, cal.pseudo)):
        if i >= MAX_PLOTTED_RECORDINGS:
            break
        name = f"energy_{i:02d}.png"
        _energy_plot(cal, rec, pseudo, labels.get(rec.name), plots / name)
        energy_images.append((f"{PLOTS_DIR}/{name}", rec.name))
    page = _html(cal, recordings, labels, record, images, energy_images, list(comparison or []), current_source,
                 model_dir, out)
    path = out / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path


# --- plots ---------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    fig.savefig(path, format="png")


def _combo_index(cal, params) -> int | None:
    for i, (r, u, d, a) in enumerate(cal.grid.combos):
        if (np.isclose(r, params.ratio_off) and u == params.up_steps and d == params.down_steps
                and np.isclose(a, params.alpha)):
            return i
    return None


def _score_plot(cal, path: Path) -> None:
    grid, scores = cal.grid, cal.proxy_scores
    n_theta = grid.thetas.shape[0]
    f1 = scores.f1.reshape(len(grid.combos), n_theta)
    j = scores.youden_j.reshape(len(grid.combos), n_theta)
    reference = cal.unsupervised_params or cal.params
    ci = _combo_index(cal, reference)
    rows = 2 if cal.labelled is not None else 1
    fig = _figure(9, 3.4 * rows)
    ax = fig.add_subplot(rows, 1, 1)
    if ci is not None:
        ax.plot(grid.thetas, f1[ci], color="tab:blue", label="F1 vs pseudo-labels")
        ax.plot(grid.thetas, j[ci], color="tab:orange", label="Youden's J vs pseudo-labels")
        if cal.mode == "unsupervised" and cal.criterion == "gmean":
            g = scores.by("gmean").reshape(len(grid.combos), n_theta)
            ax.plot(grid.thetas, g[ci], color="tab:purple", lw=1.5, label="sqrt(F1 x J): the criterion")
    ax.plot(grid.thetas, f1.max(axis=0), color="tab:blue", ls="--", lw=0.8, label="F1, best other params")
    ax.plot(grid.thetas, j.max(axis=0), color="tab:orange", ls="--", lw=0.8, label="J, best other params")
    chosen = "unsupervised choice" if cal.labelled is not None else "chosen"
    ax.axvline(reference.theta_on, color="k", lw=1, label=f"{chosen} theta_on {reference.theta_on:.4g}")
    ax.axhline(WEAK_PROXY_J, color="tab:red", lw=0.8, ls=":", label=f"weak-proxy level J = {WEAK_PROXY_J:g}")
    ax.set_xlabel("theta_on (energy units)")
    ax.set_ylabel("score")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"Unsupervised sweep (r={reference.ratio_off:g}, u={reference.up_steps}, "
                 f"d={reference.down_steps}, alpha={reference.alpha:g}; dashed: best over r, u, d, alpha)")
    ax.legend(fontsize=7, loc="best")
    if cal.labelled is not None:
        ax2 = fig.add_subplot(rows, 1, 2)
        curve = np.asarray(cal.labelled.theta_curve, dtype=np.float64).reshape(-1, 2)
        ax2.plot(curve[:, 0], curve[:, 1], color="tab:green", label=f"boundary F1@{cal.labelled.tau:g}s vs labels")
        ax2.axvline(cal.params.theta_on, color="k", lw=1, label=f"chosen theta_on {cal.params.theta_on:.4g}")
        ax2.set_xlabel("theta_on (energy units)")
        ax2.set_ylabel("F1")
        ax2.set_ylim(-0.05, 1.05)
        ax2.set_title(f"Labelled sweep on the calibration part (r={cal.params.ratio_off:g}, u={cal.params.up_steps}, "
                      f"d={cal.params.down_steps}, alpha={cal.params.alpha:g})")
        ax2.legend(fontsize=7, loc="best")
    _save(fig, path)


def _histogram_plot(cal, path: Path) -> None:
    otsu = cal.otsu
    fig = _figure(9, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    centres = 0.5 * (otsu.edges[:-1] + otsu.edges[1:])
    widths = np.diff(otsu.edges)
    rest = centres <= otsu.threshold
    ax.bar(centres[rest], otsu.counts[rest], width=widths[rest], color="tab:gray", label="rest (pseudo-label)")
    ax.bar(centres[~rest], otsu.counts[~rest], width=widths[~rest], color="tab:orange", label="activity (pseudo-label)")
    ax.axvline(otsu.threshold, color="k", lw=1, label=f"Otsu threshold {otsu.threshold:.3g} px/step")
    ax.set_xlabel("velocity energy (mean |v| of visible points, px/step)")
    ax.set_ylabel("steps")
    ax.set_title(f"Proxy histogram ({otsu.counts.shape[0]} bins): separability eta {otsu.separability:.2f}, "
                 f"{100 * otsu.active_fraction:.0f} % of steps active")
    ax.legend(fontsize=7)
    _save(fig, path)


def _energy_plot(cal, rec, pseudo: np.ndarray, lab, path: Path) -> None:
    n = min(rec.n_steps, int(MAX_PLOT_S * rec.fps))
    t = np.arange(n) / rec.fps
    run = run_series(rec.energy, cal.params)
    fig = _figure(11, 4.2)
    gs = fig.add_gridspec(2, 1, height_ratios=(3, 1))
    ax = fig.add_subplot(gs[0])
    ax.plot(t, rec.energy[:n], color="0.7", lw=0.6, label="raw energy")
    ax.plot(t, run.smoothed[:n], color="tab:blue", lw=1.0, label=f"smoothed (alpha {cal.params.alpha:g})")
    ax.axhline(cal.params.theta_on, color="tab:red", lw=1, label=f"theta_on {cal.params.theta_on:.4g}")
    ax.axhline(cal.params.theta_off, color="tab:red", lw=1, ls="--", label=f"theta_off {cal.params.theta_off:.4g}")
    ax.fill_between(t, 0, 1, where=pseudo[:n], transform=ax.get_xaxis_transform(), color="tab:orange",
                    alpha=0.12, step="post", label="pseudo-label: activity")
    finite = rec.energy[:n][np.isfinite(rec.energy[:n])]
    if finite.size:
        ax.set_ylim(0, max(float(np.quantile(finite, 0.995)) * 1.2, cal.params.theta_on * 1.5, 1e-9))
    ax.set_ylabel("energy")
    ax.set_xlim(0, max(t[-1] if n else 1.0, 1e-3))
    ax.tick_params(labelbottom=False)
    shown = f"first {MAX_PLOT_S:.0f} s of " if rec.n_steps > n else ""
    ax.set_title(f"{rec.name}: {shown}{rec.duration_s:.0f} s, {run.segments.shape[0]} segments")
    ax.legend(fontsize=7, loc="upper right", ncol=3)
    strip = fig.add_subplot(gs[1], sharex=ax)
    rows = [("segments", run.segments / rec.fps, "tab:blue"), ("pseudo-labels", _runs(pseudo) / rec.fps, "tab:orange")]
    if lab is not None:
        rows.append(("labels", np.asarray(lab.segments, np.float64).reshape(-1, 2), "tab:green"))
    for k, (_, spans, colour) in enumerate(rows):
        spans = spans[spans[:, 0] < t[-1] + 1] if n and spans.size else spans.reshape(-1, 2)
        strip.broken_barh([(s, e - s) for s, e in spans], (k + 0.15, 0.7), color=colour)
    strip.set_yticks([k + 0.5 for k in range(len(rows))])
    strip.set_yticklabels([r[0] for r in rows], fontsize=7)
    strip.set_ylim(0, len(rows))
    strip.set_xlabel("time (s)")
    _save(fig, path)


def _runs(mask: np.ndarray) -> np.ndarray:
    """(K, 2) [start, end) step runs of True in a bool mask."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.diff(m.astype(np.int8))
    return np.stack([np.flatnonzero(d == 1), np.flatnonzero(d == -1)], axis=1).astype(np.float64)


# --- HTML ----------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f3f3f3}.warning{border:2px solid #c0392b;background:#fdecea;padding:0.8em 1em;margin:1em 0}
.warning h2{margin-top:0;color:#c0392b}.ok{border:1px solid #27ae60;background:#eafaf1;padding:0.6em 1em}
.caution{border:2px solid #d68910;background:#fef5e7;padding:0.8em 1em;margin:1em 0}.caution h2{margin-top:0;color:#9c640c}
pre{background:#f5f5f5;padding:0.6em;overflow-x:auto}td.better{font-weight:bold;background:#eafaf1}
img{max-width:100%;border:1px solid #ddd;margin:0.3em 0}code{background:#f5f5f5;padding:0 3px}
"""


def _e(v: object) -> str:
    return html.escape(str(v))


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(rows: Sequence[tuple], header: tuple | None = None) -> str:
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_e(_fmt(c))}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _html(cal, recordings, labels, record, images, energy_images, comparison=(), current_source="", model_dir=None,
          out=None) -> str:
    q = cal.quality
    p = cal.params
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>LAPS calibration report</title>"
             f"<style>{_CSS}</style></head><body>", "<h1>LAPS threshold calibration</h1>"]
    warnings = list(cal.warnings)
    if q.weak and cal.mode == "unsupervised":
        parts.append(
            "<div class='warning'><h2>Warning: the proxy separates activity from rest poorly</h2>"
            f"<p>Youden's J of the chosen thresholds against the Otsu pseudo-labels is <b>{q.youden_j:.2f}</b>, "
            f"below the trust level {WEAK_PROXY_J:g}. On our validation videos, calibrations below this level "
            "lost on average 0.29 boundary F1@2s against the best thresholds (one lost 0.85), those above it "
            "0.04; the paper's real industrial views scored 0.03-0.22. These thresholds were fitted to a "
            "reference that disagrees with the device's energy, so they may segment badly.</p>"
            "<p>What to do:</p><ul>"
            "<li><b>Record a few labelled minutes</b> (segment JSON or per-frame labels named after the videos) "
            "and re-run with <code>--labels</code>: labelled mode calibrates on them and reports held-out F1.</li>"
            "<li><b>Check the camera view</b>: the whole work area in frame, a fixed mount (no shake), steady "
            "light (no flicker), no conveyor or passers-by dominating the motion.</li>"
            "<li><b>Retrain the tokenizer</b> on footage of this station (<code>laps-export train-tokenizer</code>) "
            "if the view is fine but the energy still does not follow the motion.</li></ul></div>"
        )
        warnings = [w for w in warnings if not w.startswith("the velocity-energy proxy separates")]
    from calibration.comparison import activity_mismatch_warning

    # Red: the reference itself is unusable (weak or degenerate proxy). Every other warning makes
    # the verdict amber at best, listed in it.
    poor = q.degenerate or (q.weak and cal.mode == "unsupervised")
    severe = [w for w in warnings if poor and (w.startswith("the velocity-energy pseudo-labels call")
                                               or w.startswith("the velocity-energy proxy separates"))]
    others = [w for w in warnings if w not in severe]
    new = comparison[-1] if comparison else None
    if new is not None and not any(w.startswith("the chosen thresholds mark") for w in others):
        found = activity_mismatch_warning(new.on_fraction, q.active_fraction)
        others += [found] if found else []
    for w in severe:
        parts.append(f"<div class='warning'><h2>Warning</h2><p>{_e(w)}</p></div>")
    if poor:
        for w in others:
            parts.append(f"<div class='warning'><h2>Warning</h2><p>{_e(w)}</p></div>")
    else:
        parts.append(_verdict(cal, recordings, comparison, others))

    parts.append("<h2>Chosen thresholds</h2>")
    parts.append(_table([
        ("theta_on", p.theta_on), ("theta_off = ratio_off * theta_on", p.theta_off), ("ratio_off (r)", p.ratio_off),
        ("up_steps (u)", p.up_steps), ("down_steps (d)", p.down_steps), ("cooldown_steps", p.cooldown_steps),
        ("alpha (EMA)", p.alpha), ("min_steps", p.min_steps), ("max_steps (0 = no cap)", p.max_steps),
    ], header=("parameter", "value")))
    how = ("against the Otsu pseudo-labels of the velocity-energy proxy" if cal.mode == "unsupervised"
           else "against the labels (boundary F1 on the calibration part of each labelled recording)")
    parts.append(f"<p>Mode <b>{_e(cal.mode)}</b>: the parameter set with the best <b>{_e(cal.criterion)}</b> "
                 f"{how} ({_e(_fmt(cal.score))}) among {cal.grid.size:,} swept sets, each run on the device's own "
                 "energy kernel.</p>")

    parts.append("<h2>How far to trust it: proxy quality</h2>")
    parts.append(_table([
        ("Youden's J, chosen thresholds vs pseudo-labels", q.youden_j),
        ("F1, chosen thresholds vs pseudo-labels", q.f1),
        ("best Youden's J of any swept set", q.best_youden_j),
        ("Otsu threshold of the proxy (px/step)", q.otsu_threshold),
        ("Otsu separability eta (1 = two clean modes)", q.separability),
        ("steps the pseudo-labels call activity", f"{100 * q.active_fraction:.1f} %"),
        ("warning level (Youden's J)", WEAK_PROXY_J),
    ], header=("figure", "value")))
    parts.append(
        "<p>Youden's J = recall + specificity - 1 of the chosen thresholds' ON steps against the "
        "pseudo-labels: 0 is chance, 1 perfect agreement. It says how far the device's energy and the "
        "velocity-energy proxy tell the same story; it cannot say whether the proxy itself is right. "
        "A proxy that calls far too few or too many steps activity (see the share above; a camera "
        "that sees a moving conveyor, or only part of the work area) misleads the calibration however "
        "well the energy follows it.</p>")
    if recordings and recordings[0].model_version == "velocity-energy":
        parts.append(
            "<p><b>Velocity energy:</b> here the energy <i>is</i> the proxy, so J only measures how well "
            "the smoothing and hysteresis reproduce a threshold of their own input; it is high on almost "
            "any view and is no evidence that the view is good. Labelled minutes (<code>--labels</code>) "
            "are the only check.</p>")

    parts.append(_comparison(cal, comparison, current_source))

    if cal.labelled is not None:
        lab = cal.labelled
        parts.append("<h2>Labelled minutes</h2>")
        parts.append(f"<p>{len(lab.labelled_names)} labelled recording(s); the first "
                     f"{100 * (1 - lab.holdout_fraction):.0f} % of each calibrates ({lab.calibration_s:.0f} s), "
                     f"the last {100 * lab.holdout_fraction:.0f} % is held out ({lab.heldout_s:.0f} s). "
                     f"Youden's J of the proxy's pseudo-labels against the labels: "
                     f"<b>{lab.proxy_vs_labels_j:.2f}</b>.</p>")
        if lab.heldout:
            rows = [(k, v["f1_at_2s"], v["f1_at_5s"], v["seconds"]) for k, v in lab.heldout.items()]
            parts.append(_table(rows, header=("thresholds from", "held-out F1@2s", "held-out F1@5s", "seconds")))
        if lab.per_recording:
            parts.append(_table([(r["name"], r["heldout_s"], r["labelled_f1_at_2s"], r["unsupervised_f1_at_2s"])
                                 for r in lab.per_recording],
                                header=("recording", "held-out s", "labelled F1@2s", "unsupervised F1@2s")))
        if lab.unlabelled_names:
            parts.append(f"<p>Without labels (not used for the labelled choice): "
                         f"{_e(', '.join(lab.unlabelled_names))}.</p>")

    parts.append("<h2>Recordings</h2>")
    rows = []
    for rec, pseudo in zip(recordings, cal.pseudo):
        run = run_series(rec.energy, p)
        rows.append((rec.name, rec.kind, f"{rec.duration_s:.1f}", rec.n_steps, run.segments.shape[0],
                     f"{100 * run.on.mean():.1f} %" if rec.n_steps else "-",
                     f"{100 * pseudo.mean():.1f} %" if rec.n_steps else "-"))
    parts.append(_table(rows, header=("name", "kind", "seconds", "steps", "segments", "ON steps",
                                      "pseudo-active steps")))

    parts.append("<h2>Plots</h2>")
    for src, title in images:
        parts.append(f"<h3>{_e(title)}</h3><img src='{_e(src)}' alt='{_e(title)}'>")
    if energy_images:
        parts.append("<h3>Energy over time with the chosen thresholds</h3>")
        parts.append("<p>Grey: raw energy; blue: smoothed energy; red: theta_on (solid) and theta_off (dashed); "
                     "orange shading: steps the pseudo-labels call activity; strips below: the segments these "
                     "thresholds produce, the pseudo-labels and (labelled mode) the labels.</p>")
        for src, title in energy_images:
            parts.append(f"<img src='{_e(src)}' alt='energy of {_e(title)}'>")
        if len(recordings) > len(energy_images):
            parts.append(f"<p>({len(recordings) - len(energy_images)} more recording(s) not plotted.)</p>")

    if record is not None:
        parts.append("<h2>Provenance (calibration.json)</h2>")
        prov = {k: record.get(k) for k in ("model_version", "fps", "mode", "criterion", "score", "created",
                                           "tool", "tool_version")}
        prov["data sha256"] = record.get("data", {}).get("sha256")
        parts.append(_table(list(prov.items()), header=("field", "value")))
    parts.append(_deploy(cal, record, model_dir, out, poor))
    parts.append("</body></html>")
    return "\n".join(parts)


def _verdict(cal, recordings, comparison, warned: list[str]) -> str:
    """The green or amber box at the top: what the scores say about these thresholds.
    warned: the calibration's other warnings (each keeps the verdict amber)."""
    q = cal.quality
    reasons = []
    velocity = bool(recordings) and recordings[0].model_version == "velocity-energy"
    if cal.mode == "unsupervised" and (q.youden_j < TRUST_J or q.f1 < TRUST_F1):
        reasons.append(
            f"The energy agrees only weakly with the velocity proxy: Youden's J {q.youden_j:.2f} and F1 {q.f1:.2f} "
            f"against its pseudo-labels (confirmed from J {TRUST_J:g} and F1 {TRUST_F1:g}). On our synthetic "
            "validation videos the shipped tokenizer agrees this weakly too (J 0.15-0.23) and its thresholds still "
            "came within 0.03-0.06 F1@2s of the best, so this does not mean they are wrong: these recordings "
            "cannot confirm them.")
    if velocity:
        reasons.append("The energy is the velocity proxy itself, so its agreement with the pseudo-labels only shows "
                       "that smoothing and hysteresis reproduce a threshold of their own input.")
    reasons.extend(w[0].upper() + w[1:] for w in warned)
    cur = next((c for c in comparison if c.name == "current"), None)
    new = comparison[-1] if comparison else None
    if cur is not None and new is not None and cur is not new and cur.f1_at_2s is not None:
        if new.f1_at_2s < cur.f1_at_2s - 0.005:
            reasons.append(f"Against {cur.truth} the new thresholds score lower than the current ones: F1@2s "
                           f"{new.f1_at_2s:.3f} against {cur.f1_at_2s:.3f}. Keep the current thresholds.")
    if cal.labelled is not None and cal.labelled.heldout:
        held = cal.labelled.heldout["labelled"]["f1_at_2s"]
        if held < 0.6:
            reasons.append(f"On the held-out labelled minutes they reach F1@2s {held:.3f} only.")
    if reasons:
        return ("<div class='caution'><h2>Not confirmed: use with care</h2><ul>"
                + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul><p>What would confirm them: label a few "
                "minutes of this station and re-run with <code>--labels</code> (held-out F1@2s), or compare the "
                "energy plots below with what happened in the video.</p></div>")
    truth = (f" Against {new.truth}: F1@2s {new.f1_at_2s:.3f}." if new is not None and new.f1_at_2s is not None else "")
    share = (f" They mark {100 * new.on_fraction:.0f} % of the steps active, the pseudo-labels "
             f"{100 * q.active_fraction:.0f} %." if new is not None else "")
    return (f"<div class='ok'><b>Consistent:</b> the energy agrees with the velocity proxy (Youden's J {q.youden_j:.2f}, "
            f"F1 {q.f1:.2f}).{share}{truth} Deploy them as the end of this page shows.</div>")


def _comparison(cal, comparison, current_source: str) -> str:
    """The new thresholds beside the current ones, on the same recordings."""
    if not comparison:
        return ""
    head = "<h2>New thresholds against the current ones, on the same recordings</h2>"
    if len(comparison) == 1:
        return head + ("<p>The model directory holds no calibration yet, so there is nothing to compare with; the "
                       "figures of the new thresholds:</p>") + _figures_table(comparison, cal)
    cur, new = comparison[0], comparison[-1]
    text = (f"<p>Current: {_e(current_source)}. On these recordings the new thresholds keep {new.segments} segments "
            f"(median {new.median_segment_s:.2f} s) where the current ones keep {cur.segments} (median "
            f"{cur.median_segment_s:.2f} s)")
    if new.f1_at_2s is not None:
        text += (f"; against {_e(new.truth)}, boundary F1@2s goes from {cur.f1_at_2s:.3f} to "
                 f"<b>{new.f1_at_2s:.3f}</b>")
    return head + text + ".</p>" + _figures_table(comparison, cal)


def _figures_table(comparison, cal) -> str:
    q = cal.quality
    rows = [
        ("theta_on", [f"{c.params.theta_on:.4g}" for c in comparison], None),
        ("theta_off", [f"{c.params.theta_off:.4g}" for c in comparison], None),
        ("alpha, up / down steps", [f"{c.params.alpha:g}, {c.params.up_steps} / {c.params.down_steps}"
                                    for c in comparison], None),
        ("split step (window, threshold)", [f"{c.params.split_window}, {c.params.split_theta:.3g}"
                                            if c.params.split_window else "off" for c in comparison], None),
        (f"steps active (pseudo-labels: {100 * q.active_fraction:.1f} %)",
         [f"{100 * c.on_fraction:.1f} %" for c in comparison], [-abs(c.on_fraction - q.active_fraction)
                                                              for c in comparison]),
        ("segments (median length)", [f"{c.segments} ({c.median_segment_s:.2f} s)" for c in comparison], None),
        ("F1 against the pseudo-labels", [f"{c.f1_pseudo:.3f}" for c in comparison], [c.f1_pseudo for c in comparison]),
        ("Youden's J against the pseudo-labels", [f"{c.youden_j:.3f}" for c in comparison],
         [c.youden_j for c in comparison]),
    ]
    if comparison[-1].f1_at_2s is not None:
        rows.append((f"boundary F1@2s against {comparison[-1].truth}", [f"{c.f1_at_2s:.3f}" for c in comparison],
                     [c.f1_at_2s for c in comparison]))
    out = ["<table><tr><th>figure</th>" + "".join(f"<th>{_e(c.name)}</th>" for c in comparison) + "</tr>"]
    for label, cells, score in rows:
        best = max(range(len(cells)), key=lambda i: score[i]) if score and len(cells) > 1 else -1
        if score and len(cells) > 1 and len(set(score)) == 1:
            best = -1
        out.append(f"<tr><td>{_e(label)}</td>" + "".join(
            f"<td class='{'better' if i == best else ''}'>{_e(v)}</td>" for i, v in enumerate(cells)) + "</tr>")
    return "\n".join(out) + "</table>"


def _deploy(cal, record, model_dir, out, poor: bool) -> str:
    """The last section: the commands that put these thresholds on a device and on the fleet."""
    cal_json = (Path(out) / "calibration.json").resolve() if out is not None else Path("calibration.json")
    version = (record or {}).get("model_version", "")
    parts = ["<h2>Next step: deploy these thresholds</h2>",
             f"<p>They are in <a href='calibration.json'>calibration.json</a> beside this report (with their "
             f"provenance, the sweep and the proxy quality), for model <code>{_e(version)}</code> only: thresholds "
             "belong to the tokenizer that made the energy.</p>"]
    if poor:
        parts.append("<p><b>The warning at the top of this page advises against deploying them as they are.</b></p>")
    parts.append("<p>On one device, to try them: in its <code>edge.toml</code> set</p>"
                 f"<pre>[model]\ncalibration = \"{_e(cal_json)}\"</pre><p>and restart it "
                 "(<code>systemctl restart laps-edge</code>).</p>")
    if model_dir:
        parts.append(
            "<p>On the fleet: a signed bundle of the model with these thresholds, rolled out in stages (NEXT: a "
            "version above the one the devices run; fleet.txt: one site/device per line):</p><pre>"
            + _e(f"laps-export bundle build --model-dir {model_dir} --calibration {cal_json} --out bundles/NEXT "
                 "--version NEXT\n"
                 "laps-export bundle sign --bundle bundles/NEXT --key keys/release.key\n"
                 "laps-central rollout start --config central.toml --bundle bundles/NEXT --baseline bundles/CURRENT "
                 "--devices-file fleet.txt --canary SITE/DEVICE")
            + "</pre>")
    return "\n".join(parts)
