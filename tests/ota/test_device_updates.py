"""A real device process (`laps-edge run --config` with [ota]) against a real Mosquitto, a real
bundle server on loopback and real signatures: what it installs, what it refuses, what it rolls
back, and what it reports on `.../ota/status`."""

from __future__ import annotations

import resource
import signal

import pytest

from edge.model import load_model_directory
from ota_testkit import current_version, final_status, manifest_sha256, ota_state, statuses, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]
TIMEOUT = 60.0


def wait_final(sub, device, version: int, timeout: float = TIMEOUT) -> dict:
    assert wait_until(lambda: final_status(sub, device.name, version) is not None, timeout), (
        f"no final status for version {version}; device log:\n{device.log_text()[-3000:]}")
    return final_status(sub, device.name, version)


def test_a_desired_upgrade_is_verified_self_tested_swapped_health_checked_and_committed(
        device_factory, desired, status_sub, bundles, bundle_server):
    device = device_factory("dev-up")
    desired.desire(device.name, bundles["v2"], bundle_server.bundle_url(2))
    final = wait_final(status_sub, device, 2)
    assert final["state"] == "committed" and final["installed"] == 2
    # the committed status says how long each stage took
    assert set(final["timings_s"]) == {"verify_manifest_s", "download_s", "hashes_s", "prepare_s", "self_test_s",
                                       "restart_s", "health_s", "total_s"}
    assert final["timings_s"]["total_s"] >= final["timings_s"]["health_s"] >= 0
    states = [m["state"] for m in statuses(status_sub, device.name, 2)]
    order = ["downloading", "verifying", "self_testing", "swapping", "health_check", "committed"]
    assert [s for s in states if s in order and s != "downloading"] == order[1:]
    assert states[0] == "downloading"
    assert current_version(device.state_dir) == 2
    assert ota_state(device.state_dir)["committed"] == 2 and ota_state(device.state_dir)["pending"] is None
    assert load_model_directory(device.state_dir / "ota" / "current").version == "2"
    assert "now running model" in device.log_text()


def test_a_downgrade_is_refused_but_an_explicitly_signed_rollback_is_installed(
        device_factory, desired, status_sub, bundles, bundle_server):
    device = device_factory("dev-down")
    desired.desire(device.name, bundles["v3"], bundle_server.bundle_url(3))
    assert wait_final(status_sub, device, 3)["state"] == "committed"
    desired.desire(device.name, bundles["v2"], bundle_server.bundle_url(2))
    refused = wait_final(status_sub, device, 2)
    assert refused["state"] == "refused" and "not newer than the committed version 3" in refused["detail"]
    desired.desire(device.name, bundles["v1-rollback"], bundle_server.bundle_url(1))
    assert wait_final(status_sub, device, 1)["state"] == "committed"
    assert current_version(device.state_dir) == 1 and ota_state(device.state_dir)["committed"] == 1


BAD_BUNDLES = [
    # (bundle, what the refusal says)
    ("v5-stranger", "0 valid signature(s) by trusted keys, 1 needed"),
    ("v6-unsigned", "the bundle is unsigned"),
    ("v8-tampered-file", "tampered"),
    ("v9-tampered-manifest", "did not verify (tampered manifest?)"),
    ("v7-broken-golden", "self-test of"),
]


def test_unsigned_foreign_tampered_and_self_test_failing_bundles_are_refused_and_never_run(
        device_factory, desired, status_sub, bundles, bundle_server):
    device = device_factory("dev-bad")
    for name, reason in BAD_BUNDLES:
        version = int(name[1:].split("-")[0])
        # The tampered manifest comes with a desired message that matches it (the attacker
        # controls both), so only the signature stands in the way.
        desired.desire(device.name, bundles[name], bundle_server.bundle_url(version),
                       sha256=manifest_sha256(bundles[name]))
        final = wait_final(status_sub, device, version)
        assert final["state"] == "refused" and reason in final["detail"], (name, final)
        assert current_version(device.state_dir) == 1, name
    deny = ota_state(device.state_dir)["deny"]
    assert sorted(int(v) for v in deny) == [5, 6, 7, 8, 9]
    assert device.proc.poll() is None  # the device kept running its model throughout
    assert "now running model" not in device.log_text()


def test_a_manifest_that_differs_from_the_desired_hash_is_refused(
        device_factory, desired, status_sub, bundles, bundle_server):
    device = device_factory("dev-hash")
    desired.desire(device.name, bundles["v2"], bundle_server.bundle_url(2), sha256="0" * 64)
    final = wait_final(status_sub, device, 2)
    assert final["state"] == "refused" and "the desired message says 000000000000" in final["detail"]


def test_a_model_that_fails_its_health_window_is_swapped_back_and_deny_listed(
        device_factory, desired, status_sub, bundles, bundle_server):
    # A latency budget no model can meet: the health window measures real frames and fails.
    device = device_factory("dev-health", latency_budget_ms=0.001)
    desired.desire(device.name, bundles["v2"], bundle_server.bundle_url(2))
    final = wait_final(status_sub, device, 2)
    assert final["state"] == "rolled_back" and "p95 frame latency" in final["detail"]
    assert current_version(device.state_dir) == 1
    state = ota_state(device.state_dir)
    assert state["committed"] == 1 and state["pending"] is None and "2" in state["deny"]
    assert device.log_text().count("now running model") == 2  # the new model, then the old one back
    # Deny-listed means never retried: the retained desired is answered, not re-installed.
    device.stop()
    device_factory("dev-health", latency_budget_ms=0.001)  # the same device, restarted
    assert wait_until(lambda: any(m["state"] == "refused" and "deny-listed" in m["detail"]
                                  for m in statuses(status_sub, "dev-health", 2)), TIMEOUT)


def _file_size_limit() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (4_000_000, 4_000_000))


def test_a_write_failure_during_the_download_is_reported_and_not_blamed_on_the_bundle(
        device_factory, desired, status_sub, bundles, bundle_server, tmp_path, seed_dir):
    from edge.ota.store import OtaStore

    OtaStore(tmp_path / "dev-fsize" / "ota").seed(seed_dir)  # the factory model is in place already
    device = device_factory("dev-fsize", preexec=_file_size_limit)
    desired.desire(device.name, bundles["v2"], bundle_server.bundle_url(2))
    assert wait_until(lambda: any(m["state"] == "failed" and "file-size limit" in m["detail"]
                                  for m in statuses(status_sub, device.name, 2)), TIMEOUT), device.log_text()[-2000:]
    state = ota_state(device.state_dir)
    assert state["committed"] == 1 and "2" not in state.get("deny", {})
    assert current_version(device.state_dir) == 1


def test_a_bundle_over_the_download_limit_is_refused_before_any_file_is_fetched(
        device_factory, desired, status_sub, bundles, bundle_server):
    device = device_factory("dev-limit", max_download_bytes=1_000_000)
    desired.desire(device.name, bundles["v2"], bundle_server.bundle_url(2))
    final = wait_final(status_sub, device, 2)
    assert final["state"] == "refused" and "over ota.max_download_bytes" in final["detail"]
    assert not any("tokenizer.onnx" in path for path, _ in bundle_server.requests)
