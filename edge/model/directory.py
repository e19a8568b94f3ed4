"""A model directory (the unsigned form of the OTA bundle) and its manifest.

Layout (docs/formats.md#model-bundle):
    manifest.json      bundle id, monotonic version, created, files {relpath: {sha256, size}},
                       model metadata (the same JSON the ONNX file embeds)
    tokenizer.onnx     encoder up to the pre-quantisation latent
    calibration.json   HysteresisParams dict + provenance (thresholds belong to one tokenizer)
    primitives.npz     optional: the primitive library of a central clustering run of this
                       tokenizer (edge.primitive_library); the device labels its segments with it
    golden/            input windows with expected codes; a golden clip with expected segments
    manifest.sig       Ed25519 signatures over the manifest bytes (a signed OTA bundle; edge/ota)
    trt-cache/         TensorRT engines built on this device (never shipped, never in the manifest)

`load_model_directory` verifies every listed file's size and sha256 before anything reads it,
so a tampered or truncated file is a one-line `ModelError`, never a wrong answer. It is the one
reader of a model directory; `save_manifest` is the one writer of its manifest (`write_manifest`
for a new directory, `update_manifest` after a deliberate change such as an added tracker or
`install_calibration`; the OTA bundler writes its manifests through it too).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from edge.errors import ConfigError, ModelError
from edge.model.metadata import ModelMetadata

if TYPE_CHECKING:  # imported where used: it pulls in the energy kernel (numba), which a manifest does not need
    from edge.calibration_file import CalibrationFile
    from edge.primitive_library import PrimitiveLibrary

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "laps.bundle-manifest/1"
TOKENIZER_NAME = "tokenizer.onnx"
CALIBRATION_NAME = "calibration.json"  # its format: edge.calibration_file
GOLDEN_DIR = "golden"
LIBRARY_NAME = "primitives.npz"  # its format: edge.primitive_library
#: Never listed in a manifest: its signature, and the engines a device builds for itself.
SIGNATURE_NAME = "manifest.sig"
TRT_CACHE_DIR = "trt-cache"
#: The manifest's own fields; every other top-level key is a record kept across rewrites
#: (e.g. "tracker", a bundle's "expires").
MANIFEST_FIELDS = ("schema", "bundle_id", "version", "created", "files", "model")


@dataclass(frozen=True)
class ModelDirectory:
    """A verified model directory.

    path:           the directory.
    metadata:       the tokenizer's `ModelMetadata` (from manifest.json).
    tokenizer_path: path of tokenizer.onnx.
    calibration:    its calibration.json, or None when the directory has none.
    manifest:       the parsed manifest.json.
    library:        its primitive library (primitives.npz), or None when it has none.
    """

    path: Path
    metadata: ModelMetadata
    tokenizer_path: Path
    calibration: CalibrationFile | None
    manifest: dict
    library: PrimitiveLibrary | None = None

    @property
    def golden_dir(self) -> Path:
        return self.path / GOLDEN_DIR

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", ""))

    @property
    def bundle_id(self) -> str:
        return str(self.manifest.get("bundle_id", ""))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)


def load_model_directory(path: str | os.PathLike) -> ModelDirectory:
    """Read and verify a model directory; any problem is a one-line `ModelError`."""
    root = Path(path)
    if not root.exists():
        raise ModelError(f"model directory {root} does not exist; pass the folder that holds manifest.json")
    if not root.is_dir():
        raise ModelError(f"model path {root} is not a directory; pass the folder that holds manifest.json")
    manifest = read_manifest(root)
    for rel, entry in manifest["files"].items():
        _verify_file(root, rel, entry)
    metadata = ModelMetadata.from_dict(manifest.get("model"))
    calibration = None
    if CALIBRATION_NAME in manifest["files"]:
        from edge.calibration_file import CalibrationFile

        try:
            calibration = CalibrationFile.read(root / CALIBRATION_NAME)
        except ConfigError as err:
            raise ModelError(str(err)) from None
    library = None
    if LIBRARY_NAME in manifest["files"]:
        from edge.primitive_library import PrimitiveLibrary

        library = PrimitiveLibrary.read(root / LIBRARY_NAME)
        library.check_model(metadata.model_version, metadata.fsq_projection()[0].shape[0])
    return ModelDirectory(
        path=root, metadata=metadata, tokenizer_path=root / TOKENIZER_NAME,
        calibration=calibration, manifest=manifest, library=library,
    )


def read_manifest(path: str | os.PathLike) -> dict:
    """The parsed manifest.json of the directory `path`, its schema and file listing checked but
    not the files (`load_model_directory` verifies them); one-line `ModelError` otherwise."""
    manifest_path = Path(path) / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelError(f"{manifest_path} is missing; re-export the model with `laps-export onnx`")
    try:
        raw = manifest_path.read_bytes()
    except OSError as err:
        raise ModelError(f"{manifest_path} is unreadable ({err}); re-export the model") from None
    return parse_manifest(raw, str(manifest_path))


def parse_manifest(raw: bytes, where: str = MANIFEST_NAME, fix: str = "re-export the model") -> dict:
    """The one reader of manifest.json bytes (a model directory's, or a signed OTA bundle's before
    it is unpacked): JSON, the schema, a file listing that names the tokenizer, and every entry a
    plain relative path with a sha256/size pair. One-line `ModelError` ending in `fix` otherwise."""
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{where} is not JSON ({err}); {fix}") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise ModelError(f"{where} has schema {found!r}, expected {MANIFEST_SCHEMA!r}; {fix}")
    files = manifest.get("files")
    if not isinstance(files, dict) or TOKENIZER_NAME not in files:
        raise ModelError(f"{where} does not list {TOKENIZER_NAME}; {fix}")
    for rel, entry in files.items():
        p = Path(rel)
        if not rel or p.is_absolute() or ".." in p.parts or rel == MANIFEST_NAME:
            raise ModelError(f"{where} lists {rel!r}, which is not a plain path inside the model directory; {fix}")
        digest, size = (entry.get("sha256"), entry.get("size")) if isinstance(entry, dict) else (None, None)
        if (not isinstance(digest, str) or len(digest) != 64 or isinstance(size, bool)
                or not isinstance(size, int) or size < 0):
            raise ModelError(f"{where} entry {rel!r} lacks a sha256/size pair; {fix}")
    return manifest


def _verify_file(root: Path, rel: str, entry: Any) -> None:
    rel_path = Path(rel)
    if rel_path.is_absolute() or ".." in rel_path.parts:
        raise ModelError(f"manifest lists {rel!r}, which is outside the model directory; the manifest is corrupt")
    if not isinstance(entry, dict) or "sha256" not in entry or "size" not in entry:
        raise ModelError(f"manifest entry for {rel!r} lacks sha256/size; re-export the model")
    target = root / rel_path
    if not target.is_file():
        raise ModelError(f"{target} is listed in the manifest but missing; restore it or re-export the model")
    size = target.stat().st_size
    if size != entry["size"]:
        raise ModelError(
            f"{target} is {size} bytes but the manifest says {entry['size']}; the file was changed or truncated,"
            " restore it or re-export the model"
        )
    digest = sha256_file(target)
    if digest != entry["sha256"]:
        raise ModelError(
            f"{target} has sha256 {digest[:12]}… but the manifest says {str(entry['sha256'])[:12]}…; the file was"
            " tampered with or corrupted, restore it or re-export the model"
        )


def write_manifest(
    path: str | os.PathLike,
    metadata: ModelMetadata,
    *,
    bundle_id: str,
    version: int,
    files: Iterable[str] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write `manifest.json` for a new directory `path`, hashing each file.

    `files`: paths relative to `path`; default every regular file under it except the
    manifest, its signature and the TensorRT engine cache. `version` is the monotonic bundle
    version (an int). `extra`: further top-level records (e.g. "tracker"). Returns the
    manifest's path.
    """
    root = Path(path)
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "bundle_id": bundle_id,
        "version": int(version),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "files": file_listing(root, files),
        "model": metadata.to_dict(),
    }
    if extra:
        manifest.update(extra)
    save_manifest(root, manifest)
    return root / MANIFEST_NAME


