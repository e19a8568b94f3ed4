"""The clustering report: one HTML file (figures and animations beside it in `figures/`).

Written for the operator who has to decide what the clusters are and whether to trust them:
- at a glance: segments, devices, durations, how many segments are implausibly short, the
  clusters flagged, and which embedding was saved and why (LAPS by default, or the
  best-scoring method with `--save-method best`);
- the scores of every method in one table (LAPS frozen Transformer and the two pooling
  baselines; with ground truth also NMI, ARI, Hungarian accuracy), the silhouette-vs-k curve
  when k was chosen, a 2-D map of the saved embeddings, cluster sizes;
- a table of the clusters, then per cluster: its size, typical duration, where in the frame
  its motion is (a heat map of frame differences of its pictured members over one of its
  frames, and in words), a flag when its segments are implausibly short, its most central
  members as short animations (their uploaded clips, else their keyframes; animated WebP made
  with Pillow), a montage of keyframes of central and random members, and its durations.

The picture helpers (`pick_pictured`, `member_frames`, `animate`, `keyframe_montage`) are
public: the fleet dashboard (`central.dashboard`) draws its montages and animations with them.
"""

from __future__ import annotations

import html
import logging
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from central.cluster_run import ClusterRun
from central.clustering import normalize_rows
from central.store_protocol import CentralStore

log = logging.getLogger(__name__)

TILE = (160, 120)  # width, height of one keyframe in a montage
#: a cluster whose median segment is this short or shorter is flagged: 0.5 s is 5 model steps
#: at 10 fps, barely above the kernel's 3-step minimum; a hand primitive (reach, grasp,
#: insert, ...) takes most of a second or more, so such clusters are mostly flicker, shake or
#: noise that crossed theta_on (raise theta_on or min_steps, see laps-calibrate)
SHORT_SEGMENT_S = 0.5
#: central members shown as animations per cluster, and frames per animation at most
ANIMATED_MEMBERS = 4
ANIMATION_FRAMES = 24
_SCORE_COLUMNS = (
    ("k", "k", "{:.0f}"), ("silhouette_cosine", "silhouette (cos) &uarr;", "{:.3f}"),
    ("calinski_harabasz", "Calinski-Harabasz &uarr;", "{:.1f}"), ("davies_bouldin", "Davies-Bouldin &darr;", "{:.3f}"),
    ("nmi", "NMI &uarr;", "{:.3f}"), ("ari", "ARI &uarr;", "{:.3f}"), ("hungarian_accuracy", "Hungarian acc. &uarr;", "{:.3f}"),
)
_METHOD_NAMES = {"transformer": "LAPS: frozen Transformer", "mean": "baseline: mean pooling",
                 "norm_weighted": "baseline: norm-weighted pooling",
                 "statistics": "statistics pooling", "motion": "device motion summary"}


