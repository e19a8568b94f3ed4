"""Fixtures of the central tests: a REAL Mosquitto (the service tests' helper, reused), a REAL
PostgreSQL server (tests/postgres_server.py), the store on either backend, a real tiny tokenizer
model directory in a registry, and a QoS 1 publisher (see central_testkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from central_testkit import MODEL_VERSION, Mosquitto, Publisher
from tests.service.conftest import subscriber_factory  # noqa: F401 - the service tests' fixture, shared


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def postgres_server():
    """One PostgreSQL server for the session (each test gets a database of its own); skipped,
    with the reason, where no PostgreSQL binaries or no psycopg are installed."""
    from tests.postgres_server import MISSING, PostgresServer, find_binaries

    bindir = find_binaries()
    if bindir is None:
        pytest.skip(MISSING)
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")
    server = PostgresServer(bindir).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_config(request, tmp_path):
    """A [store] section on each backend in turn: a SQLite file, or a fresh PostgreSQL database.
    The store tests take it (or `store`) to run once per backend: one suite, two implementations."""
    from central.config import StoreConfig

    if request.param == "sqlite":
        yield StoreConfig(path=str(tmp_path / "c.sqlite"))
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield StoreConfig(url=url, pool_size=4)
    server.drop_database(url)


@pytest.fixture
def store(store_config):
    """The store of `store_config`, open (closed after the test)."""
    from central.store_protocol import open_store

    with open_store(store_config) as s:
        yield s


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A real model directory (ONNX encoder, FSQ projection in the manifest, calibration) of a
    tiny untrained tokenizer: 160x120 frames, a 4x4 grid, T = 6, FSQ levels [8, 8, 6, 5]."""
    import torch

    from edge.calibration_file import CalibrationFile
    from edge.energy import HysteresisParams
    from export.tokenizer.model import MotionTokenizer, TokenizerConfig
    from export.tokenizer.onnx import write_model_directory
    from export.tokenizer.windows import DataConventions

    conv = DataConventions(fps=10.0, window=6, grid=4, input_size=(160, 120), velocity_scale_px=2.0,
                           max_displacement_px=3)
    torch.manual_seed(0)
    cfg = TokenizerConfig.from_preset("small", steps=conv.steps, n_points=conv.n_points,
                                      max_displacement_px=conv.max_displacement_px, d_model=32, n_heads=2,
                                      n_layers=1, point_embed_dim=8, decoder_hidden=16)
    model = MotionTokenizer(cfg)
    with torch.no_grad():
        model.fsq.project_in.weight.mul_(40.0)  # spread latents so motion visits many codes
    out = tmp_path_factory.mktemp("models") / "tiny"
    # theta_on picked from this model's energy on a synthetic clip (median 0.11, p90 0.26).
    params = HysteresisParams(theta_on=0.12, min_steps=3)
    write_model_directory(model.eval(), conv, out, model_version=MODEL_VERSION,
                          calibration=CalibrationFile(params, model_version=MODEL_VERSION))
    return out


@pytest.fixture
def registry_dir(tmp_path, tiny_model_dir) -> Path:
    from central.registry import add_model

    root = tmp_path / "models"
    add_model(root, tiny_model_dir)
    return root


@pytest.fixture
def publisher(broker):
    p = Publisher(broker.port)
    yield p
    p.close()


@pytest.fixture
def configured_central(tmp_path, registry_dir):
    """configured_central(n) -> the path of a central config whose store holds `n` library
    segments with keyframes (no broker contacted)."""
    from central.config import load_central_config
    from central.store import Store
    from central_testkit import write_central_config
    from library_data import fill_store

    def make(n: int) -> Path:
        cfg_path = write_central_config(tmp_path / "central.toml", port=1883, data_dir=tmp_path / "data",
                                        models_dir=registry_dir)
        cfg = load_central_config(cfg_path)
        with Store(cfg.store.path) as store:
            fill_store(store, cfg.media_dir, tmp_path / "spool", n=n)
        return cfg_path

    return make
