#!/usr/bin/env python3
"""Rebuild the real-footage corpus from data/real_footage/manifest.json into .cache/real_footage.

The same command as `laps-export build-real-footage`; runnable from a checkout without
installing. `--help` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, when not installed


def main(argv: list[str] | None = None) -> int:
    from export.cli import main as laps_export

    return laps_export(["build-real-footage", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
