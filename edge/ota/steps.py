"""The named steps of an OTA update, announced as the agent passes them.

In the order an update passes them:

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

`reached(step)` logs the step (DEBUG) and calls the listeners added with `add_listener`. The
crash-consistency tests add one that SIGKILLs the process at a chosen step, as a power cut or the
OOM killer would (tests/ota/kill_at.py); production code adds none.
"""

from __future__ import annotations

import logging
from typing import Callable

log = logging.getLogger(__name__)

STEPS = ("manifest_fetched", "download_partial", "downloaded", "self_tested", "installed",
         "pending_written", "previous_linked", "current_swapped", "pipeline_restarted", "committed")

_listeners: list[Callable[[str], None]] = []


def add_listener(listener: Callable[[str], None]) -> None:
    """Call `listener(step)` every time an update reaches a step (in the agent's threads)."""
    _listeners.append(listener)


def remove_listener(listener: Callable[[str], None]) -> None:
    _listeners.remove(listener)


def reached(step: str) -> None:
    """An update reached `step` (one of STEPS)."""
    log.debug("OTA step: %s", step)
    for listener in list(_listeners):
        listener(step)
