"""The model registry: codes back to z_q with the version's own FSQ projection."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from central.registry import ModelRegistry, UnknownModelError, add_model
from central_testkit import MODEL_VERSION
from edge.errors import ModelError
from edge.model import load_model_directory
from edge.tokenizer import FSQ


def test_the_registry_indexes_model_directories_by_their_model_version(registry_dir):
    assert ModelRegistry(registry_dir).versions == [MODEL_VERSION]


def test_codes_become_the_same_z_q_the_device_computes(registry_dir, tiny_model_dir):
    meta = load_model_directory(tiny_model_dir).metadata
    fsq = FSQ(meta.fsq_levels, *meta.fsq_projection())
    codes = np.array([0, 5, 1919, 640])
    z = ModelRegistry(registry_dir).z_q(codes, MODEL_VERSION)
    assert z.shape == (4, meta.d_model) and z.dtype == np.float32
    assert np.array_equal(z, fsq.z_q_from_codes(codes))


def test_an_unknown_version_names_the_versions_the_registry_holds(registry_dir):
    with pytest.raises(UnknownModelError, match=f"holds: {MODEL_VERSION}"):
        ModelRegistry(registry_dir).z_q([1, 2], "v999")


def test_a_code_outside_the_codebook_is_refused(registry_dir):
    with pytest.raises(ModelError, match="code 1920 is outside the codebook"):
        ModelRegistry(registry_dir).z_q([3, 1920], MODEL_VERSION)


def test_a_tampered_model_directory_is_skipped_with_its_reason(registry_dir, tiny_model_dir):
    bad = registry_dir / "tampered"
    shutil.copytree(tiny_model_dir, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["model"]["model_version"] = "other"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    (bad / "tokenizer.onnx").write_bytes(b"not the exported encoder")
    registry = ModelRegistry(registry_dir)
    assert registry.versions == [MODEL_VERSION]
    assert "tokenizer.onnx" in registry.skipped[str(bad)]


def test_two_directories_claiming_one_version_are_refused(registry_dir, tiny_model_dir):
    shutil.copytree(tiny_model_dir, registry_dir / "copy")
    with pytest.raises(ModelError, match="both claim"):
        ModelRegistry(registry_dir)


def test_adding_the_same_version_twice_is_refused(registry_dir, tiny_model_dir):
    with pytest.raises(ModelError, match="already holds"):
        add_model(registry_dir, tiny_model_dir)


def test_codebook_statistics_cover_every_code_once(registry_dir):
    registry = ModelRegistry(registry_dir)
    mean, std = registry.codebook_stats(MODEL_VERSION)
    z = registry.z_q(np.arange(1920), MODEL_VERSION)
    np.testing.assert_allclose(mean, z.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(std, z.std(axis=0), rtol=1e-4)


# -- the registry fills itself ------------------------------------------------------------------------
def test_the_ingest_registers_the_shipped_model_when_it_starts(tmp_path):
    import threading

    from central.config import load_central_config
    from central.ingest import run_ingest
    from central.registry import shipped_model_version
    from central_testkit import free_port, write_central_config

    cfg = load_central_config(write_central_config(tmp_path / "central.toml", port=free_port(),
                                                   data_dir=tmp_path / "data"))
    stop = threading.Event()
    stop.set()  # start, register, stop: no broker needed for that
    assert run_ingest(cfg, http=False, stop_event=stop) == 0
    assert ModelRegistry(cfg.paths.models_dir).versions == [shipped_model_version()]


def test_registering_a_version_twice_leaves_the_first_copy(registry_dir, tiny_model_dir):
    from central.registry import register_model

    assert register_model(registry_dir, tiny_model_dir) == (MODEL_VERSION, None)
    assert ModelRegistry(registry_dir).versions == [MODEL_VERSION]


def test_an_unknown_version_says_which_command_adds_it(registry_dir):
    with pytest.raises(UnknownModelError) as err:
        ModelRegistry(registry_dir).model("site-b-7")
    text = str(err.value)
    assert "\n" not in text
    assert "laps-central models add PATH --config" in text and "model_version 'site-b-7'" in text


@pytest.mark.broker
def test_a_rollout_registers_the_bundle_it_rolls_out(broker, tmp_path, tiny_model_dir):
    import subprocess
    import sys

    from central.config import load_central_config
    from central_testkit import write_central_config
    from export.bundle import build_bundle, keygen, sign_bundle

    key, _ = keygen(tmp_path / "keys" / "release")
    bundle = build_bundle(tiny_model_dir, tiny_model_dir / "calibration.json", tmp_path / "bundle-2", version=2)
    sign_bundle(bundle, key)
    cfg_path = write_central_config(tmp_path / "central.toml", port=broker.port, data_dir=tmp_path / "data")
    proc = subprocess.run([sys.executable, "-m", "central.cli", "rollout", "start", "--config", str(cfg_path),
                           "--bundle", str(bundle), "--devices", "site-a/nobody", "--device-timeout", "0.3",
                           "--min-devices", "1", "--max-failure-rate", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr[-2000:]  # nobody commits: aborted, as planned
    assert f"added model version {MODEL_VERSION}" in proc.stdout
    assert MODEL_VERSION in ModelRegistry(load_central_config(cfg_path).paths.models_dir)
