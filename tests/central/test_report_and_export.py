"""A clustering run over stored segments, its HTML report, and the Parquet/JSONL dataset."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from central.cluster_run import run_clustering
from central.clustering import ClusterOptions
from central.dataset_export import SCHEMA_NAME, arrow_schema, export_dataset
from central.registry import ModelRegistry
from central.report import write_report
from central.store import Selection, Store
from central_testkit import MODEL_VERSION
from edge.errors import ConfigError
from library_data import fill_store

#: the documented schema (central/dataset_export.py, README): name -> Arrow type
DOCUMENTED = {
    "segment_id": pa.string(), "cluster_id": pa.int32(), "cluster_distance": pa.float32(), "run_id": pa.string(),
    "site": pa.string(), "device_id": pa.string(), "model_version": pa.string(), "boot_id": pa.string(),
    "seq": pa.int64(), "start_utc": pa.timestamp("ms", tz="UTC"), "end_utc": pa.timestamp("ms", tz="UTC"),
    "start_frame": pa.int64(), "end_frame": pa.int64(), "fps": pa.float32(), "duration_s": pa.float64(),
    "codes": pa.list_(pa.int32()), "energy_mean": pa.float64(), "energy_max": pa.float64(),
    "keyframe_frames": pa.list_(pa.int32()), "keyframe_paths": pa.list_(pa.string()), "clip_path": pa.string(),
}


@pytest.fixture
def library(tmp_path, registry_dir):
    store = Store(tmp_path / "c.sqlite")
    media = tmp_path / "media"
    truth = fill_store(store, media, tmp_path / "spool")
    run = run_clustering(store, ModelRegistry(registry_dir), options=ClusterOptions(k_min=2, k_max=5, n_init=4),
                         truth=truth)
    yield store, media, run, truth
    store.close()


def test_every_method_is_scored_in_one_run_with_the_laps_clustering_saved(library):
    store, _, run, _ = library
    assert list(run.results) == ["transformer", "mean", "norm_weighted"]
    for r in run.results.values():
        assert {"silhouette_cosine", "calinski_harabasz", "davies_bouldin", "nmi", "ari",
                "hungarian_accuracy"} <= set(r.metrics)
    saved = store.cluster_runs()[0]
    assert saved["run_id"] == run.run_id and saved["method"] == "transformer"
    assert set(saved["metrics"]) == {"transformer", "mean", "norm_weighted"}
    assert saved["params"]["k_curve"]


def test_three_motifs_are_found_as_three_primitives(library):
    _, _, run, _ = library
    assert run.primary.clustering.k == 3
    assert run.primary.metrics["nmi"] > 0.9


def test_the_report_is_one_html_file_with_its_figures(library, tmp_path):
    store, media, run, _ = library
    html = write_report(run, tmp_path / "report", store=store, media_dir=media)
    text = html.read_text()
    figures = tmp_path / "report" / "figures"
    for name in ("k_curve.png", "map.png", "sizes.png", "cluster_00_montage.png", "cluster_00_durations.png"):
        assert (figures / name).stat().st_size > 1000
        assert f"figures/{name}" in text
    assert "LAPS: frozen Transformer" in text and "baseline: norm-weighted pooling" in text
    assert text.count("<section>") == run.primary.clustering.k


def test_montages_show_uploaded_keyframes_and_say_when_there_are_none(library, tmp_path):
    store, media, run, _ = library
    with_pictures = write_report(run, tmp_path / "a", store=store, media_dir=media).read_text()
    without = write_report(run, tmp_path / "b").read_text()
    assert "No keyframes were uploaded" not in with_pictures
    assert without.count("No keyframes were uploaded") == run.primary.clustering.k


def test_the_parquet_export_has_the_documented_schema_and_one_row_per_segment(library, tmp_path):
    store, media, run, _ = library
    info = export_dataset(store, media, tmp_path / "ds")
    table = pq.read_table(tmp_path / "ds" / "segments.parquet")
    assert {f.name: f.type for f in table.schema} == DOCUMENTED
    assert table.schema.metadata[b"laps.schema"].decode() == SCHEMA_NAME
    assert table.num_rows == info["rows"] == store.count()
    rows = {r["segment_id"]: r for r in table.to_pylist()}
    saved = store.assignments(run.run_id, list(rows))
    assert all(rows[s]["cluster_id"] == c for s, (c, _) in saved.items())
    some = next(r for r in rows.values() if r["keyframe_paths"])
    assert (media / some["keyframe_paths"][0]).is_file() and len(some["keyframe_frames"]) == 2
    assert all(r["model_version"] == MODEL_VERSION and r["codes"] for r in rows.values())


def test_the_jsonl_export_holds_the_same_records(library, tmp_path):
    store, media, _, _ = library
    export_dataset(store, media, tmp_path / "ds", formats=("jsonl",), absolute_paths=True)
    lines = (tmp_path / "ds" / "segments.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == store.count()
    assert set(records[0]) == set(DOCUMENTED)
    assert records[0]["start_utc"].endswith("Z")
    pictured = [r for r in records if r["keyframe_paths"]]
    assert pictured and all(p.startswith(str(media.resolve())) for p in pictured[0]["keyframe_paths"])
    meta = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert meta["schema"] == SCHEMA_NAME and sum(meta["cluster_sizes"].values()) == len(records)


def test_the_arrow_schema_function_is_the_documented_schema():
    assert {f.name: f.type for f in arrow_schema()} == DOCUMENTED


def test_a_store_without_runs_tells_how_to_make_one(tmp_path):
    with Store(tmp_path / "empty.sqlite") as store, pytest.raises(ConfigError, match="laps-central cluster"):
        export_dataset(store, tmp_path, tmp_path / "out")


def test_large_selections_switch_to_disk_backed_mini_batch_clustering(tmp_path, registry_dir):
    with Store(tmp_path / "c.sqlite") as store:
        truth = fill_store(store, tmp_path / "media", tmp_path / "spool", n=90)
        run = run_clustering(store, ModelRegistry(registry_dir), Selection(), methods=("transformer",),
                             options=ClusterOptions(k=3, n_init=4, chunk_rows=32), truth=truth,
                             memory_budget_bytes=1024, save=False)
        assert run.primary.clustering.mini_batch
        assert run.primary.metrics["nmi"] > 0.9
        assert not list(tmp_path.glob("laps-cluster-*"))  # the work folder is gone


def test_statistics_pooling_runs_as_a_method_of_its_own_and_is_named_in_the_report(tmp_path, registry_dir):
    with Store(tmp_path / "s.sqlite") as store:
        truth = fill_store(store, tmp_path / "media", tmp_path / "spool")
        run = run_clustering(store, ModelRegistry(registry_dir), methods=("statistics", "mean"),
                             options=ClusterOptions(k=3, n_init=4), truth=truth)
        stats = run.results["statistics"]
        assert stats.embeddings.shape[1] == 5 * ModelRegistry(registry_dir).latent_dim(run.model_version) + 1
        assert stats.metrics["nmi"] > 0.5  # the three motifs are told apart
        d = run.results["mean"].embeddings.shape[1]
        assert np.allclose(stats.embeddings[:, :d], run.results["mean"].embeddings, atol=1e-5)  # same z_q, same order
        html = write_report(run, tmp_path / "r", store=store).read_text()
        assert "statistics pooling" in html