def write_report(run: ClusterRun, out_dir: str | os.PathLike, store: CentralStore | None = None,
                 media_dir: str | os.PathLike | None = None, representatives: int = 4, randoms: int = 4,
                 keyframes_per_member: int = 3, seed: int = 0) -> Path:
    """Write `<out_dir>/report.html` and `<out_dir>/figures/*.png`; returns the HTML path.

    store/media_dir: where keyframes are looked up (without them the montages say so).
    """
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out_dir)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    primary = run.primary
    cl = primary.clustering
    rng = np.random.default_rng(seed)

    parts = [_head(run)]
    profiles: dict[int, dict] = {}
    parts.append("<h2>Scores</h2>" + _scores_table(run) + _why_method(run))
    if cl.k_curve:
        _plot_k_curve(cl.k_curve, cl.k, figs / "k_curve.png")
        parts.append('<h2>Choice of k</h2><p>Cosine silhouette of k-means on the LAPS embeddings for each k; '
                     f'the best, k = {cl.k}, was used.</p><img src="figures/k_curve.png" alt="silhouette vs k">')
    _plot_map(primary, figs / "map.png", seed)
    parts.append('<h2>Map of the embeddings</h2><p>PCA of the normalised LAPS embeddings (at most 5,000 segments), '
                 'coloured by cluster.</p><img src="figures/map.png" alt="2-D map">')
    _plot_sizes(cl.labels, cl.k, figs / "sizes.png")
    parts.append('<h2>Cluster sizes</h2><img src="figures/sizes.png" alt="cluster sizes">')

    media: dict = {}
    members_by_cluster = {}
    for c in range(cl.k):
        idx = np.flatnonzero(cl.labels == c)
        by_distance = idx[np.argsort(cl.distances[idx], kind="stable")]
        rep = pick_pictured(run.segment_ids, by_distance, representatives, store, media)
        rest = np.setdiff1d(idx, rep)
        rand = np.sort(pick_pictured(run.segment_ids, rng.permutation(rest), randoms, store, media))
        members_by_cluster[c] = (rep, rand)
    mdir = Path(media_dir) if media_dir else None
    sections = []
    for c in range(cl.k):
        idx = np.flatnonzero(cl.labels == c)
        rep, rand = members_by_cluster[c]
        dur = run.durations_s[idx]
        frames = {int(i): member_frames(run.segment_ids[int(i)], media, mdir) for i in (*rep, *rand)}
        heat = _motion_map([f for f in frames.values() if len(f) >= 2])
        profile = profiles[c] = _profile(run, idx, dur, heat)
        _plot_durations(dur, c, figs / f"cluster_{c:02d}_durations.png")
        montage = figs / f"cluster_{c:02d}_montage.png"
        n_pictures = keyframe_montage(run.segment_ids, run.durations_s, rep, rand, media, mdir, keyframes_per_member,
                                      montage)
        strips = []
        for j, i in enumerate(rep[:ANIMATED_MEMBERS]):
            name = animate(frames.get(int(i), []), float(run.durations_s[int(i)]), figs / f"cluster_{c:02d}_member_{j}")
            if name:
                strips.append(f'<figure><img src="figures/{name}" alt="segment {html.escape(run.segment_ids[int(i)])}">'
                              f"<figcaption>{j + 1}. {run.durations_s[int(i)]:.1f} s, "
                              f"{html.escape(run.devices[int(i)])}</figcaption></figure>")
        heat_html = ""
        if heat is not None:
            background = next((f[len(f) // 2] for f in frames.values() if f), None)
            _plot_motion(heat, background, figs / f"cluster_{c:02d}_motion.png")
            heat_html = (f'<img src="figures/cluster_{c:02d}_motion.png" alt="where cluster {c} moves"> ')
        devices = sorted({run.devices[i] for i in idx})
        flag = ""
        if profile["short"]:
            flag = (f"<div class='flag'><b>Implausibly short:</b> the median segment lasts {profile['median_s']:.2f} s "
                    f"({100 * profile['short_share']:.0f} % of its segments are {SHORT_SEGMENT_S:g} s or shorter). "
                    "A hand action takes most of a second or more; segments this short are usually flicker, camera "
                    "shake or noise that crossed theta_on. Check the animations; if they show no action, raise "
                    "theta_on or min_steps (laps-calibrate) or leave this cluster out of the dataset.</div>")
        sections.append(
            f"<section><h3 id='cluster-{c}'>Cluster {c}: {idx.size} segments, typically {profile['median_s']:.1f} s, "
            f"motion {html.escape(profile['where'])}</h3>{flag}"
            f"<p>{idx.size} segments ({100.0 * idx.size / len(run.segment_ids):.1f} %), duration median "
            f"{np.median(dur):.2f} s (10-90 %: {np.percentile(dur, 10):.2f}-{np.percentile(dur, 90):.2f} s), "
            f"{len(devices)} device(s): {html.escape(', '.join(devices[:8]))}{' ...' if len(devices) > 8 else ''}. "
            f"Motion: {html.escape(profile['where_detail'])}.</p>"
            + (f"<h4>Its most central members, as they moved</h4><div class='strips'>{''.join(strips)}</div>"
               if strips else "")
            + f'<h4>Keyframes, where it moves, how long it lasts</h4><img src="figures/{montage.name}" '
              f'alt="keyframes of cluster {c}"> {heat_html}'
            f'<img src="figures/cluster_{c:02d}_durations.png" alt="durations of cluster {c}">'
            + ("" if n_pictures else "<p><em>No keyframes were uploaded for these members.</em></p>")
            + "</section>"
        )
    parts.insert(1, _glance(run, profiles))
    parts.append("<h2>Clusters</h2>" + _cluster_table(run, profiles) + _MONTAGE_HELP)
    parts.extend(sections)
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>LAPS primitive library</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1200px;line-height:1.4}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
        "img{max-width:100%;vertical-align:top}section{border-top:1px solid #ddd;margin-top:1em}"
        ".flag{border:2px solid #d68910;background:#fef5e7;padding:0.5em 0.8em;margin:0.5em 0}"
        ".why{border-left:4px solid #2e86c1;background:#f4f9fd;padding:0.5em 0.8em}"
        ".strips{display:flex;gap:8px;flex-wrap:wrap}figure{margin:0}figcaption{font-size:0.85em;color:#555}"
        "td.flagged{background:#fef5e7}</style></head><body>"
        + "\n".join(parts) + "</body></html>\n"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def pick_pictured(segment_ids: Sequence[str], candidates: np.ndarray, count: int, store: CentralStore | None, media: dict,
                  scan: int = 1000) -> np.ndarray:
    """The first `count` candidates (indices into `segment_ids`) (in the given order) that have keyframes, looking at most
    `scan` deep (a cluster may hold a million segments); the first `count` if none has any.
    Fills `media` (segment_id -> files) for everything it looked up."""
    if store is None or candidates.size == 0:
        return candidates[:count]
    chosen: list[int] = []
    for a in range(0, min(candidates.size, scan), 100):
        block = candidates[a:a + 100]
        found = store.media([segment_ids[i] for i in block])
        media.update(found)
        chosen.extend(int(i) for i in block if any(f.kind == "keyframe" for f in found[segment_ids[i]]))
        if len(chosen) >= count:
            return np.asarray(chosen[:count], dtype=np.int64)
    return np.asarray(chosen, dtype=np.int64) if chosen else candidates[:count]


# -- what each cluster is -----------------------------------------------------------------------------------
def _profile(run: ClusterRun, idx: np.ndarray, dur: np.ndarray, heat: np.ndarray | None) -> dict:
    median = float(np.median(dur)) if dur.size else 0.0
    where, detail = _where(heat)
    return {"size": int(idx.size), "median_s": median, "p10": float(np.percentile(dur, 10)) if dur.size else 0.0,
            "p90": float(np.percentile(dur, 90)) if dur.size else 0.0,
            "short": bool(dur.size and median <= SHORT_SEGMENT_S),
            "short_share": float(np.mean(dur <= SHORT_SEGMENT_S)) if dur.size else 0.0,
            "where": where, "where_detail": detail, "devices": sorted({run.devices[i] for i in idx})}


def member_frames(segment_id: str, media: dict, media_dir: Path | None) -> list[np.ndarray]:
    """The segment's frames as BGR images of TILE size: its clip's frames when one was uploaded
    (at most ANIMATION_FRAMES, evenly spread), else its keyframes; [] without media."""
    import cv2

    if media_dir is None:
        return []
    files = media.get(segment_id, [])
    clip = next((f for f in files if f.kind == "clip"), None)
    frames: list[np.ndarray] = []
    if clip is not None:
        cap = cv2.VideoCapture(str(media_dir / clip.path))
        while True:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(img)
        cap.release()
        if len(frames) > ANIMATION_FRAMES:
            frames = [frames[j] for j in np.linspace(0, len(frames) - 1, ANIMATION_FRAMES).round().astype(int)]
    if len(frames) < 2:
        frames = [img for f in files if f.kind == "keyframe"
                  for img in [cv2.imread(str(media_dir / f.path))] if img is not None]
    return [cv2.resize(f, TILE, interpolation=cv2.INTER_AREA) for f in frames]


def _motion_map(members: list[list[np.ndarray]]) -> np.ndarray | None:
    """(24, 32) float map of where the members' frames change (mean absolute difference of
    consecutive grey frames, each member weighted equally, normalised to sum 1); None without
    at least one member of two frames or when nothing changes."""
    import cv2

    total = np.zeros((24, 32), np.float64)
    for frames in members:
        grey = [cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (32, 24), interpolation=cv2.INTER_AREA).astype(np.float64)
                for f in frames]
        diff = sum(np.abs(b - a) for a, b in zip(grey, grey[1:]))
        if float(np.sum(diff)) > 0:
            total += diff / float(np.sum(diff))
    return total / total.sum() if total.sum() > 0 else None


def _where(heat: np.ndarray | None) -> tuple[str, str]:
    """(short phrase, one sentence) saying where in the frame `heat` is, on a 3 x 3 grid."""
    if heat is None:
        return "unknown (no pictures)", "unknown: no clips or keyframes of its members were uploaded"
    h, w = heat.shape
    cells = np.array([[heat[r * h // 3:(r + 1) * h // 3, q * w // 3:(q + 1) * w // 3].sum() for q in range(3)]
                      for r in range(3)])
    r, q = np.unravel_index(int(np.argmax(cells)), cells.shape)
    rows, cols = ("top", "middle", "bottom"), ("left", "centre", "right")
    name = "centre" if (r, q) == (1, 1) else f"{rows[r]} {cols[q]}" if r != 1 else f"middle {cols[q]}"
    share = float(cells[r, q])
    ys, xs = np.mgrid[0:h, 0:w]
    cy, cx = float((heat * ys).sum() / (h - 1)), float((heat * xs).sum() / (w - 1))
    if share < 0.2:  # an even spread puts 11 % in every cell
        return "spread over the frame", (f"spread over the frame (no ninth of it holds more than {100 * share:.0f} % "
                                         f"of the change; centre of mass at {100 * cx:.0f} % across, {100 * cy:.0f} % down)")
    return f"in the {name}", (f"mostly in the {name} of the frame ({100 * share:.0f} % of the change in that ninth; "
                              f"centre of mass at {100 * cx:.0f} % across, {100 * cy:.0f} % down)")


def animate(frames: list[np.ndarray], duration_s: float, stem: Path) -> str:
    """An animated WebP (GIF where Pillow has no WebP) of one member's frames, at the speed it
    moved (its duration_s over its frames, at least 0.1 s a frame), holding the last
    frame a moment so the loop is visible. Returns the file name, "" without two frames."""
    if len(frames) < 2:
        return ""
    from PIL import Image

    images = [Image.fromarray(f[:, :, ::-1].copy()) for f in frames]
    step_ms = max(100, int(1000 * duration_s / len(frames)))
    durations = [step_ms] * (len(images) - 1) + [step_ms + 600]
    for suffix, options in ((".webp", {"quality": 80, "method": 4}), (".gif", {"optimize": False})):
        path = stem.with_suffix(suffix)
        try:
            images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, **options)
            return path.name
        except (OSError, ValueError, KeyError):
            continue
    return ""


_MONTAGE_HELP = (
    "<p><b>Reading a cluster.</b> The animations play its most central members (those nearest the cluster's "
    "centre in the embedding: what the cluster typically holds) at the speed they happened, from their uploaded "
    "clips (or their keyframes when no clip was uploaded). In the montage each row is one segment: a label tile "
    "(the row's kind, the segment id's first characters, its duration), then its keyframes from its first to its "
    "last frame. <i>centre</i> rows are the central members again; <i>random</i> rows are members drawn at "
    "random, which show how varied the cluster is. The heat map shows where in the frame the pictured members' "
    "pixels change (red = most), drawn over one of their frames.</p>"
)


def _glance(run: ClusterRun, profiles: dict[int, dict]) -> str:
    dur = run.durations_s
    n = len(run.segment_ids)
    short = [c for c, p in profiles.items() if p["short"]]
    devices = sorted(set(run.devices))
    items = [
        f"{n} segments from {len(devices)} device(s) ({html.escape(', '.join(devices[:6]))}"
        f"{' ...' if len(devices) > 6 else ''}); durations median {np.median(dur):.2f} s, 10-90 % "
        f"{np.percentile(dur, 10):.2f}-{np.percentile(dur, 90):.2f} s",
        f"{100 * np.mean(dur <= SHORT_SEGMENT_S):.0f} % of the segments last {SHORT_SEGMENT_S:g} s or less",
        f"{run.primary.clustering.k} clusters of the {html.escape(_METHOD_NAMES.get(run.primary.method, run.primary.method))} "
        "embedding (saved for export-dataset; why: see Scores)",
    ]
    if short:
        items.append("flagged as implausibly short (median segment &le; "
                     f"{SHORT_SEGMENT_S:g} s): " + ", ".join(f"<a href='#cluster-{c}'>cluster {c}</a> "
                                                        f"({100 * profiles[c]['size'] / n:.0f} % of the segments)"
                                                        for c in short))
    else:
        items.append("no cluster is flagged as implausibly short")
    return "<h2>At a glance</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _cluster_table(run: ClusterRun, profiles: dict[int, dict]) -> str:
    n = len(run.segment_ids)
    rows = ["<tr><th>cluster</th><th>segments</th><th>share</th><th>typical duration (10-90 %)</th>"
            "<th>motion</th><th>devices</th><th>note</th></tr>"]
    for c, p in profiles.items():
        note = "implausibly short" if p["short"] else ""
        rows.append(f"<tr><td><a href='#cluster-{c}'>{c}</a></td><td>{p['size']}</td><td>{100 * p['size'] / n:.1f} %</td>"
                    f"<td>{p['median_s']:.2f} s ({p['p10']:.2f}-{p['p90']:.2f})</td><td>{html.escape(p['where'])}</td>"
                    f"<td>{len(p['devices'])}</td><td class='{'flagged' if note else ''}'>{note}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _why_method(run: ClusterRun) -> str:
    """Which method's clustering was saved, and why, in the light of the scores above."""
    saved = run.primary.method
    name = _METHOD_NAMES.get(saved, saved)
    scored = {m: r.metrics for m, r in run.results.items()}
    best = {key: max(scored, key=lambda m: _finite(scored[m].get(key), sign))
            for key, sign in (("silhouette_cosine", 1), ("calinski_harabasz", 1), ("davies_bouldin", -1))}
    beaten = [k for k, m in best.items() if m != saved]
    if run.save_rule == "best":
        why = (f"<b>Saved: {name}</b>, the best cosine silhouette of the {len(scored)} methods compared "
               "(<code>--save-method best</code>).")
    elif saved == "transformer":
        why = f"<b>Saved: {name}</b>, the method this library is built on (<code>--save-method laps</code>, the default)."
        if beaten and len(scored) > 1:
            labels = {"silhouette_cosine": "silhouette", "calinski_harabasz": "Calinski-Harabasz",
                      "davies_bouldin": "Davies-Bouldin"}
            why += (f" Here a baseline scores better on {', '.join(labels[k] for k in beaten)}. These internal "
                    "scores measure how compact the clusters are in each method's own embedding space (spaces of "
                    "different width and shape), not whether a cluster holds one kind of action: on held-out "
                    "synthetic recordings with known primitives (<code>python -m benchmarks.clustering</code>), the "
                    "LAPS embedding reached NMI 0.19 against 0.13-0.14 for the pooling baselines while scoring lower "
                    "on them.")
        if "nmi" in scored[saved]:
            top = max(scored, key=lambda m: _finite(scored[m].get("nmi"), 1))
            why += (f" With the ground truth given here, NMI is highest for {_METHOD_NAMES.get(top, top)} "
                    f"({scored[top]['nmi']:.3f}; saved: {scored[saved]['nmi']:.3f}).")
        why += (" To save the best-scoring method instead, run <code>laps-central cluster ... --save-method "
                "best</code>.")
    else:
        why = f"<b>Saved: {name}</b>: the LAPS embedding was not among <code>--methods</code>, so the first listed was kept."
    return f"<p class='why'>{why}</p>"


def _finite(value, sign: int) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return -math.inf
    return sign * float(value)


# -- sections ---------------------------------------------------------------------------------------------
def _head(run: ClusterRun) -> str:
    cl = run.primary.clustering
    how = "chosen by cosine silhouette" if cl.k_curve else "given"
    path = "mini-batch k-means (disk-backed embeddings)" if cl.mini_batch else "k-means in memory"
    return (
        f"<h1>LAPS primitive library</h1><p>Run <code>{html.escape(run.run_id)}</code>: "
        f"{len(run.segment_ids)} segments of model <code>{html.escape(run.model_version)}</code> "
        f"({html.escape(run.selection.describe())}); k = {cl.k} ({how}); {path}; "
        f"n_init = {run.options.n_init}, seed = {run.options.seed}."
        + (f" {run.skipped_no_codes} segment(s) without codes were left out." if run.skipped_no_codes else "")
        + (f" {run.skipped_no_motion} segment(s) without a motion summary were left out (the motion method ran)."
           if run.skipped_no_motion else "")
        + "</p><p>Pipeline: codes &rarr; z_q (the model's FSQ projection) &rarr; embedding &rarr; z-score &rarr; "
        "L2 &rarr; k-means. LAPS embedding: frozen random Transformer encoder "
        f"(d = {run.embedding.d_model}, {run.embedding.n_layers} layers, {run.embedding.n_heads} heads, "
        f"FF {run.embedding.d_ff}, seed {run.embedding.seed}), mean pooling.</p>"
    )


def _scores_table(run: ClusterRun) -> str:
    cols = [c for c in _SCORE_COLUMNS if any(c[0] in r.metrics for r in run.results.values())]
    head = "<tr><th>method</th>" + "".join(f"<th>{label}</th>" for _, label, _ in cols) + \
        "<th>embed s</th><th>cluster s</th></tr>"
    rows = []
    for m, r in run.results.items():
        cells = []
        for key, _, fmt in cols:
            v = r.metrics.get(key)
            cells.append("" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v))
        rows.append(f"<tr><td>{_METHOD_NAMES.get(m, m)}</td>" + "".join(f"<td>{c}</td>" for c in cells)
                    + f"<td>{r.embed_seconds:.2f}</td><td>{r.cluster_seconds:.2f}</td></tr>")
    note = ""
    p = run.primary.metrics
    if p.get("scored_rows_silhouette", p.get("n", 0)) < p.get("n", 0):
        note = (f"<p>Silhouette on {p['scored_rows_silhouette']:.0f} random segments; Calinski-Harabasz and "
                f"Davies-Bouldin on {p['scored_rows_ch_db']:.0f}.</p>")
    if "n_labelled" in p:
        note += f"<p>Ground truth known for {p['n_labelled']:.0f} segment(s).</p>"
    return f"<table>{head}{''.join(rows)}</table>{note}"


# -- figures ------------------------------------------------------------------------------------------------
def _plot_k_curve(curve: list[tuple[int, float]], k: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ks, ss = zip(*curve)
    ax.plot(ks, ss, "o-")
    ax.axvline(k, color="red", linestyle="--", label=f"chosen k = {k}")
    ax.set_xlabel("k")
    ax.set_ylabel("silhouette (cosine)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_map(result, path: Path, seed: int) -> None:
    import matplotlib.pyplot as plt

    cl = result.clustering
    x = result.embeddings
    rows = result.embedding_rows if result.embedding_rows is not None else np.arange(x.shape[0])
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rows.size, size=min(rows.size, 5000), replace=False))
    xn = normalize_rows(np.asarray(x[pick]), cl.mean, cl.std) if cl.mean is not None else np.asarray(x[pick])
    xc = xn - xn.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    xy = xc @ vt[:2].T if vt.shape[0] >= 2 else np.c_[xc[:, :1], np.zeros(len(xc))]
    labels = cl.labels[rows[pick]]
    fig, ax = plt.subplots(figsize=(6, 5))
    cmap = plt.get_cmap("tab20" if cl.k > 10 else "tab10")
    for c in range(cl.k):
        sel = labels == c
        ax.scatter(xy[sel, 0], xy[sel, 1], s=6, color=cmap(c % cmap.N), label=str(c))
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.legend(title="cluster", fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_sizes(labels: np.ndarray, k: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    counts = np.bincount(labels, minlength=k)
    fig, ax = plt.subplots(figsize=(max(4, 0.5 * k + 2), 3))
    ax.bar(np.arange(k), counts)
    ax.set_xlabel("cluster")
    ax.set_ylabel("segments")
    ax.set_xticks(np.arange(k))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_durations(durations: np.ndarray, c: int, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.5, 2.4))
    ax.hist(durations, bins=min(30, max(5, durations.size // 5)))
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("segments")
    ax.set_title(f"cluster {c}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_motion(heat: np.ndarray, background: np.ndarray | None, path: Path) -> None:
    """The motion heat map over one frame of the cluster (or alone), TILE-sized x 2."""
    import cv2

    w, h = TILE[0] * 2, TILE[1] * 2
    norm = heat / heat.max() if heat.max() > 0 else heat
    colour = cv2.applyColorMap(cv2.resize((255 * norm).astype(np.uint8), (w, h), interpolation=cv2.INTER_CUBIC),
                               cv2.COLORMAP_JET)
    if background is not None:
        base = cv2.resize(background, (w, h), interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(norm, (w, h), interpolation=cv2.INTER_CUBIC)[:, :, None] * 0.7
        colour = (base * (1 - alpha) + colour * alpha).astype(np.uint8)
    cv2.putText(colour, "where it moves", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), colour)


def keyframe_montage(segment_ids: Sequence[str], durations_s: Sequence[float], rep: np.ndarray, rand: np.ndarray,
                     media: dict, media_dir: Path | None, per_member: int, path: Path) -> int:
    """A PNG at `path`, one row per member (representatives `rep` first, then random members
    `rand`; both index `segment_ids` and `durations_s`, seconds): a label tile and up to
    `per_member` keyframes spread over the segment. Returns how many pictures were placed.
    Also the fleet dashboard's cluster montage (central.dashboard)."""
    import cv2

    w, h = TILE
    rows = []
    placed = 0
    counts = [sum(f.kind == "keyframe" for f in media.get(segment_ids[int(i)], [])) for i in (*rep, *rand)]
    per_member = max(1, min(per_member, max(counts, default=0)))  # no empty column when members have fewer
    for kind, members in (("centre", rep), ("random", rand)):
        for i in members:
            sid = segment_ids[int(i)]
            frames = [f for f in media.get(sid, []) if f.kind == "keyframe"]
            if len(frames) > per_member:
                frames = [frames[j] for j in np.linspace(0, len(frames) - 1, per_member).round().astype(int)]
            label = np.full((h, w, 3), 255, np.uint8)
            cv2.putText(label, kind, (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(label, sid[:13], (6, 52), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
            cv2.putText(label, f"{durations_s[int(i)]:.1f} s", (6, 78), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        (60, 60, 60), 1, cv2.LINE_AA)
            tiles = [label]
            for f in frames:
                img = cv2.imread(str(media_dir / f.path)) if media_dir is not None else None
                if img is None:
                    continue
                tiles.append(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
                placed += 1
            while len(tiles) < per_member + 1:
                blank = np.full((h, w, 3), 230, np.uint8)
                cv2.putText(blank, "no keyframe", (20, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (120, 120, 120), 1,
                            cv2.LINE_AA)
                tiles.append(blank)
            rows.append(np.hstack(tiles))
    if not rows:
        rows = [np.full((h, w * (per_member + 1), 3), 255, np.uint8)]
    grid = np.vstack([np.pad(r, ((2, 2), (0, 0), (0, 0)), constant_values=255) for r in rows])
    cv2.imwrite(str(path), grid)
    return placed