def update_manifest(
    path: str | os.PathLike,
    *,
    files: Iterable[str] | None = None,
    version: int | None = None,
    records: dict | None = None,
) -> ModelDirectory:
    """Re-write the manifest of an existing directory after a deliberate change, and return the
    directory loaded and verified.

    Keeps its bundle id, model metadata and every other record; re-hashes `files` (default:
    every file, as `write_manifest`); `version`: the new bundle version (default unchanged);
    `records`: top-level records to add or replace (e.g. {"tracker": ...}).
    """
    root = Path(path)
    current = read_manifest(root)
    extra = {k: v for k, v in current.items() if k not in MANIFEST_FIELDS}
    extra.update(records or {})
    write_manifest(root, ModelMetadata.from_dict(current.get("model")), bundle_id=str(current.get("bundle_id", "")),
                   version=int(current.get("version", 0)) if version is None else version, files=files, extra=extra)
    return load_model_directory(root)


def install_calibration(path: str | os.PathLike, calibration: CalibrationFile) -> Path:
    """Put `calibration` into a model directory (its calibration.json and the manifest's file
    list), so the device picks it up with the model; returns the file's path. Refuses a
    calibration made for another model version, and a signed directory (changing it would
    break the signature: re-bundle with `laps-export bundle build` instead)."""
    root = Path(path)
    model = load_model_directory(root)
    if calibration.model_version != model.metadata.model_version:
        raise ModelError(
            f"calibration is for model {calibration.model_version!r} but {root} holds "
            f"{model.metadata.model_version!r}; calibrate with --model {root}"
        )
    if (root / SIGNATURE_NAME).exists():
        raise ModelError(
            f"{root} is signed ({SIGNATURE_NAME}); adding {CALIBRATION_NAME} would break the signature, "
            f"re-bundle the model with its calibration using laps-export"
        )
    target = calibration.write(root / CALIBRATION_NAME)
    update_manifest(root, files=sorted(set(model.manifest["files"]) | {CALIBRATION_NAME}))
    return target


