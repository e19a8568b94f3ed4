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
A warning box opens the report when the proxy separates poorly (or anything else was warned).
"""

from __future__ import annotations

import html
import json
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


def write_report(out_dir, cal, recordings: Sequence, labels: dict | None = None, record: dict | None = None) -> Path:
    """Write `report.html` and its PNGs under `out_dir`; returns the HTML path.

    cal: a `Calibration`; recordings: its `EnergyRecording`s; labels: {name: RecordingLabels}
    in labelled mode; record: the calibration.json record (for the provenance table).
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
    page = _html(cal, recordings, labels, record, images, energy_images)
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


def _html(cal, recordings, labels, record, images, energy_images) -> str:
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
    for w in warnings:
        parts.append(f"<div class='warning'><h2>Warning</h2><p>{_e(w)}</p></div>")
    if not cal.warnings and not (q.weak and cal.mode == "unsupervised"):
        parts.append("<div class='ok'>No warnings: the energy agrees with the proxy "
                     f"(Youden's J {q.youden_j:.2f} &ge; {WEAK_PROXY_J:g}).</div>")

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
        parts.append("<details><summary>full record</summary><pre>"
                     + _e(json.dumps(record, indent=2)) + "</pre></details>")
    parts.append("</body></html>")
    return "\n".join(parts)
