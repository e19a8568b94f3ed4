"""`laps-calibrate` command line; sub-commands are discovered modules of this package (see edge.cli)."""

from __future__ import annotations

from edge.cli_common import build_main

main = build_main(prog="laps-calibrate", package=__name__, description=__doc__ or "")
