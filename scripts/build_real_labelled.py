#!/usr/bin/env python3
"""Rebuild `.cache/real_labelled/` from fetched source repositories (see --help).

A thin entry point: the work is done by `benchmarks.real_labelled.build`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere: the repo root holds `benchmarks`

from benchmarks.real_labelled.build import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
