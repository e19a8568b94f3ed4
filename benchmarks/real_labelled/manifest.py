"""The manifest of the real labelled sources, and the sha256-checked reader of their files.

`benchmarks/data/real_labelled_manifest.json` (committed, ours) records, per dataset: the public
repository and commit it comes from, the repository's licence and the dataset's own terms, a
citation, the frame rate, and for every file its path, size and sha256. The builder reads each
file from a path the user gives, either a git directory (what the project's `fetch` tool brings:
`.../owner+name/repo`, or a clone's `.git`) read at the recorded commit, or a plain checkout
(the files under the folder), and refuses any file whose sha256 differs from the manifest.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edge.errors import LapsError

#: The committed manifest.
MANIFEST_PATH = Path(__file__).resolve().parents[1] / "data" / "real_labelled_manifest.json"
SCHEMA = "laps.real-labelled-manifest/1"


class SourceError(LapsError):
    """A source repository path is wrong, or one of its files is missing or not the recorded one."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: path inside the repository, size in bytes, sha256 (hex)."""

    path: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class DatasetSource:
    """Where one dataset comes from and on what terms (see the module docstring)."""

    name: str
    title: str
    repository: str
    commit: str
    repository_licence: str
    dataset_licence: str
    citation: str
    fps: float
    notes: str
    files: tuple[SourceFile, ...]

    def file(self, path: str) -> SourceFile:
        for f in self.files:
            if f.path == path:
                return f
        raise SourceError(f"{path} is not listed for dataset {self.name!r} in {MANIFEST_PATH}; add it with its sha256")


def load_manifest(path: str | Path = MANIFEST_PATH) -> dict[str, DatasetSource]:
    """{dataset name: DatasetSource} of the manifest at `path`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise SourceError(f"manifest {p} is unreadable ({err}); restore it from git") from None
    if data.get("schema") != SCHEMA:
        raise SourceError(f"manifest {p} has schema {data.get('schema')!r}, expected {SCHEMA!r}; restore it from git")
    out = {}
    for name, d in data["datasets"].items():
        out[name] = DatasetSource(
            name=name, title=d["title"], repository=d["repository"], commit=d["commit"],
            repository_licence=d["repository_licence"], dataset_licence=d["dataset_licence"],
            citation=d["citation"], fps=float(d["fps"]), notes=d.get("notes", ""),
            files=tuple(SourceFile(f["path"], int(f["bytes"]), f["sha256"]) for f in d["files"]),
        )
    return out


class SourceTree:
    """Reads the files of one dataset's repository from a git directory or a checkout, verified.

    root: a git directory (has HEAD and objects/) or a checkout folder. Raises SourceError when
    it is neither, or (git directory) when the recorded commit is not in it.
    """

    def __init__(self, root: str | Path, source: DatasetSource) -> None:
        self.root = Path(root)
        self.source = source
        if not self.root.is_dir():
            raise SourceError(
                f"source path {self.root} for dataset {source.name!r} is not a folder; give the fetched "
                f"git directory or a clone of {source.repository}"
            )
        self.git_dir = _git_dir(self.root)
        if self.git_dir is not None and not self._has_commit():
            raise SourceError(
                f"{self.root} does not hold commit {source.commit[:12]} of {source.repository}; fetch that "
                f"repository again or give a clone that has the commit"
            )
        if self.git_dir is None and not any((self.root / f.path).exists() for f in source.files):
            raise SourceError(
                f"{self.root} holds none of the files of dataset {source.name!r} (e.g. {source.files[0].path}); "
                f"give the fetched git directory or a clone of {source.repository}"
            )

    def read(self, path: str) -> bytes:
        """The bytes of `path`, after checking size and sha256 against the manifest."""
        entry = self.source.file(path)
        data = self._read_git(path) if self.git_dir is not None else self._read_checkout(path)
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.sha256 or len(data) != entry.bytes:
            raise SourceError(
                f"{path} in {self.root} has sha256 {digest[:12]}… ({len(data)} bytes), the manifest records "
                f"{entry.sha256[:12]}… ({entry.bytes} bytes); use commit {self.source.commit[:12]} of "
                f"{self.source.repository}"
            )
        return data

    def _read_checkout(self, path: str) -> bytes:
        p = self.root / path
        if not p.is_file():
            raise SourceError(f"{p} is missing; the checkout of {self.source.repository} is incomplete, clone it again")
        return p.read_bytes()

    def _read_git(self, path: str) -> bytes:
        run = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "blob", f"{self.source.commit}:{path}"],
            capture_output=True, timeout=120,
        )
        if run.returncode != 0:
            reason = run.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise SourceError(
                f"{path} cannot be read from {self.git_dir} at {self.source.commit[:12]} ({reason[0]}); "
                f"fetch {self.source.repository} again"
            )
        return run.stdout

    def _has_commit(self) -> bool:
        run = subprocess.run(
            ["git", f"--git-dir={self.git_dir}", "cat-file", "-e", f"{self.source.commit}^{{commit}}"],
            capture_output=True, timeout=60,
        )
        return run.returncode == 0


def _git_dir(root: Path) -> Path | None:
    """`root` itself when it is a git directory, its `.git` when it is a clone, else None."""
    for candidate in (root, root / ".git"):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    return None