def file_listing(root: Path, files: Iterable[str] | None = None) -> dict[str, dict]:
    """{relpath: {"sha256", "size"}} of `files` under `root` (default: every regular file but the
    manifest, its signature and the TensorRT engine cache), sorted by path."""
    if files is None:
        files = [
            p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.name not in (MANIFEST_NAME, SIGNATURE_NAME)
            and p.relative_to(root).parts[0] != TRT_CACHE_DIR
        ]
    listing = {}
    for rel in sorted(files):
        target = root / rel
        listing[rel] = {"sha256": sha256_file(target), "size": target.stat().st_size}
    return listing


def manifest_bytes(manifest: dict) -> bytes:
    """The one encoding of a manifest (sorted keys, one-space indent, newline): signatures cover
    these bytes, and verification never re-encodes."""
    return (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def save_manifest(path: str | os.PathLike, manifest: dict) -> bytes:
    """Write `manifest` as `<path>/manifest.json` atomically (a reader never sees half of it) and
    return the bytes written. The one place a manifest is written."""
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise ModelError(f"a manifest needs schema {MANIFEST_SCHEMA!r}, not {manifest.get('schema')!r}")
    root = Path(path)
    raw = manifest_bytes(manifest)
    tmp = root / (MANIFEST_NAME + ".tmp")
    tmp.write_bytes(raw)
    os.replace(tmp, root / MANIFEST_NAME)
    return raw


#: Model specs every command and the configuration accept besides a path.
DEFAULT_MODEL_SPEC = "default"  # the model shipped inside the package (edge/shipped_models/default)
NO_MODEL_SPEC = "none"          # no tokenizer: the velocity-energy proxy


def shipped_model_dir() -> Path | None:
    """The model directory shipped inside the package (`edge/shipped_models/default`), or None when
    this installation has none."""
    path = Path(__file__).resolve().parents[1] / "shipped_models" / "default"
    return path if (path / MANIFEST_NAME).is_file() else None


def resolve_model_spec(spec: str | None) -> str | None:
    """A user's model spec -> a model directory path, or None for the velocity-energy proxy.

    "default" (and an empty or missing spec) -> the shipped model (None if it is not installed);
    "none" -> None; anything else is returned as the path it names.
    """
    value = (spec or DEFAULT_MODEL_SPEC).strip()
    if value == NO_MODEL_SPEC:
        return None
    if value == DEFAULT_MODEL_SPEC:
        shipped = shipped_model_dir()
        return str(shipped) if shipped is not None else None
    return value
