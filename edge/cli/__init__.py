"""`laps-edge`: the device command line. A thin layer over library functions.

Each sub-command lives in its own module in this package and exposes
`register(subparsers) -> None`, which adds its parser and sets `func=handler(args) -> int`.
Modules are discovered, so adding a command never edits a shared list. Heavy imports
belong inside the handlers so `laps-edge --help` stays fast.
"""

from __future__ import annotations

from edge.cli_common import build_main

main = build_main(
    prog="laps-edge",
    package=__name__,
    description="LAPS Edge device runtime: segment workstation video into action primitives.",
)

