"""Run `laps-edge` and SIGKILL the process the first time an OTA update reaches STEP.

    python tests/ota/kill_at.py STEP run --config FILE

The crash-consistency tests use it to stop a device exactly where a power cut could
(`edge.ota.steps` lists the steps); the production entry point has no such hook.
"""

from __future__ import annotations

import os
import signal
import sys

from edge.cli import main
from edge.ota.steps import STEPS, add_listener


def kill_at(step: str) -> None:
    if step not in STEPS:
        raise SystemExit(f"error: {step!r} is not an OTA step; use one of {', '.join(STEPS)}")

    def listener(reached: str) -> None:
        if reached == step:
            os.kill(os.getpid(), signal.SIGKILL)

    add_listener(listener)


if __name__ == "__main__":
    kill_at(sys.argv[1])
    raise SystemExit(main(sys.argv[2:]))
