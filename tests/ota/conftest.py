"""Fixtures of the OTA tests: Ed25519 keys, signed bundles of the default model, a real
Mosquitto, a real bundle server on loopback, a status subscriber (see ota_testkit.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ota_testkit import DesiredPublisher, Mosquitto, Subscriber, make_bundle


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Three real keypairs: name -> (private .key, public .pub)."""
    from export.bundle import keygen

    folder = tmp_path_factory.mktemp("keys")
    return {name: keygen(folder / name) for name in ("release", "second", "stranger")}


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, keys) -> dict[str, Path]:
    """The bundles the tests ship, built and signed once per session; the tampered ones are
    changed AFTER signing, as an attacker on the server would."""
    folder = tmp_path_factory.mktemp("bundles")
    rel, second, stranger = keys["release"][0], keys["second"][0], keys["stranger"][0]
    out = {
        "v1": make_bundle(folder / "v1", 1, [rel]),
        "v1-rollback": make_bundle(folder / "v1-rollback", 1, [rel], rollback_from=(3,)),
        "v2": make_bundle(folder / "v2", 2, [rel]),
        "v3": make_bundle(folder / "v3", 3, [rel]),
        "v4-two-keys": make_bundle(folder / "v4-two-keys", 4, [rel, second]),
        "v5-stranger": make_bundle(folder / "v5-stranger", 5, [stranger]),
        "v6-unsigned": make_bundle(folder / "v6-unsigned", 6, []),
        "v7-broken-golden": make_bundle(folder / "v7-broken-golden", 7, [rel], break_golden=True),
        "v8-tampered-file": make_bundle(folder / "v8-tampered-file", 8, [rel]),
        "v9-tampered-manifest": make_bundle(folder / "v9-tampered-manifest", 9, [rel]),
    }
    onnx = out["v8-tampered-file"] / "tokenizer.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    onnx.write_bytes(bytes(data))
    manifest = out["v9-tampered-manifest"] / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"bundle_id": "', '"bundle_id": "evil-', 1))
    return out


def served(bundles: dict[str, Path], *names: str) -> dict[int, Path]:
    """{version: folder} of the named bundles."""
    return {int(name[1:].split("-")[0]): bundles[name] for name in names}


@pytest.fixture
def broker(tmp_path):
    b = Mosquitto(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def status_sub(broker):
    s = Subscriber(broker.port, topic="laps/v1/+/+/ota/status")
    s.wait_subscribed()
    yield s
    s.close()


@pytest.fixture
def desired(broker):
    p = DesiredPublisher(broker.port)
    yield p
    p.close()


@pytest.fixture
def bundle_server(bundles):
    """central's real bundle server on loopback with every single-version test bundle."""
    from central.rollout import BundleServer

    server = BundleServer(served(bundles, "v1-rollback", "v2", "v3", "v4-two-keys", "v5-stranger", "v6-unsigned",
                                 "v7-broken-golden", "v8-tampered-file", "v9-tampered-manifest")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seed_dir(tmp_path_factory):
    """The model every test device starts on: the default model as committed version 1."""
    from ota_testkit import seed_model

    return seed_model(tmp_path_factory.mktemp("seed") / "model")


@pytest.fixture
def device_factory(tmp_path, broker, keys, seed_dir):
    """Start real device processes (OTA on, trusting the "release" and "second" keys); every
    one still running is stopped (SIGTERM by its pid) at the end."""
    from ota_testkit import Device, write_device_config

    made: list[Device] = []

    def make(name: str, env: dict | None = None, preexec=None, kill_at: str | None = None, **config) -> Device:
        state = tmp_path / name
        cfg = write_device_config(tmp_path / f"{name}.toml", port=broker.port, state_dir=state, device=name,
                                  trusted=[keys["release"][1], keys["second"][1]], model_dir=seed_dir, **config)
        device = Device(cfg, tmp_path / f"{name}.log", env=env, preexec=preexec, kill_at=kill_at)
        device.state_dir = state
        device.name = name
        made.append(device)
        return device

    yield make
    for device in made:
        device.stop()
