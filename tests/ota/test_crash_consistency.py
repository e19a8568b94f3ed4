"""A device SIGKILLed at every step of staging and swapping restarts into a consistent,
committed model (real processes, SIGKILLed by tests/ota/kill_at.py when the update reaches the
step; the steps are `edge.ota.steps.STEPS`)."""

from __future__ import annotations

import signal

import pytest

from edge.model import load_model_directory
from edge.ota.steps import STEPS
from ota_testkit import current_version, ota_state, statuses, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]

#: killed before the swap: the update resumes after the restart and commits version 2.
#: killed between swap and commit: the uncommitted version is treated as failed (boot counter).
#: killed after the commit: version 2 stays.
EXPECTED = {step: 2 for step in STEPS}
EXPECTED.update({step: 1 for step in ("pending_written", "previous_linked", "current_swapped", "pipeline_restarted")})


def consistent(device) -> bool:
    state = ota_state(device.state_dir)
    return state.get("pending") is None and current_version(device.state_dir) == state.get("committed")


def test_a_device_killed_at_any_update_step_restarts_on_a_consistent_committed_model(
        device_factory, desired, status_sub, bundles, bundle_server):
    names = {step: f"kill-{step.replace('_', '-')}" for step in STEPS}
    for name in names.values():
        desired.desire(name, bundles["v2"], bundle_server.bundle_url(2))  # retained: waits for the device
    first = {step: device_factory(names[step], kill_at=step) for step in STEPS}
    for step, device in first.items():
        assert device.wait_exit(120) == -signal.SIGKILL, f"{step}: the device did not die there\n{device.log_text()[-2000:]}"
    second = {step: device_factory(names[step]) for step in STEPS}  # the same state dirs, no fault

    def settled(step) -> bool:
        device = second[step]
        if not consistent(device) or ota_state(device.state_dir).get("committed") != EXPECTED[step]:
            return False
        wanted = "committed" if EXPECTED[step] == 2 else "refused"
        return any(m["state"] == wanted for m in statuses(status_sub, device.name, 2))

    assert wait_until(lambda: all(settled(s) for s in STEPS), 120, interval=0.2), {
        s: (ota_state(second[s].state_dir), current_version(second[s].state_dir)) for s in STEPS if not settled(s)}
    for step, device in second.items():
        state = ota_state(device.state_dir)
        assert load_model_directory(device.state_dir / "ota" / "current").version == str(EXPECTED[step]), step
        assert device.proc.poll() is None, f"{step}: the restarted device is not running"
        if EXPECTED[step] == 1:
            assert "never committed" in state["deny"]["2"], step
            assert any(m["state"] == "rolled_back" for m in statuses(status_sub, device.name, 2)), step
    # The torn download was resumed with a Range request, not fetched again from byte 0.
    assert any(code == 206 for _, code in bundle_server.requests)
