"""The clustering report: one HTML file (figures as PNGs beside it in `figures/`).

Contents: the run (model version, selection, segments, k and how it was chosen); the scores of
every method in one table (LAPS frozen Transformer and the two pooling baselines; with ground
truth also NMI, ARI, Hungarian accuracy); the silhouette-vs-k curve when k was chosen; a 2-D map
of the LAPS embeddings (PCA of the normalised embeddings, a sample of at most 5,000 points)
coloured by cluster; cluster sizes; and per cluster its size, duration distribution, devices,
and a montage of keyframes from its most representative members (closest to the centre, among
those with uploaded keyframes) and from random members.
"""

from __future__ import annotations

import html
import logging
import math
import os
from pathlib import Path

import numpy as np

from central.cluster_run import ClusterRun
from central.clustering import normalize_rows
from central.store import Store

log = logging.getLogger(__name__)

TILE = (160, 120)  # width, height of one keyframe in a montage
_SCORE_COLUMNS = (
    ("k", "k", "{:.0f}"), ("silhouette_cosine", "silhouette (cos) &uarr;", "{:.3f}"),
    ("calinski_harabasz", "Calinski-Harabasz &uarr;", "{:.1f}"), ("davies_bouldin", "Davies-Bouldin &darr;", "{:.3f}"),
    ("nmi", "NMI &uarr;", "{:.3f}"), ("ari", "ARI &uarr;", "{:.3f}"), ("hungarian_accuracy", "Hungarian acc. &uarr;", "{:.3f}"),
)
_METHOD_NAMES = {"transformer": "LAPS: frozen Transformer", "mean": "baseline: mean pooling",
                 "norm_weighted": "baseline: norm-weighted pooling"}


def write_report(run: ClusterRun, out_dir: str | os.PathLike, store: Store | None = None,
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
    parts.append("<h2>Scores</h2>" + _scores_table(run))
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
        rep = _pick_pictured(run, by_distance, representatives, store, media)
        rest = np.setdiff1d(idx, rep)
        rand = np.sort(_pick_pictured(run, rng.permutation(rest), randoms, store, media))
        members_by_cluster[c] = (rep, rand)
    parts.append("<h2>Clusters</h2>")
    for c in range(cl.k):
        idx = np.flatnonzero(cl.labels == c)
        rep, rand = members_by_cluster[c]
        dur = run.durations_s[idx]
        _plot_durations(dur, c, figs / f"cluster_{c:02d}_durations.png")
        montage = figs / f"cluster_{c:02d}_montage.png"
        n_pictures = _montage(run, rep, rand, media, Path(media_dir) if media_dir else None, keyframes_per_member, montage)
        devices = sorted({run.devices[i] for i in idx})
        parts.append(
            f'<section><h3>Cluster {c}</h3><p>{idx.size} segments ({100.0 * idx.size / len(run.segment_ids):.1f} %), '
            f"duration median {np.median(dur):.2f} s (10-90 %: {np.percentile(dur, 10):.2f}-{np.percentile(dur, 90):.2f} s), "
            f"{len(devices)} device(s): {html.escape(', '.join(devices[:8]))}{' ...' if len(devices) > 8 else ''}</p>"
            f'<img src="figures/{montage.name}" alt="keyframes of cluster {c}"> '
            f'<img src="figures/cluster_{c:02d}_durations.png" alt="durations of cluster {c}">'
            + ("" if n_pictures else "<p><em>No keyframes were uploaded for these members.</em></p>")
            + "</section>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>LAPS primitive library</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th:first-child,td:first-child{text-align:left}"
        "img{max-width:100%;vertical-align:top}section{border-top:1px solid #ddd;margin-top:1em}</style></head><body>"
        + "\n".join(parts) + "</body></html>\n"
    )
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _pick_pictured(run: ClusterRun, candidates: np.ndarray, count: int, store: Store | None, media: dict,
                   scan: int = 1000) -> np.ndarray:
    """The first `count` candidates (in the given order) that have keyframes, looking at most
    `scan` deep (a cluster may hold a million segments); the first `count` if none has any.
    Fills `media` (segment_id -> files) for everything it looked up."""
    if store is None or candidates.size == 0:
        return candidates[:count]
    chosen: list[int] = []
    for a in range(0, min(candidates.size, scan), 100):
        block = candidates[a:a + 100]
        found = store.media([run.segment_ids[i] for i in block])
        media.update(found)
        chosen.extend(int(i) for i in block if any(f.kind == "keyframe" for f in found[run.segment_ids[i]]))
        if len(chosen) >= count:
            return np.asarray(chosen[:count], dtype=np.int64)
    return np.asarray(chosen, dtype=np.int64) if chosen else candidates[:count]


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


def _montage(run: ClusterRun, rep: np.ndarray, rand: np.ndarray, media: dict, media_dir: Path | None,
             per_member: int, path: Path) -> int:
    """One row per member (representatives first, then random members): a label tile and up to
    `per_member` keyframes spread over the segment. Returns how many pictures were placed."""
    import cv2

    w, h = TILE
    rows = []
    placed = 0
    counts = [sum(f.kind == "keyframe" for f in media.get(run.segment_ids[int(i)], [])) for i in (*rep, *rand)]
    per_member = max(1, min(per_member, max(counts, default=0)))  # no empty column when members have fewer
    for kind, members in (("centre", rep), ("random", rand)):
        for i in members:
            sid = run.segment_ids[int(i)]
            frames = [f for f in media.get(sid, []) if f.kind == "keyframe"]
            if len(frames) > per_member:
                frames = [frames[j] for j in np.linspace(0, len(frames) - 1, per_member).round().astype(int)]
            label = np.full((h, w, 3), 255, np.uint8)
            cv2.putText(label, kind, (6, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(label, sid[:13], (6, 52), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (60, 60, 60), 1, cv2.LINE_AA)
            cv2.putText(label, f"{run.durations_s[int(i)]:.1f} s", (6, 78), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
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
