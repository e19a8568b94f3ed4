"""`laps-export` command line; sub-commands are discovered modules of this package (see edge.cli)."""

from __future__ import annotations

from edge.cli_common import build_main

DESCRIPTION = "LAPS Edge laptop tools: train the motion tokenizer, export it to ONNX and verify the export."

main = build_main(prog="laps-export", package=__name__, description=DESCRIPTION)
