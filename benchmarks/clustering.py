"""Central clustering and ingest: accuracy against the true primitives, ingest rate, scale.

Three parts, one table (`benchmarks/results/clustering.json`):

1. Accuracy on HELD-OUT synthetic workstation videos (seeds 950-959, 2 minutes each, all
   nuisances; never used for training or tuning; 900-949 are retired). Each video's Lucas-Kanade tracks (the
   shared `.cache/tracks` cache of the segmentation benchmark) go through the device's own
   `Pipeline` (feature extractor, Numba kernel, segment assembler) via a replay tracker. With
   the shipped default tokenizer (`edge/shipped_models/default`) segments carry FSQ codes and their
   tokens are z_q rebuilt by the central model registry; without it, the velocity-energy
   pipeline segments the video and each step's token is the grid-pooled velocity field (a 4x4
   pooling of the 20x20 point velocities, 32 values) — the table says which ran. Each
   predicted segment is labelled with the ground-truth primitive that overlaps it most ("rest"
   if none). LAPS (frozen Transformer) and both baselines (mean pooling, norm-weighted pooling)
   are clustered with k = the number of true classes, and LAPS once more with k chosen by
   cosine silhouette; NMI, ARI, Hungarian accuracy and the unsupervised scores per row, and
   `label_purity`, the mean fraction of a segment its label covers. The same three methods
   then run on the TRUE primitive spans ("oracle" rows, tokens the device produced inside
   each span): what clustering reaches when segmentation is perfect. "statistics pooling"
   (central/embedding.py) is a row beside them, and so is "device motion summary" (the
   `edge.motion_summary` each device segment carries; for a true span, the summary of the same
   tracker steps at float16, what a device would send). Choosing k: per held-out video, the k the
   default criterion (cosine silhouette, 2-12) picks for its segments against the true number
   of classes in them ("within +-1" counts the videos). Real labelled data (the corpus of
   benchmarks/real_segmentation.py, when built: `scripts/build_real_labelled.py`): each
   dataset's TRUE segments (per-frame features as tokens), every method with k = its number of
   actions, beside the NMI of random labels (mean of 20 draws; NMI of few, small clusters is
   far above 0 by chance) computed in the same run.
2. Ingest rate: segment messages published by several device clients (QoS 1) through a real
   Mosquitto into the SQLite store (synchronous=FULL, acknowledged after commit), with 1 and 2
   ingest workers on the shared subscription, against the baseline of inserting the same
   validated messages into the store directly (no broker); median over repeats. Each message
   carries 20 codes and a motion summary, as a current device sends them.
3. Scale: the clustering stage (z-score, L2, k-means / mini-batch k-means) on 10k, 100k and 1M
   synthetic 256-d embeddings (an 8-component Gaussian mixture), each in a fresh process for
   its peak RSS (VmHWM; with disk-backed embeddings it includes the file pages the process
   touched, which the kernel can drop under memory pressure); and the frozen Transformer's embedding throughput on 10k synthetic code
   sequences of the held-out segments' lengths. `embed_s_at_measured_rate` = n / throughput:
   computed from the measured rate, not timed at 100k and 1M (that would take hours on 2 cores).

Run: `python -m benchmarks.clustering` (options: --help).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import print_table, write_results

HELD_OUT_SEEDS = tuple(range(950, 960))
MINUTES = 2.0
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "edge" / "shipped_models" / "default"
SCALES = (10_000, 100_000, 1_000_000)


# --- 1. accuracy on held-out videos -----------------------------------------------------------

@dataclass
class LabelledSegment:
    seed: int
    tokens: np.ndarray  # (S, D) float32
    label: str
    duration_s: float
    purity: float  # fraction of the segment covered by its majority label (rest counts as a label)
    motion: np.ndarray | None = None  # (MOTION_DIM,) the device's motion summary (edge.motion_summary)


class ReplayTracker:
    """A PointTracker that replays recorded tracks (the contract's "saved tracks" backend)."""

    def __init__(self, velocity: np.ndarray, valid: np.ndarray) -> None:
        from edge.tracking.base import TrackStep

        self._step_cls = TrackStep
        self.velocity, self.valid = velocity, valid
        self.n_points = velocity.shape[1]
        self._t = 0
        self._points = np.zeros((self.n_points, 2), np.float32)

    def step(self, image: np.ndarray):
        t = min(self._t, self.velocity.shape[0] - 1)
        self._t += 1
        return self._step_cls(self._points, self.valid[t], self.velocity[t])

    def reset(self) -> None:
        self._t = 0


def held_out_segments(seeds, minutes: float, model_dir: Path | None, progress: bool = True):
    """Segments of every seed through the device pipeline, with tokens and true labels, and the
    ground-truth primitive spans with the tokens the device produced inside them (the
    segmentation oracle). Returns (segments, oracle, token_stats (mean, std), description)."""
    from tqdm import tqdm

    from edge.loop import run_stream
    from edge.motion_summary import MotionSummary, decode_motion, encode_motion
    from edge.pipeline import build_pipeline
    from edge.energy_trace import EnergyTraceRecorder
    from edge.sources.blank import BlankSource
    from edge.synthetic import SyntheticWorkstation
    from export.tokenizer.dataset import cached_tracks, synthetic_spec
    from export.tokenizer.windows import DataConventions

    registry = version = None
    if model_dir is not None:
        from central.registry import ModelRegistry
        from edge.model import load_model_directory

        meta = load_model_directory(model_dir).metadata
        conv = DataConventions(fps=meta.fps, window=meta.window, grid=meta.grid, grid_margin=meta.grid_margin,
                               input_size=tuple(meta.input_size), velocity_scale_px=meta.velocity_scale_px,
                               max_displacement_px=meta.max_displacement_px)
        registry = ModelRegistry(Path(model_dir).parent)
        version = meta.model_version
        desc = f"default tokenizer {version}: codes -> z_q (registry)"
    else:
        conv = DataConventions()
        desc = "no default tokenizer: velocity-energy segments, tokens = 4x4-pooled velocity field"

    def tokens(record, codes, a: int, b: int) -> np.ndarray:
        if registry is not None:
            return registry.z_q(codes[a:b], version)
        return pooled_velocity_tokens(record.velocity[a:b], record.valid[a:b], conv.grid)

    out: list[LabelledSegment] = []
    oracle: list[LabelledSegment] = []
    for seed in tqdm(seeds, desc="held-out videos", file=sys.stderr, disable=not progress):
        record, _ = cached_tracks(synthetic_spec(seed, minutes, "all"), conv, tracker="lk", progress=progress)
        pipe = build_pipeline(model_dir=str(model_dir) if model_dir else None, providers="cpu", keep_keyframes=False)
        pipe.tracker = ReplayTracker(record.velocity, record.valid)
        trace = EnergyTraceRecorder(fps=pipe.fps, model_version=pipe.model_version)
        # The replayed tracker never looks at the pixels: black frames at the model fps.
        segments = run_stream(BlankSource(record.n_frames, pipe.fps, pipe.input_size), pipe, [trace])
        codes = trace.trace().codes  # per-frame FSQ code (-1 without a model)
        gt = SyntheticWorkstation(seed=seed, minutes=minutes).ground_truth
        for seg in segments:
            if registry is not None and not seg.codes:
                continue
            label, purity = overlap_label(seg.start_s, seg.end_s, gt.segments)
            out.append(LabelledSegment(seed, tokens(record, codes, seg.start_frame, seg.end_frame), label,
                                       seg.duration_s, purity, decode_motion(seg.motion) if seg.motion else None))
        summary = MotionSummary(conv.grid)
        for s, e, label in gt.segments:
            a, b = int(round(s * pipe.fps)), min(int(round(e * pipe.fps)), record.n_frames)
            if b - a >= 2:
                # The summary the device would send for this span: the same steps, float16 on the wire.
                steps = np.stack([summary.step(record.velocity[t], record.valid[t]) for t in range(a, b)])
                motion = decode_motion(encode_motion(MotionSummary.segment(steps)))
                oracle.append(LabelledSegment(seed, tokens(record, codes, a, b), label, (b - a) / pipe.fps, 1.0,
                                              motion))
    if registry is not None:
        stats = registry.codebook_stats(version)
    else:
        allt = np.concatenate([s.tokens for s in out])
        stats = (allt.mean(axis=0), np.maximum(allt.std(axis=0), 1e-6))
    return out, oracle, stats, desc


def overlap_label(start_s: float, end_s: float, truth: list[tuple[float, float, str]]) -> tuple[str, float]:
    """(the ground-truth primitive overlapping [start_s, end_s) most, "rest" if none does;
    the fraction of the segment that label covers)."""
    overlap: dict[str, float] = {}
    for s, e, label in truth:
        o = min(e, end_s) - max(s, start_s)
        if o > 0:
            overlap[label] = overlap.get(label, 0.0) + o
    span = max(end_s - start_s, 1e-9)
    if not overlap:
        return "rest", 1.0
    label = max(overlap, key=overlap.get)
    return label, min(overlap[label] / span, 1.0)


def pooled_velocity_tokens(velocity: np.ndarray, valid: np.ndarray, grid: int, cells: int = 4) -> np.ndarray:
    """(S, N, 2) velocities -> (S, cells*cells*2) mean velocity of the visible points per cell."""
    s = velocity.shape[0]
    v = np.where(valid[..., None], velocity, 0.0).reshape(s, grid, grid, 2)
    m = valid.reshape(s, grid, grid).astype(np.float32)
    step = grid // cells
    vs = v[:, : step * cells, : step * cells].reshape(s, cells, step, cells, step, 2).sum(axis=(2, 4))
    ms = m[:, : step * cells, : step * cells].reshape(s, cells, step, cells, step).sum(axis=(2, 4))
    return (vs / np.maximum(ms, 1.0)[..., None]).reshape(s, -1).astype(np.float32)


def accuracy_rows(segments: list[LabelledSegment], stats, desc: str, what: str = "pipeline segments",
                  choose_k: bool = True) -> list[dict]:
    """LAPS and both baselines with k = the number of true classes (and LAPS with k chosen by
    cosine silhouette when `choose_k`), scored against the labels."""
    from central.clustering import ClusterOptions, cluster_embeddings, cluster_metrics
    from central.embedding import FrozenTransformerEmbedder, mean_pool, norm_weighted_pool, statistics_pool

    labels = [s.label for s in segments]
    k_true = len(set(labels))
    seqs = [s.tokens for s in segments]
    dim = seqs[0].shape[1]
    purity = float(np.mean([s.purity for s in segments]))
    embedders = {
        "LAPS frozen Transformer": lambda: FrozenTransformerEmbedder(dim, input_mean=stats[0], input_std=stats[1]).embed(seqs),
        "baseline: mean pooling": lambda: mean_pool(seqs),
        "baseline: norm-weighted pooling": lambda: norm_weighted_pool(seqs),
        "statistics pooling": lambda: statistics_pool(seqs),
    }
    if all(s.motion is not None for s in segments):
        embedders["device motion summary"] = lambda: np.stack([s.motion for s in segments])
    cached = {}
    for name, fn in embedders.items():
        t0 = time.perf_counter()
        x = fn()
        cached[name] = (x, time.perf_counter() - t0)
    runs = [(name, ClusterOptions(k=k_true)) for name in embedders]
    if choose_k:
        runs.append(("LAPS frozen Transformer", ClusterOptions(k=None, k_min=2, k_max=12)))
    rows = []
    for name, opts in runs:
        x, t_embed = cached[name]
        t0 = time.perf_counter()
        c = cluster_embeddings(x, opts)
        t_cluster = time.perf_counter() - t0
        m = cluster_metrics(x, c, labels)
        how = f"k={c.k} true classes" if opts.k else f"k={c.k} by cosine silhouette 2-12"
        rows.append({
            "name": f"{what}: {name}, {how}", "segments": len(segments), "label_purity": purity, "k": c.k,
            "nmi": m["nmi"], "ari": m["ari"], "hungarian_accuracy": m["hungarian_accuracy"],
            "silhouette_cosine": m["silhouette_cosine"], "calinski_harabasz": m["calinski_harabasz"],
            "davies_bouldin": m["davies_bouldin"], "embed_s": t_embed, "cluster_s": t_cluster, "tokens": desc,
        })
    return rows


def ceiling_rows(segments: list[LabelledSegment], oracle: list[LabelledSegment], stats, seeds, minutes: float,
                 model: Path | None) -> list[dict]:
    """Where the NMI ceiling lies, so a low NMI is read correctly.

    - The true spans again with tokens that skip the tokenizer (the 4x4-pooled velocity field
      of the same LK tracks): if these cluster no better, the tokens are not what limits NMI.
    - Segment length alone (log of the token count), clustered with k-means: what an embedding
      scores by encoding duration only.
    - A supervised reference: 5-fold logistic-regression accuracy on the same frozen-Transformer
      embeddings (z-scored, L2). High probe accuracy with low NMI means the primitives are
      linearly present but not the dominant structure k-means finds (it groups by direction and
      place of motion, which several primitives share).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    from central.clustering import normalize
    from central.embedding import FrozenTransformerEmbedder

    rows: list[dict] = []
    if model is not None:
        _, raw_oracle, raw_stats, raw_desc = held_out_segments(seeds, minutes, None, progress=False)
        rows += accuracy_rows(raw_oracle, raw_stats, raw_desc, what="ceiling: true spans, raw pooled velocity",
                              choose_k=False)[:1]
    from sklearn.metrics import normalized_mutual_info_score

    from central.clustering import kmeans

    # Duration alone: true spans of a primitive have a typical length, so any embedding that
    # encodes the number of tokens scores this much without seeing the motion.
    for what, segs in (("pipeline segments", segments), ("oracle: true spans", oracle)):
        labels = [s.label for s in segs]
        length = np.log([[float(s.tokens.shape[0])] for s in segs]).astype(np.float32)
        nmis = [normalized_mutual_info_score(labels, kmeans(length, len(set(labels)), seed=seed)[0]) for seed in range(3)]
        rows.append({"name": f"ceiling: {what}, segment length alone (log tokens), k-means, k=true classes",
                     "segments": len(segs), "k": len(set(labels)), "nmi": float(np.mean(nmis))})
    for what, segs in (("pipeline segments", segments), ("oracle: true spans", oracle)):
        seqs = [s.tokens for s in segs]
        x = normalize(FrozenTransformerEmbedder(seqs[0].shape[1], input_mean=stats[0], input_std=stats[1]).embed(seqs))
        labels = [s.label for s in segs]
        acc = cross_val_score(LogisticRegression(max_iter=3000), x, labels, cv=5).mean()
        rows.append({"name": f"ceiling: {what}, supervised linear probe on the LAPS embedding (5-fold)",
                     "segments": len(segs), "probe_accuracy": float(acc),
                     "majority_class_accuracy": max(_count(labels).values()) / len(labels)})
    return rows


def k_choice_rows(segments: list[LabelledSegment], oracle: list[LabelledSegment], stats) -> list[dict]:
    """Per held-out video: the k that cosine silhouette over 2-12 (the default criterion of
    `laps-central cluster`) picks for that video's segments, against the number of true classes
    among them; for the LAPS embedding and statistics pooling, device segments and true spans."""
    from central.clustering import choose_k, normalize
    from central.embedding import FrozenTransformerEmbedder, statistics_pool

    rows = []
    for what, segs in (("pipeline segments", segments), ("oracle: true spans", oracle)):
        dim = segs[0].tokens.shape[1]
        embedders = {"LAPS frozen Transformer": FrozenTransformerEmbedder(dim, input_mean=stats[0], input_std=stats[1]).embed,
                     "statistics pooling": statistics_pool}
        if all(s.motion is not None for s in segs):
            embedders["device motion summary"] = lambda mine: np.stack([s.motion for s in mine])
        for name, embed in embedders.items():
            errors = []
            for seed in sorted({s.seed for s in segs}):
                mine = [s for s in segs if s.seed == seed]
                k_true = len({s.label for s in mine})
                x = embed(mine) if name == "device motion summary" else embed([s.tokens for s in mine])
                k, _ = choose_k(normalize(x), 2, min(12, len(mine) // 2))
                errors.append(k - k_true)
            err = np.array(errors)
            rows.append({"name": f"choose k: {what}, {name}, cosine silhouette 2-12, per video",
                         "videos": len(err), "within_1": int((np.abs(err) <= 1).sum()),
                         "mean_error": float(err.mean()), "mean_abs_error": float(np.abs(err).mean()),
                         "errors": errors})
    return rows


def real_labelled_rows(root: Path | None = None) -> list[dict]:
    """NMI of every embedding on the TRUE segments of each real labelled dataset (k = its number
    of actions), and of random labels; a row saying so when the corpus is not built."""
    from sklearn.metrics import normalized_mutual_info_score

    from benchmarks.real_labelled.corpus import DEFAULT_ROOT, CorpusError, load_corpus
    from central.clustering import kmeans, normalize
    from central.embedding import FrozenTransformerEmbedder, mean_pool, norm_weighted_pool, statistics_pool

    try:
        videos = load_corpus(root or DEFAULT_ROOT)
    except CorpusError as err:
        return [{"name": f"real labelled: not run ({err})"}]
    rows = []
    for dataset in sorted({v.dataset for v in videos}):
        seqs, labels, names = [], [], []
        for v in (v for v in videos if v.dataset == dataset):
            for start_s, end_s in v.segments():
                a, b = int(round(start_s * v.fps)), min(int(round(end_s * v.fps)), v.n_frames)
                if b - a >= 2:
                    seqs.append(v.features[a:b].astype(np.float32))
                    labels.append(int(v.labels[a]))
                    names.append(v.name)
        k = len(set(labels))
        every = np.concatenate(seqs)
        mean, std = every.mean(axis=0), np.maximum(every.std(axis=0), 1e-6)
        embedders = {
            "LAPS frozen Transformer (features standardised)": lambda: FrozenTransformerEmbedder(
                seqs[0].shape[1], input_mean=mean, input_std=std).embed(seqs),
            "baseline: mean pooling": lambda: mean_pool(seqs),
            "baseline: norm-weighted pooling": lambda: norm_weighted_pool(seqs),
            "statistics pooling": lambda: statistics_pool(seqs),
        }
        rng = np.random.default_rng(0)
        chance = float(np.mean([normalized_mutual_info_score(labels, rng.integers(0, k, len(labels))) for _ in range(20)]))
        rows.append({"name": f"real labelled {dataset}: random labels (mean of 20)", "segments": len(labels), "k": k,
                     "nmi": chance})
        for name, fn in embedders.items():
            x = normalize(fn())
            nmis = [normalized_mutual_info_score(labels, kmeans(x, k, seed=seed)[0]) for seed in range(5)]
            video_nmi = normalized_mutual_info_score(names, kmeans(x, k, seed=0)[0])
            rows.append({"name": f"real labelled {dataset}: {name}, k={k} true actions, true segments",
                         "segments": len(labels), "k": k, "nmi": float(np.mean(nmis)), "nmi_min": float(np.min(nmis)),
                         "nmi_vs_video": video_nmi, "videos": len(set(names))})
    return rows


# --- 2. ingest rate through a real broker -------------------------------------------------------

def fleet_payloads(n: int, devices: int = 10, steps: int = 20, seed: int = 0) -> list[tuple[str, bytes]]:
    from datetime import datetime, timezone

    from edge.messages import SegmentMessage, Topics
    from edge.motion_summary import MOTION_DIM, encode_motion
    from edge.segments import Segment, utc_iso, uuid7

    rng = np.random.default_rng(seed)
    origin = datetime(2026, 1, 5, tzinfo=timezone.utc)
    out = []
    for i in range(n):
        start = 30 * i
        seg = Segment(str(uuid7()), start, start + steps, start / 10, (start + steps) / 10, 10.0,
                      utc_iso(origin, start / 10), utc_iso(origin, (start + steps) / 10),
                      rng.integers(0, 1920, size=steps).tolist(), 1.0, 2.0, [start + 5, start + 10], "bench",
                      motion=encode_motion(rng.normal(size=MOTION_DIM)))  # as a current device sends it
        device = f"ws-{i % devices}"
        out.append((Topics("plant", device).segments,
                    SegmentMessage.from_segment(seg, device_id=device, site="plant", boot_id="b",
                                                 seq=i // devices).to_json()))
    return out


def ingest_rows(n: int, repeats: int, work: Path) -> list[dict]:
    from central.config import MqttConfig
    from central.ingest import IngestWorker, validate_segment
    from central.store import Store

    items = fleet_payloads(n)
    rows = []

    def direct() -> float:
        db = work / f"direct-{time.monotonic_ns()}.sqlite"
        with Store(db) as store:
            t0 = time.perf_counter()
            for a in range(0, n, 200):
                store.ingest([(validate_segment(t, p), t) for t, p in items[a:a + 200]], [])
            return time.perf_counter() - t0

    base = float(np.median([direct() for _ in range(repeats)]))
    rows.append({"name": "ingest baseline: validate + insert directly (no broker), 200/transaction",
                 "messages": n, "segments_per_s": n / base, "ratio_vs_baseline": 1.0})
    from tests.service.helpers import Mosquitto

    broker = Mosquitto(work / "broker", quiet=True).start()
    try:
        for workers in (1, 2):
            times = []
            for r in range(repeats):
                with Store(work / f"mqtt-{workers}-{r}.sqlite") as store:
                    group = f"bench{workers}{r}"
                    ws = [IngestWorker(MqttConfig(host="127.0.0.1", port=broker.port, group=group,
                                                  client_id=f"bench-ingest-{workers}-{r}-{i}"), store, worker=i)
                          for i in range(workers)]
                    for w in ws:
                        w.start()
                        w.wait_subscribed(10)
                    t0 = time.perf_counter()
                    _publish(broker.port, items, clients=4)
                    while store.count() < n and time.perf_counter() - t0 < 300:
                        time.sleep(0.01)
                    times.append(time.perf_counter() - t0)
                    assert store.count() == n, f"ingest stored {store.count()} of {n}"
                    size = sum(f.stat().st_size for f in work.glob(f"mqtt-{workers}-{r}.sqlite*"))
                    for w in ws:
                        w.stop()
            t = float(np.median(times))
            rows.append({"name": f"ingest: 4 device clients -> Mosquitto -> {workers} worker(s), shared subscription,"
                                 " SQLite FULL, ack after commit", "messages": n, "segments_per_s": n / t,
                         "ratio_vs_baseline": (n / t) / (n / base), "store_bytes_per_segment": size / n})
    finally:
        broker.stop()
    return rows


def _publish(port: int, items: list[tuple[str, bytes]], clients: int) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    def run(part: list[tuple[str, bytes]], i: int) -> None:
        c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-dev-{i}-{time.monotonic_ns()}",
                        protocol=mqtt.MQTTv5)
        c.max_inflight_messages_set(100)
        c.connect("127.0.0.1", port)
        c.loop_start()
        infos = [c.publish(t, p, qos=1) for t, p in part]
        for info in infos:
            info.wait_for_publish(120)
        c.disconnect()
        c.loop_stop()

    threads = [threading.Thread(target=run, args=(items[i::clients], i)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


# --- 3. scale ------------------------------------------------------------------------------------

def scale_worker(n: int, k: int, out: Path) -> None:
    """In a fresh process: cluster n synthetic 256-d embeddings; write time and peak RSS."""
    from central.clustering import ClusterOptions, cluster_embeddings

    from central.cluster_run import DEFAULT_MEMORY_BUDGET

    rss0 = peak_rss_mib()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 256)).astype(np.float32)
    # As `laps-central cluster` decides: three methods' embeddings over the default budget go to disk.
    if n * 256 * 4 * 3 > DEFAULT_MEMORY_BUDGET:
        x = np.lib.format.open_memmap(out.with_suffix(".npy"), mode="w+", dtype=np.float32, shape=(n, 256))
    else:
        x = np.empty((n, 256), np.float32)
    for a in range(0, n, 65536):
        b = min(n, a + 65536)
        x[a:b] = centres[rng.integers(0, 8, size=b - a)] + rng.normal(scale=1.5, size=(b - a, 256)).astype(np.float32)
    rss_data = peak_rss_mib()
    t0 = time.perf_counter()
    c = cluster_embeddings(x, ClusterOptions(k=k))
    seconds = time.perf_counter() - t0
    rss = peak_rss_mib()
    on_disk = isinstance(x, np.memmap)
    del x
    out.with_suffix(".npy").unlink(missing_ok=True)
    out.write_text(json.dumps({"seconds": seconds, "mini_batch": c.mini_batch, "on_disk": on_disk,
                               "peak_rss_mib": rss,
                               "embeddings_mib": n * 256 * 4 / 2**20, "rss_before_mib": rss0,
                               "rss_with_data_mib": rss_data}))


def peak_rss_mib() -> float:
    """This process image's peak resident set (VmHWM) in MiB. Not ru_maxrss: on Linux that
    carries the parent's high-water mark across fork+exec."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def scale_rows(sizes, lengths: np.ndarray, embed_n: int, work: Path, stats_dim: int | None) -> list[dict]:
    from central.embedding import FrozenTransformerEmbedder, mean_pool, norm_weighted_pool, statistics_pool

    rng = np.random.default_rng(1)
    d_in = stats_dim or 256
    seq_lengths = rng.choice(lengths, size=embed_n)
    seqs = [rng.normal(size=(int(L), d_in)).astype(np.float32) for L in seq_lengths]
    rows = []
    rate = None
    for name, embed in (("frozen Transformer", FrozenTransformerEmbedder(d_in).embed), ("mean pooling", mean_pool),
                        ("norm-weighted pooling", norm_weighted_pool), ("statistics pooling", statistics_pool)):
        t0 = time.perf_counter()
        embed(seqs)
        embed_s = time.perf_counter() - t0
        rate = rate or embed_n / embed_s  # the frozen Transformer's: the baseline of the ratio
        rows.append({"name": f"scale: {name} embedding, {embed_n} sequences (median {int(np.median(seq_lengths))}"
                             f" tokens, D_in={d_in})", "sequences": embed_n, "embed_s": embed_s,
                     "sequences_per_s": embed_n / embed_s, "ratio_vs_transformer": (embed_n / embed_s) / rate})
    # The motion summary: central's whole embedding cost is reading the stored float16 bytes; the
    # device pays for it per frame (one row per step from the tracker's N points).
    from edge.motion_summary import MOTION_DIM, MotionSummary, motion_from_bytes

    raw = [rng.normal(size=MOTION_DIM).astype("<f2").tobytes() for _ in range(embed_n)]
    t0 = time.perf_counter()
    np.stack([motion_from_bytes(b) for b in raw])
    embed_s = time.perf_counter() - t0
    rows.append({"name": f"scale: device motion summary embedding (stored float16 -> float32), {embed_n} segments",
                 "sequences": embed_n, "embed_s": embed_s, "sequences_per_s": embed_n / embed_s,
                 "ratio_vs_transformer": (embed_n / embed_s) / rate})
    summary, steps = MotionSummary(20), 2000
    v, vis = rng.normal(size=(20 * 20, 2)).astype(np.float32), np.ones(20 * 20, bool)
    t0 = time.perf_counter()
    for _ in range(steps):
        summary.step(v, vis)
    rows.append({"name": "device: motion summary cost per frame (20x20 points -> 80 values)",
                 "us_per_frame": (time.perf_counter() - t0) / steps * 1e6})
    for n in sizes:
        out = work / f"scale-{n}.json"
        subprocess.run([sys.executable, "-m", "benchmarks.clustering", "--scale-worker", str(n), "--scale-out", str(out)],
                       check=True, cwd=Path(__file__).resolve().parents[1])
        r = json.loads(out.read_text())
        path = ("mini-batch, embeddings on disk" if r["on_disk"] else "mini-batch") if r["mini_batch"] else "in-memory"
        rows.append({"name": f"scale: cluster {n:,} embeddings (256-d, k=8, {path})",
                     "sequences": n, "cluster_s": r["seconds"], "peak_rss_mib": r["peak_rss_mib"],
                     "embeddings_mib": r["embeddings_mib"], "embed_s_at_measured_rate": n / rate})
    return rows


# --- main ----------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="950-959", help="HELD-OUT seeds, 950-999 (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=MINUTES)
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model directory ('none': velocity fallback)")
    p.add_argument("--ingest-messages", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--scales", default=",".join(str(s) for s in SCALES))
    p.add_argument("--embed-n", type=int, default=10000, help="sequences for the embedding throughput row")
    p.add_argument("--skip", default="", help="comma list of parts to skip: accuracy, real, ingest, scale")
    p.add_argument("--scale-worker", type=int, help=argparse.SUPPRESS)
    p.add_argument("--scale-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.scale_worker:
        scale_worker(args.scale_worker, 8, Path(args.scale_out))
        return 0
    from export.tokenizer.dataset import parse_seed_range

    seeds = parse_seed_range(args.seeds)
    if any(not 950 <= s <= 999 for s in seeds):
        raise SystemExit(f"seeds {args.seeds} are not all HELD-OUT seeds (950-999; 900-949 are retired)")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    model = Path(args.model) if args.model != "none" and (Path(args.model) / "manifest.json").is_file() else None
    rows: list[dict] = []
    work = Path(tempfile.mkdtemp(prefix="bench-clustering-"))
    lengths = np.array([20])
    desc = ""
    dim = None
    try:
        if "accuracy" not in skip:
            segments, oracle, stats, desc = held_out_segments(seeds, args.minutes, model)
            lengths = np.array([s.tokens.shape[0] for s in segments])
            dim = segments[0].tokens.shape[1]
            print(f"{len(segments)} held-out segments; labels: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(_count([s.label for s in segments]).items())), file=sys.stderr)
            rows += accuracy_rows(segments, stats, desc)
            # The same clustering on the true primitive spans: what the embedding reaches when
            # segmentation is perfect (separates segmentation error from embedding error).
            rows += accuracy_rows(oracle, stats, desc, what="oracle: true spans", choose_k=False)
            rows += ceiling_rows(segments, oracle, stats, seeds, args.minutes, model)
            rows += k_choice_rows(segments, oracle, stats)
        if "real" not in skip:
            rows += real_labelled_rows()
        if "ingest" not in skip:
            rows += ingest_rows(args.ingest_messages, args.repeats, work)
        if "scale" not in skip:
            sizes = [int(s) for s in args.scales.split(",") if s.strip()]
            rows += scale_rows(sizes, lengths, args.embed_n, work, dim)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table([{k: v for k, v in r.items() if k != "tokens"} for r in rows], title="central clustering and ingest")
    if desc:
        print(f"accuracy tokens: {desc}; seeds {args.seeds} (HELD-OUT), {args.minutes:g} min each")
    write_results("clustering", rows, extra={"seeds": args.seeds, "minutes": args.minutes, "tokens": desc,
                                             "model": str(model) if model else None})
    return 0


def _count(items: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


if __name__ == "__main__":
    raise SystemExit(main())
