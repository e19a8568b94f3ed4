"""Staged rollout (`central.rollout`) against real device processes, a real Mosquitto and the
rollout's own bundle server: a rollout that completes across several devices, and one that
aborts after its canaries fail and sets desired back."""

from __future__ import annotations

import threading

import pytest

from central.config import central_config_from_dict
from central.rollout import Bundle, BundleServer, Rollout, RolloutPlan, RolloutState, format_status
from ota_testkit import SITE, Subscriber, current_version, ota_state, statuses, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def run_in_thread(rollout: Rollout) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(outcome=rollout.run()), daemon=True)
    thread.start()
    return thread, result


def retained_desired(port: int, device: str) -> dict | None:
    """What a device connecting now would receive on its desired topic (None: nothing retained)."""
    sub = Subscriber(port, topic=f"laps/v1/{SITE}/{device}/ota/desired")
    try:
        sub.wait_subscribed()
        wait_until(lambda: bool(sub.messages), 1.0)
        msgs = [m for m in sub.payloads("ota/desired")]
        return msgs[-1] if msgs else None
    finally:
        sub.close()


@pytest.fixture
def mqtt_cfg(broker):
    return central_config_from_dict({"mqtt": {"host": "127.0.0.1", "port": broker.port}}).mqtt


def test_a_rollout_reaches_every_device_stage_by_stage_and_completes(
        device_factory, status_sub, bundles, mqtt_cfg, tmp_path):
    devices = [device_factory(f"fleet-{i}") for i in range(3)]
    names = [f"{SITE}/{d.name}" for d in devices]
    plan = RolloutPlan(bundle=Bundle.open(bundles["v2"]), devices=names, canary=[names[0]], stages=[50.0, 100.0],
                       max_failure_rate=0.2, min_devices=2, device_timeout_s=90.0)
    server = BundleServer({2: bundles["v2"]}).start()
    state = RolloutState(tmp_path / "rollout" / "state.json")
    try:
        thread, result = run_in_thread(Rollout(plan, mqtt_cfg, server, state))
        thread.join(150)
    finally:
        server.stop()
    data = state.load()
    assert result.get("outcome") == "completed", format_status(data)
    assert data["state"] == "completed" and data["stages"] == 3
    assert {d["state"] for d in data["devices"].values()} == {"committed"}
    for device in devices:
        assert current_version(device.state_dir) == 2 and ota_state(device.state_dir)["committed"] == 2
    # Stage by stage: the canary committed before any other device was even asked.
    canary_done = min(m["time"] for m in statuses(status_sub, devices[0].name, 2) if m["state"] == "committed")
    others_start = min(m["time"] for d in devices[1:] for m in statuses(status_sub, d.name, 2))
    assert canary_done < others_start


def test_a_rollout_aborts_after_its_canaries_fail_and_sets_desired_back(
        device_factory, status_sub, bundles, mqtt_cfg, broker, tmp_path):
    canaries = [device_factory(f"canary-{i}") for i in range(2)]
    names = [f"{SITE}/{d.name}" for d in canaries] + [f"{SITE}/never-reached"]
    plan = RolloutPlan(bundle=Bundle.open(bundles["v7-broken-golden"]), baseline=Bundle.open(bundles["v1"]),
                       devices=names, canary=names[:2], stages=[100.0], max_failure_rate=0.4, min_devices=2,
                       device_timeout_s=90.0)
    server = BundleServer({7: bundles["v7-broken-golden"], 1: bundles["v1"]}).start()
    state = RolloutState(tmp_path / "rollout" / "state.json")
    try:
        thread, result = run_in_thread(Rollout(plan, mqtt_cfg, server, state))
        thread.join(150)
        data = state.load()
        assert result.get("outcome") == "aborted", format_status(data)
        assert "2 of 2 finished device(s) failed" in data["reason"]
        assert [data["devices"][n]["state"] for n in names] == ["refused", "refused", "waiting"]
        for device in canaries:
            assert retained_desired(broker.port, device.name)["version"] == 1  # the baseline again
            assert current_version(device.state_dir) == 1
            # The devices answer the baseline desired: it is what they run, committed.
            assert wait_until(lambda d=device: any(m["state"] == "committed"
                                                   for m in statuses(status_sub, d.name, 1)), 30)
    finally:
        server.stop()
    assert retained_desired(broker.port, "never-reached") is None  # the bundle never left the canaries


def test_rollout_status_cli_shows_where_each_device_stands(tmp_path, capsys):
    from central.cli import main

    (tmp_path / "central.toml").write_text(f'[paths]\ndata_dir = "{tmp_path / "data"}"\n')
    RolloutState(tmp_path / "data" / "rollout" / "state.json").save({
        "rollout_id": "r2-test", "version": 2, "state": "running", "stage": 1, "stages": 2, "reason": "",
        "devices": {"s/a": {"cohort": 0, "state": "committed", "installed": 2, "detail": "committed"},
                    "s/b": {"cohort": 1, "state": "waiting", "installed": None, "detail": ""}},
    })
    assert main(["rollout", "status", "--config", str(tmp_path / "central.toml")]) == 0
    out = capsys.readouterr().out
    assert "rollout r2-test: version 2 (running), stage 1/2" in out
    assert "s/a" in out and "committed" in out and "s/b" in out and "waiting" in out


def test_rollout_abort_without_a_live_rollout_process_clears_the_desired_it_had_sent(broker, tmp_path, capsys):
    from central.cli import main
    from ota_testkit import DesiredPublisher

    sent = DesiredPublisher(broker.port)
    (tmp_path / "central.toml").write_text(
        f'[paths]\ndata_dir = "{tmp_path / "data"}"\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n')
    from edge.messages import Topics
    from edge.ota.messages import DesiredMessage

    msg = DesiredMessage(2, "http://127.0.0.1:1/bundles/2", "a" * 64, rollout_id="r2-dead")
    sent.client.publish(Topics(SITE, "sent-one").ota_desired, msg.to_json(), qos=1, retain=True).wait_for_publish(5)
    sent.close()
    RolloutState(tmp_path / "data" / "rollout" / "state.json").save({
        "rollout_id": "r2-dead", "version": 2, "state": "running", "pid": 2**22 + 12345, "stage": 1, "stages": 1,
        "devices": {f"{SITE}/sent-one": {"cohort": 0, "state": "sent", "installed": 1, "detail": ""}},
    })
    assert main(["rollout", "abort", "--config", str(tmp_path / "central.toml"), "--reason", "bad metrics"]) == 0
    assert "aborted: bad metrics" in capsys.readouterr().out
    assert retained_desired(broker.port, "sent-one") is None
