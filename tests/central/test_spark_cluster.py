"""`laps-central cluster --engine spark`: a real local Spark session (local[2]) clusters stored
segments as the single-process run does: the same embeddings bit for bit, the same clusters, the
same run record. One session for the module (starting Spark takes seconds)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pyspark", reason="the [spark] extra is not installed (pip install 'laps-edge[spark]')")

from central.cli import main  # noqa: E402
from central.cluster_run import run_clustering  # noqa: E402
from central.clustering import ClusterOptions  # noqa: E402
from central.embedding import FrozenTransformerEmbedder  # noqa: E402
from central.ingest import validate_segment  # noqa: E402
from central.registry import ModelRegistry, add_model  # noqa: E402
from central.spark_cluster import check_spark_available, java_major, run_clustering_spark, spark_session  # noqa: E402
from central.store import Store  # noqa: E402
from central_testkit import make_segments, motif_motion, segment_payloads  # noqa: E402
from edge import evaluation  # noqa: E402
from edge.errors import ConfigError  # noqa: E402

pytestmark = pytest.mark.spark

#: small chunks so that the run spans several export files and several Spark tasks
CHUNK = 24


@pytest.fixture(scope="module")
def spark():
    with spark_session("local[2]", {"spark.sql.shuffle.partitions": "2"}) as session:
        yield session


@pytest.fixture(scope="module")
def both_runs(spark, tmp_path_factory, tiny_model_dir):
    """The same store clustered by both engines with the same options and seed:
    (store, single-process run, Spark run, truth)."""
    tmp = tmp_path_factory.mktemp("spark-runs")
    registry = ModelRegistry(add_model(tmp / "models", tiny_model_dir).parent)
    rng = np.random.default_rng(3)
    motifs = [rng.integers(0, 1920, size=3) for _ in range(4)]
    # Lengths 3-40: a chunk's Transformer batches mix lengths (padding), where float bits depend
    # on batch composition.
    codes = [np.resize(motifs[i % 4], int(rng.integers(3, 41))).tolist() for i in range(130)]
    codes[7] = []  # a velocity-energy segment (no codes): left out by both engines
    segments = make_segments(len(codes), codes=codes)
    truth = {s.segment_id: f"motif{i % 4}" for i, s in enumerate(segments)}
    store = Store(tmp / "c.sqlite")
    store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segments)], [])
    options = ClusterOptions(k_min=2, k_max=5, n_init=2, seed=5)
    single = run_clustering(store, registry, options=options, truth=truth, chunk_segments=CHUNK)
    on_spark = run_clustering_spark(store, registry, spark=spark, options=options, truth=truth,
                                    chunk_segments=CHUNK, workdir=tmp)
    yield store, single, on_spark, truth
    store.close()


def test_spark_embeddings_equal_the_single_process_ones_bit_for_bit(both_runs):
    _, single, on_spark, _ = both_runs
    assert on_spark.segment_ids == single.segment_ids and len(single.segment_ids) == 129
    assert on_spark.skipped_no_codes == single.skipped_no_codes == 1
    for m, res in single.results.items():
        assert on_spark.results[m].embedding_rows is None  # every row fits the scoring sample
        assert np.array_equal(on_spark.results[m].embeddings, res.embeddings), m


def test_the_motion_method_runs_on_spark_as_single_process(spark, tmp_path, tiny_model_dir):
    registry = ModelRegistry(add_model(tmp_path / "models", tiny_model_dir).parent)
    rng = np.random.default_rng(8)
    segments = make_segments(70, seed=8)
    for i, s in enumerate(segments):
        s.motion = motif_motion(i % 3, rng) if i % 10 else None  # every tenth from an older device
    with Store(tmp_path / "c.sqlite") as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segments)], [])
        options = ClusterOptions(k=3, n_init=2, seed=2)
        single = run_clustering(store, registry, methods=("motion",), options=options, chunk_segments=CHUNK,
                                save=False)
        on_spark = run_clustering_spark(store, registry, spark=spark, methods=("motion",), options=options,
                                        chunk_segments=CHUNK, workdir=tmp_path, save=False)
    assert on_spark.skipped_no_motion == single.skipped_no_motion == 7
    assert on_spark.segment_ids == single.segment_ids and len(single.segment_ids) == 63
    assert np.array_equal(on_spark.results["motion"].embeddings, single.results["motion"].embeddings)
    labels = single.results["motion"].clustering.labels
    assert evaluation.ari(labels, on_spark.results["motion"].clustering.labels) == pytest.approx(1.0)
    assert evaluation.ari(labels, [i % 3 for i in range(70) if i % 10]) == pytest.approx(1.0)  # the motifs


def test_batch_composition_changes_float_bits_so_the_chunking_matters(tiny_model_dir):
    # Why the Spark engine embeds whole store chunks: the same sequences batched otherwise differ.
    registry = ModelRegistry(tiny_model_dir.parent)
    version = registry.versions[0]
    rng = np.random.default_rng(0)
    seqs = [registry.z_q(rng.integers(0, 1920, size=int(n)), version) for n in rng.integers(3, 41, size=60)]
    emb = FrozenTransformerEmbedder(registry.latent_dim(version), input_mean=registry.codebook_stats(version)[0],
                                    input_std=registry.codebook_stats(version)[1])
    whole = emb.embed(seqs)
    one_by_one = np.concatenate([emb.embed([s]) for s in seqs])
    assert not np.array_equal(whole, one_by_one)
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)


def test_spark_finds_the_same_k_and_the_same_clusters(both_runs):
    _, single, on_spark, _ = both_runs
    for m, res in single.results.items():
        got = on_spark.results[m]
        assert got.clustering.k == res.clustering.k, m
        # Spark's Summarizer sums in another order than NumPy: mean/std agree to ~1e-16, so a
        # normalised value may differ in its last float32 bit, and silhouettes in the 7th digit.
        assert [k for k, _ in got.clustering.k_curve] == [k for k, _ in res.clustering.k_curve]
        np.testing.assert_allclose([v for _, v in got.clustering.k_curve], [v for _, v in res.clustering.k_curve],
                                   rtol=1e-5)
        assert evaluation.ari(res.clustering.labels, got.clustering.labels) == pytest.approx(1.0), m
        np.testing.assert_allclose(got.clustering.distances, res.clustering.distances, atol=1e-4)
        np.testing.assert_allclose(got.clustering.mean, res.clustering.mean, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.clustering.std, res.clustering.std, rtol=1e-9)
        for score in ("silhouette_cosine", "calinski_harabasz", "davies_bouldin", "nmi", "ari"):
            assert got.metrics[score] == pytest.approx(res.metrics[score], rel=1e-4), (m, score)
    assert single.primary.metrics["nmi"] > 0.7  # the motifs are found, so agreement is not luck


def test_the_spark_run_is_recorded_like_a_single_process_run(both_runs):
    store, single, on_spark, _ = both_runs
    runs = {r["run_id"]: r for r in store.cluster_runs()}
    a, b = runs[single.run_id], runs[on_spark.run_id]
    for key in ("model_version", "method", "k", "n_segments"):
        assert a[key] == b[key], key
    assert set(a["params"]) == set(b["params"]) and set(a["metrics"]) == set(b["metrics"])
    assert a["params"]["engine"] == "single-process" and b["params"]["engine"] == "spark local[2]"
    ids = single.segment_ids
    got_a, got_b = store.assignments(a["run_id"], ids), store.assignments(b["run_id"], ids)
    assert evaluation.ari([got_a[s][0] for s in ids], [got_b[s][0] for s in ids]) == pytest.approx(1.0)


def test_cli_engine_spark_writes_the_report_and_the_run(spark, configured_central, tmp_path, capsys):
    cfg_path = configured_central(40)
    out = tmp_path / "report"
    assert main(["cluster", "--config", str(cfg_path), "--out", str(out), "--k", "3", "--n-init", "2",
                 "--methods", "transformer,mean", "--engine", "spark", "--master", "local[2]",
                 "--work-dir", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "k = 3 with transformer on spark local[2]" in printed and (out / "report.html").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("laps-cluster-spark-")]  # work folder removed


def test_a_bad_spark_conf_is_a_one_line_error(configured_central, tmp_path, capsys):
    cfg_path = configured_central(10)
    assert main(["cluster", "--config", str(cfg_path), "--out", str(tmp_path / "r"), "--engine", "spark",
                 "--spark-conf", "driver.memory", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--spark-conf" in err and "spark.driver.memory=8g" in err and "\n" not in err


def test_missing_java_is_a_one_line_error_naming_the_package(configured_central, tmp_path, capsys, monkeypatch):
    cfg_path = configured_central(10)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    assert main(["cluster", "--config", str(cfg_path), "--out", str(tmp_path / "r"), "--engine", "spark",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "openjdk-17-jre-headless" in err and "JAVA_HOME" in err and "\n" not in err


def test_missing_pyspark_is_an_error_naming_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'laps-edge\[spark\]'"):
        check_spark_available()


@pytest.mark.parametrize("text, major", [
    ('openjdk version "17.0.15" 2025-04-15', 17), ('java version "1.8.0_392"', 8),
    ('openjdk version "21" 2023-09-19', 21), ("no version here", None),
])
def test_the_java_major_version_is_read_from_java_version_output(text, major):
    assert java_major(text) == major


@pytest.mark.postgres
def test_spark_clusters_a_postgresql_store_like_the_single_process_run(spark, postgres_server, tmp_path,
                                                                       registry_dir):
    from central.config import StoreConfig
    from central.store_protocol import open_store

    registry = ModelRegistry(registry_dir)
    rng = np.random.default_rng(4)
    motifs = [rng.integers(0, 1920, size=3) for _ in range(3)]
    segments = make_segments(60, codes=[np.resize(motifs[i % 3], int(rng.integers(3, 30))).tolist() for i in range(60)])
    url = postgres_server.create_database()
    try:
        with open_store(StoreConfig(url=url, pool_size=2)) as store:
            store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segments)], [])
            options = ClusterOptions(k=3, n_init=2)
            single = run_clustering(store, registry, methods=("transformer",), options=options, chunk_segments=CHUNK)
            on_spark = run_clustering_spark(store, registry, spark=spark, methods=("transformer",), options=options,
                                            chunk_segments=CHUNK, workdir=tmp_path)
            assert np.array_equal(on_spark.primary.embeddings, single.primary.embeddings)
            assert evaluation.ari(single.primary.clustering.labels, on_spark.primary.clustering.labels) == pytest.approx(1.0)
            assert {r["run_id"] for r in store.cluster_runs()} == {single.run_id, on_spark.run_id}
    finally:
        postgres_server.drop_database(url)
