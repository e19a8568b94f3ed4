"""Rebuild the real labelled corpus into `.cache/real_labelled/<dataset>/` from fetched sources.

Usage:
    python scripts/build_real_labelled.py --source ha4m=PATH --source mocap6=PATH [--out DIR]

PATH is the fetched git directory of the dataset's repository (what the search tool's `fetch`
returns, e.g. /work/.mirror/ispstiima+HA4Mfeatures/repo) or a clone of it. Every file is read at
the commit the manifest records and checked against its sha256 before anything is written; a
wrong path or a changed file stops the build with a one-line `error: ...` (exit 2).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Sequence

from benchmarks.real_labelled.corpus import DEFAULT_ROOT
from benchmarks.real_labelled.manifest import MANIFEST_PATH, SourceError, SourceTree, load_manifest
from benchmarks.real_labelled.sources import CONVERTERS
from edge.errors import LapsError


def build(sources: dict[str, str | Path], out: str | Path = DEFAULT_ROOT,
          manifest: str | Path = MANIFEST_PATH) -> dict[str, list[Path]]:
    """Convert each named dataset from its source path; {dataset: written .npz paths}.

    Every file of a dataset is verified before any of its videos is written; a dataset's folder is
    replaced as a whole, so a failed build never leaves a mix of old and new videos.
    """
    known = load_manifest(manifest)
    written: dict[str, list[Path]] = {}
    for name, path in sources.items():
        if name not in known or name not in CONVERTERS:
            choices = ", ".join(sorted(set(known) & set(CONVERTERS)))
            raise SourceError(f"dataset {name!r} is not known; use one of {choices}")
        tree = SourceTree(path, known[name])
        videos = CONVERTERS[name](tree)
        folder = Path(out) / name
        staging = folder.with_name(folder.name + ".part")
        if staging.exists():
            shutil.rmtree(staging)
        files = [v.save(staging / f"{v.name}.npz") for v in videos]
        if folder.exists():
            shutil.rmtree(folder)
        staging.replace(folder)
        written[name] = [folder / f.name for f in files]
    return written


def parse_sources(items: Sequence[str]) -> dict[str, str]:
    """{dataset: path} from `NAME=PATH` strings."""
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SourceError(f"--source {item!r} is not NAME=PATH; e.g. --source ha4m=/work/.mirror/ispstiima+HA4Mfeatures/repo")
        out[name] = path
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build_real_labelled", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", action="append", default=[], metavar="NAME=PATH",
                        help=f"a dataset and its fetched git directory or clone; datasets: {', '.join(sorted(CONVERTERS))}")
    parser.add_argument("--out", default=str(DEFAULT_ROOT), help="corpus folder (default: %(default)s)")
    parser.add_argument("--manifest", default=str(MANIFEST_PATH), help="source manifest (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if not args.source:
            raise SourceError("no --source given; e.g. --source ha4m=/work/.mirror/ispstiima+HA4Mfeatures/repo")
        written = build(parse_sources(args.source), args.out, args.manifest)
    except LapsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, files in written.items():
        print(f"{name}: {len(files)} videos -> {Path(args.out) / name}")
    return 0

