"""A primitive library travels in a signed OTA bundle: a real device process installs the
bundle, commits it, and from then on its segment messages carry the library's labels."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge.model import LIBRARY_NAME, load_model_directory, update_manifest
from edge.primitive_library import PrimitiveLibrary
from edge.segment_embedding import EmbeddingConfig, embedding_dim
from ota_testkit import DEFAULT_MODEL, make_bundle, wait_until
from tests.service.helpers import Subscriber

pytestmark = [pytest.mark.broker, pytest.mark.slow]
LIBRARY_ID = "run-ota-library"


@pytest.fixture
def library_bundle(tmp_path, keys):
    """Version 2 of the default model with a 3-primitive motion library, built and signed as a
    release is (`laps-export bundle build` + `sign`)."""
    model = tmp_path / "model-with-library"
    shutil.copytree(DEFAULT_MODEL, model, ignore=shutil.ignore_patterns("trt-cache"))
    meta = load_model_directory(model).metadata
    latent_dim = meta.fsq_projection()[0].shape[0]
    dim = embedding_dim("motion", latent_dim)
    centres = np.random.default_rng(0).normal(size=(3, dim))
    library = PrimitiveLibrary(LIBRARY_ID, meta.model_version, "motion", EmbeddingConfig(), latent_dim,
                               feature_mean=np.zeros(dim), feature_std=np.ones(dim),
                               centers=centres / np.linalg.norm(centres, axis=1, keepdims=True))
    library.write(model / LIBRARY_NAME)
    files = sorted(set(load_model_directory(model).manifest["files"]) | {LIBRARY_NAME})
    update_manifest(model, files=files, records={"primitive_library": {"library_id": LIBRARY_ID, "method": "motion",
                                                                       "k": 3}})
    return make_bundle(tmp_path / "bundle-v2", 2, [keys["release"][0]], source=model)


def test_a_library_shipped_over_the_air_labels_the_devices_segments(device_factory, desired, status_sub,
                                                                      library_bundle, broker):
    from central.rollout import BundleServer
    from ota_testkit import current_version, final_status

    assert (library_bundle / LIBRARY_NAME).is_file()  # the bundle carries it, covered by the signed manifest
    segments = Subscriber(broker.port, topic="laps/v1/+/+/segments")
    segments.wait_subscribed()
    server = BundleServer({2: library_bundle}).start()
    try:
        device = device_factory("dev-lib")
        desired.desire(device.name, library_bundle, server.bundle_url(2))
        assert wait_until(lambda: final_status(status_sub, device.name, 2) is not None, 90.0), device.log_text()[-3000:]
        assert final_status(status_sub, device.name, 2)["state"] == "committed"
        assert current_version(device.state_dir) == 2
        assert load_model_directory(device.state_dir / "ota" / "current").library.library_id == LIBRARY_ID

        def labelled() -> list[dict]:
            msgs = [json.loads(p) for _, p, _, _ in list(segments.messages)]
            return [m for m in msgs if m.get("primitive")]

        assert wait_until(lambda: len(labelled()) >= 2, 90.0), device.log_text()[-3000:]
        for msg in labelled():
            assert msg["primitive"]["library"] == LIBRARY_ID and 0 <= msg["primitive"]["cluster"] < 3
            assert msg["motion"]["kind"] == "grid4-stats/1"  # what the motion library labelled from
    finally:
        server.stop()
        segments.close()
