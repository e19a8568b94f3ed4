"""The cluster report explains itself: what each cluster is (size, typical duration, where the
motion is, its central members animated), which clusters are implausibly short, what the
montage rows are, and why the saved method was saved."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
from PIL import Image

from central.batches import receive_batch
from central.cluster_run import run_clustering
from central.clustering import ClusterOptions
from central.ingest import validate_segment
from central.registry import ModelRegistry
from central.report import write_report
from central.store import Store
from central_testkit import make_segments, segment_payloads
from edge.upload import BatchSpool

#: short blips (3-4 steps = 0.3-0.4 s) moving in the top left; long motions in the bottom right
SHORT, LONG = [7, 900, 1800], [300, 301, 1900, 1200, 55]


def _frame(x: int, y: int) -> bytes:
    img = np.full((120, 160, 3), 90, np.uint8)
    cv2.circle(img, (x, y), 9, (0, 0, 255), -1)
    return cv2.imencode(".jpg", img)[1].tobytes()


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_model_dir):
    from central.registry import add_model

    root = tmp_path_factory.mktemp("explained")
    add_model(root / "models", tiny_model_dir)
    rng = np.random.default_rng(3)
    n = 24
    kinds = ["short" if i % 2 else "long" for i in range(n)]
    codes = [np.resize(SHORT if k == "short" else LONG, int(rng.integers(3, 5) if k == "short" else rng.integers(12, 18)))
             .tolist() for k in kinds]
    segments = make_segments(n, codes=codes, keyframes=3)
    store = Store(root / "c.sqlite")
    store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segments)], [])
    spool = BatchSpool(root / "spool", device_id="dev-1", site="site-a")
    for s, k in zip(segments, kinds):
        # the blob moves 12 px a keyframe: top left for the short kind, bottom right for the long
        x0, y0 = (20, 20) if k == "short" else (110, 85)
        spool.add_segment(s.segment_id, {f: _frame(x0 + 12 * j, y0 + 6 * j) for j, f in enumerate(s.keyframes)})
    batch = spool.seal()
    receive_batch(store, root / "media", "dev-1", batch.sha256, batch.path)
    registry = ModelRegistry(root / "models")
    laps = run_clustering(store, registry, options=ClusterOptions(k=2, n_init=4), save=False)
    best = run_clustering(store, registry, options=ClusterOptions(k=2, n_init=4), save_rule="best")
    yield store, root, laps, best, dict(zip((s.segment_id for s in segments), kinds))
    store.close()


def _cluster_of(run, kinds, kind: str) -> int:
    labels = [int(c) for sid, c in zip(run.segment_ids, run.primary.clustering.labels) if kinds[sid] == kind]
    return max(set(labels), key=labels.count)


def test_each_cluster_says_its_size_typical_duration_and_where_it_moves(library, tmp_path):
    store, root, run, _, kinds = library
    page = write_report(run, tmp_path / "r", store=store, media_dir=root / "media").read_text()
    short, long = _cluster_of(run, kinds, "short"), _cluster_of(run, kinds, "long")
    heading = {int(c): h for c, h in re.findall(r"<h3 id='cluster-(\d+)'>(.*?)</h3>", page)}
    assert re.search(r"12 segments, typically 0\.\d s, motion in the top left", heading[short]), heading[short]
    assert re.search(r"12 segments, typically 1\.\d s, motion in the bottom right", heading[long]), heading[long]
    assert (tmp_path / "r" / "figures" / f"cluster_{short:02d}_motion.png").is_file()


def test_a_cluster_of_implausibly_short_segments_is_flagged_and_no_other(library, tmp_path):
    store, root, run, _, kinds = library
    page = write_report(run, tmp_path / "r", store=store, media_dir=root / "media").read_text()
    short = _cluster_of(run, kinds, "short")
    sections = dict(re.findall(r"<h3 id='cluster-(\d+)'>.*?</h3>(.*?)</section>", page, re.S))
    assert "Implausibly short" in sections[str(short)]
    assert [c for c, body in sections.items() if "Implausibly short" in body] == [str(short)]
    assert f"<a href='#cluster-{short}'>cluster {short}</a>" in page  # named in "At a glance"


def test_central_members_are_animated_strips_not_still_frames(library, tmp_path):
    store, root, run, _, _ = library
    page = write_report(run, tmp_path / "r", store=store, media_dir=root / "media").read_text()
    animations = re.findall(r'src="figures/(cluster_\d+_member_\d+\.(?:webp|gif))"', page)
    assert len(animations) == 2 * 4
    for name in animations:
        with Image.open(tmp_path / "r" / "figures" / name) as img:
            assert img.is_animated and img.n_frames == 3


def test_the_montage_rows_are_explained(library, tmp_path):
    store, root, run, _, _ = library
    page = write_report(run, tmp_path / "r", store=store, media_dir=root / "media").read_text()
    assert "<i>centre</i> rows are the central members" in page and "<i>random</i> rows are members drawn at random" in page


def test_the_report_says_why_the_laps_method_was_saved_and_how_to_save_the_best(library, tmp_path):
    store, root, run, _, _ = library
    page = write_report(run, tmp_path / "r", store=store, media_dir=root / "media").read_text()
    why = re.search(r"<p class='why'>(.*?)</p>", page, re.S).group(1)
    assert "Saved: LAPS: frozen Transformer" in why and "--save-method best" in why


def test_save_method_best_saves_the_best_silhouette_and_says_so(library, tmp_path):
    store, root, _, best, _ = library
    sil = {m: r.metrics["silhouette_cosine"] for m, r in best.results.items()}
    assert best.primary.method == max(sil, key=sil.get)
    assert store.cluster_runs()[0]["method"] == best.primary.method
    page = write_report(best, tmp_path / "r", store=store, media_dir=root / "media").read_text()
    assert "the best cosine silhouette" in re.search(r"<p class='why'>(.*?)</p>", page, re.S).group(1)
