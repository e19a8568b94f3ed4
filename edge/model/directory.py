"""A model directory (the unsigned form of the OTA bundle) and its manifest.

Layout (docs/formats.md#model-bundle):
    manifest.json      bundle id, monotonic version, created, files {relpath: {sha256, size}},
                       model metadata (the same JSON the ONNX file embeds)
    tokenizer.onnx     encoder up to the pre-quantisation latent
    calibration.json   HysteresisParams dict + provenance (thresholds belong to one tokenizer)
    golden/            input windows with expected codes; a golden clip with expected segments
    manifest.sig       Ed25519 signatures over the manifest bytes (a signed OTA bundle; edge/ota)
    trt-cache/         TensorRT engines built on this device (never shipped, never in the manifest)

`load_model_directory` verifies every listed file's size and sha256 before anything reads it,
so a tampered or truncated file is a one-line `ModelError`, never a wrong answer.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from edge.errors import ModelError
from edge.model.metadata import ModelMetadata

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "laps.bundle-manifest/1"
TOKENIZER_NAME = "tokenizer.onnx"
CALIBRATION_NAME = "calibration.json"
GOLDEN_DIR = "golden"


@dataclass(frozen=True)
class ModelDirectory:
    """A verified model directory.

    path:           the directory.
    metadata:       the tokenizer's `ModelMetadata` (from manifest.json).
    tokenizer_path: path of tokenizer.onnx.
    calibration:    parsed calibration.json, or None when the directory has none.
    manifest:       the parsed manifest.json.
    """

    path: Path
    metadata: ModelMetadata
    tokenizer_path: Path
    calibration: dict | None
    manifest: dict

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
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ModelError(f"{manifest_path} is missing; re-export the model with `laps-export onnx`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelError(f"{manifest_path} is unreadable ({err}); re-export the model") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        found = manifest.get("schema") if isinstance(manifest, dict) else type(manifest).__name__
        raise ModelError(f"{manifest_path} has schema {found!r}, expected {MANIFEST_SCHEMA!r}; re-export the model")
    files = manifest.get("files")
    if not isinstance(files, dict) or TOKENIZER_NAME not in files:
        raise ModelError(f"{manifest_path} does not list {TOKENIZER_NAME}; re-export the model")
    for rel, entry in files.items():
        _verify_file(root, rel, entry)
    metadata = ModelMetadata.from_dict(manifest.get("model"))
    calibration = None
    if CALIBRATION_NAME in files:
        try:
            calibration = json.loads((root / CALIBRATION_NAME).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ModelError(f"{root / CALIBRATION_NAME} is not valid JSON ({err}); re-run calibration") from None
    return ModelDirectory(
        path=root, metadata=metadata, tokenizer_path=root / TOKENIZER_NAME,
        calibration=calibration, manifest=manifest,
    )


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
    """Write `manifest.json` for the directory `path`, hashing each file.

    `files`: paths relative to `path`; default every regular file under it except the
    manifest and its signature. `version` is the monotonic bundle version (an int).
    Returns the manifest's path.
    """
    root = Path(path)
    if files is None:
        files = sorted(
            p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and p.name not in (MANIFEST_NAME, "manifest.sig")
        )
    listing = {}
    for rel in files:
        target = root / rel
        listing[rel] = {"sha256": sha256_file(target), "size": target.stat().st_size}
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "bundle_id": bundle_id,
        "version": int(version),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "files": listing,
        "model": metadata.to_dict(),
    }
    if extra:
        manifest.update(extra)
    out = root / MANIFEST_NAME
    out.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return out


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
