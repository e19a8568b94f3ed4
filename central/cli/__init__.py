"""`laps-central` command line; sub-commands are discovered modules of this package (see edge.cli)."""

from __future__ import annotations

from edge.cli_common import build_main

DESCRIPTION = "LAPS Edge fleet service: ingest segments from devices, cluster them into a library of action primitives, export the dataset."

main = build_main(prog="laps-central", package=__name__, description=DESCRIPTION)
