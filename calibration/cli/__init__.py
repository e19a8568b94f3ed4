"""`laps-calibrate` command line; sub-commands are discovered modules of this package (see edge.cli)."""

from __future__ import annotations

from edge.cli_common import build_main

DESCRIPTION = "LAPS Edge calibration: choose the device's hysteresis thresholds from recorded video or energy traces, with a report of how far to trust them."

main = build_main(prog="laps-calibrate", package=__name__, description=DESCRIPTION)
