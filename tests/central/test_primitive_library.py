"""The loop back to the device: a clustering run's primitive library ships in the model
directory, the device labels its segments with it exactly as central assigned them, and the
label comes back in the segment message into the store."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from central.cli import main
from central.cluster_run import run_clustering
from central.clustering import ClusterOptions
from central.config import load_central_config
from central.library_export import export_library
from central.registry import ModelRegistry
from central.store import Store
from central_testkit import MODEL_VERSION, segment_payloads, wait_until
from edge.errors import ModelError
from edge.loop import run_stream
from edge.model import LIBRARY_NAME, load_model_directory, update_manifest
from edge.pipeline import build_pipeline
from edge.primitive_library import PrimitiveLibrary
from edge.sources.factory import open_source
from edge.tokenizer import FSQ

#: the synthetic clip of the central end-to-end test (the tiny model segments it)
CLIP = "synthetic://assembly?seed=901&minutes=0.5&size=320x240"


@pytest.fixture
def clustered(configured_central, tmp_path):
    """clustered(methods, k) -> (config, registry, run id, exported model directory): a real
    clustering run over 60 stored segments, exported as a model directory with its library."""

    def make(methods: tuple[str, ...] = ("transformer",), k: int | None = 3):
        cfg = load_central_config(configured_central(60))
        registry = ModelRegistry(cfg.paths.models_dir)
        with Store(cfg.store.path) as store:
            run = run_clustering(store, registry, methods=methods, options=ClusterOptions(k=k, n_init=3),
                                 save_rule="best")
            model = export_library(store, registry, tmp_path / "with-library", run_id=run.run_id)
        return cfg, registry, run.run_id, model

    return make


def test_library_round_trips_through_its_file(clustered, tmp_path):
    _, _, run_id, model = clustered()
    lib = model.library
    assert lib is not None and lib.library_id == run_id and lib.model_version == MODEL_VERSION
    back = PrimitiveLibrary.read(lib.write(tmp_path / "copy.npz"))
    assert back.header() == lib.header()
    for name in ("centers", "feature_mean", "feature_std", "token_mean", "token_std"):
        assert np.array_equal(getattr(back, name), getattr(lib, name)), name
    assert back.centers.dtype == np.float32 and back.feature_mean.dtype == np.float64


@pytest.mark.parametrize("methods, k", [(("transformer",), 3), (("transformer",), None), (("mean",), 3),
                                        (("norm_weighted",), None), (("statistics",), 3)])
def test_device_labels_equal_the_runs_assignments(clustered, methods, k):
    cfg, registry, run_id, model = clustered(methods, k)
    meta = model.metadata
    fsq = FSQ(meta.fsq_levels, *meta.fsq_projection())  # the device's own FSQ, from the shipped manifest
    lib = load_model_directory(model.path).library  # read back from the written files, as a device does
    with Store(cfg.store.path) as store:
        segments = store.segments()
        central = store.assignments(run_id, [s.segment_id for s in segments])
    assert len(central) == len(segments) == 60
    device = {s.segment_id: lib.label_codes(s.codes, fsq) for s in segments}
    assert {sid: lab.cluster for sid, lab in device.items()} == {sid: c for sid, (c, _) in central.items()}
    worst = max(abs(device[sid].distance - d) for sid, (_, d) in central.items())
    assert worst < 1e-5
    assert {lab.library for lab in device.values()} == {run_id}


def test_a_damaged_library_file_is_a_one_line_error(clustered, tmp_path):
    _, _, _, model = clustered()
    broken = tmp_path / "broken.npz"
    raw = (model.path / LIBRARY_NAME).read_bytes()
    broken.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelError, match="damaged or not a library") as err:
        PrimitiveLibrary.read(broken)
    assert "\n" not in str(err.value) and "laps-central library export" in str(err.value)
    # In a model directory the manifest's hash refuses it before anything reads it.
    shutil.copy(broken, model.path / LIBRARY_NAME)
    with pytest.raises(ModelError, match="primitives.npz"):
        load_model_directory(model.path)


def test_a_library_of_another_model_is_refused_with_the_fix(clustered):
    _, _, _, model = clustered()
    other = dataclasses.replace(model.library, model_version="some-other-tokenizer")
    other.write(model.path)
    with pytest.raises(ModelError, match="made for model 'some-other-tokenizer'"):
        update_manifest(model.path)  # re-hashed, so only the model check stands in the way
    with pytest.raises(ModelError, match="made for model 'some-other-tokenizer'") as err:
        load_model_directory(model.path)
    assert "\n" not in str(err.value) and "export the library from a clustering run of" in str(err.value)


def test_centres_that_do_not_fit_the_embedding_are_refused(clustered):
    _, _, _, model = clustered()
    with pytest.raises(ModelError, match="centres of shape"):
        dataclasses.replace(model.library, centers=model.library.centers[:, :10])


def test_library_export_cli_writes_a_model_directory_and_refuses_bad_input(configured_central, tmp_path, capsys):
    cfg_path = configured_central(60)
    assert main(["cluster", "--config", str(cfg_path), "--out", str(tmp_path / "report"), "--k", "3",
                 "--n-init", "2", "--methods", "transformer", "--quiet"]) == 0
    out = tmp_path / "model"
    assert main(["library", "export", "--config", str(cfg_path), "--out", str(out), "--name", "1=reach"]) == 0
    assert "3 primitives" in capsys.readouterr().out
    lib = load_model_directory(out).library
    assert lib.names == ("", "reach", "")
    assert main(["library", "export", "--config", str(cfg_path), "--out", str(out)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["library", "export", "--config", str(cfg_path), "--out", str(tmp_path / "m2"), "--name", "7=x"]) == 2
    assert "clusters 0-2" in capsys.readouterr().err
    assert main(["library", "export", "--config", str(cfg_path), "--out", str(tmp_path / "m3"), "--run", "nope"]) == 2
    assert "is not in" in capsys.readouterr().err


@pytest.mark.broker
def test_run_to_library_to_device_to_ingest_carries_the_label_end_to_end(clustered, broker, publisher, tmp_path):
    from central.config import MqttConfig
    from central.ingest import IngestWorker

    _, registry, run_id, model = clustered()
    # The device: the exported model directory, a synthetic video, the one pipeline loop.
    pipe = build_pipeline(str(model.path), providers="cpu", keep_keyframes=False)
    segments = [s for s in run_stream(open_source(CLIP, fps=pipe.fps, size=pipe.input_size), pipe) if s.codes]
    assert len(segments) >= 2
    assert all(s.primitive is not None and s.primitive.library == run_id for s in segments)
    # Each label is the one central computes from the same codes with its registry's z_q.
    for s in segments:
        cluster, distance = model.library.label(registry.z_q(s.codes, MODEL_VERSION))
        assert (s.primitive.cluster, s.primitive.distance) == pytest.approx((cluster, distance), abs=1e-6)
    # Through a real broker into the central ingest.
    store = Store(tmp_path / "fleet.sqlite")
    worker = IngestWorker(MqttConfig(host="127.0.0.1", port=broker.port, keepalive=2), store)
    worker.start()
    try:
        assert worker.wait_subscribed(10.0)
        publisher.publish_all(segment_payloads(segments, device="ws-1"))
        assert wait_until(lambda: store.count() == len(segments), 15.0)
        stored = {s.segment_id: s.primitive for s in store.segments()}
        assert stored == {s.segment_id: s.primitive for s in segments}
    finally:
        worker.stop()
        store.close()


def test_the_dashboard_segment_page_shows_the_devices_label(configured_central, tmp_path):
    from central.dashboard import Dashboard
    from central.ingest import validate_segment
    from central_testkit import make_segments
    from edge.segments import PrimitiveLabel

    cfg = load_central_config(configured_central(4))
    seg = make_segments(1, seed=9)[0]
    seg.primitive = PrimitiveLabel("run-xyz", 5, 0.125)
    with Store(cfg.store.path) as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads([seg], device="dev-9")], [])
    dash = Dashboard(cfg, port=0).start()  # stop() waits for the serving loop, so it must have started
    try:
        page = dash.segment_page(seg.segment_id)
    finally:
        dash.stop()
    assert "primitive (the device&#x27;s label)" in page or "primitive (the device's label)" in page
    assert "cluster 5, distance 0.125, library run-xyz" in page


def test_runs_json_leaves_out_the_centres(configured_central, tmp_path, capsys):
    import json

    cfg_path = configured_central(60)
    assert main(["cluster", "--config", str(cfg_path), "--out", str(tmp_path / "r"), "--k", "3", "--n-init", "2",
                 "--methods", "mean", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["runs", "--config", str(cfg_path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.splitlines()[0])
    assert listed["k"] == 3 and "primitives" not in listed["params"]
