"""Fault injection for the crash-consistency tests: SIGKILL this process at a named step.

Set `LAPS_OTA_KILL_AT=<step>` in the environment of a device process (never in production)
and the OTA agent kills itself with SIGKILL the first time it reaches that step, exactly as a
power cut or the OOM killer would. The steps, in the order an update passes them:

    manifest_fetched    signed manifest verified, nothing downloaded yet
    download_partial    the first chunk of a bundle file is on disk (a torn download)
    downloaded          every file is in staging, hashes verified
    self_tested         golden vectors passed, nothing swapped yet
    installed           bundle moved to bundles/<version>, state not yet pending
    pending_written     state file says pending=<version>, `current` still the old model
    previous_linked     `previous` points at the old model
    current_swapped     `current` points at the new, uncommitted model
    pipeline_restarted  the new pipeline runs, health window in progress
    committed           state file says committed=<version>, status not yet reported

The tests kill at each step and require the restarted device to come up on a consistent,
committed model.
"""

from __future__ import annotations

import os
import signal

ENV = "LAPS_OTA_KILL_AT"
STEPS = ("manifest_fetched", "download_partial", "downloaded", "self_tested", "installed",
         "pending_written", "previous_linked", "current_swapped", "pipeline_restarted", "committed")


def fault_point(step: str) -> None:
    """SIGKILL the process now if `LAPS_OTA_KILL_AT` names `step` (test-only hook)."""
    if os.environ.get(ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)
