"""The model registry: model directories by version, so codes become z_q again.

A segment travels as FSQ codes plus the `model_version` that produced them (docs/formats.md:
no float latents on the wire). The registry is a folder holding one model directory per version
(any folder names: each is read with `edge.model.load_model_directory`, which verifies every
file's sha256, and indexed by its metadata's `model_version`). A segment's codes turn back into
z_q with exactly that version's FSQ levels and output projection
(`edge.model.ModelMetadata.fsq_projection`, `edge.tokenizer.FSQ.z_q_from_codes`), bit for bit
what the device computed.

Only the metadata is needed here; the ONNX file is verified but never run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from edge.errors import ModelError
from edge.model import MANIFEST_NAME, ModelDirectory, load_model_directory, shipped_model_dir
from edge.tokenizer import FSQ

log = logging.getLogger(__name__)


class UnknownModelError(ModelError):
    """Segments name a model version the registry does not hold."""


class ModelRegistry:
    """Model directories under `root`, indexed by model version.

    A directory that fails verification is skipped with a warning (one bad upload must not
    hide every other version); two directories claiming one version is a `ModelError`.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._models: dict[str, ModelDirectory] = {}
        self._fsq: dict[str, FSQ] = {}
        self._stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.skipped: dict[str, str] = {}
        if not self.root.is_dir():
            return
        for manifest in sorted(self.root.glob(f"*/{MANIFEST_NAME}")):
            folder = manifest.parent
            try:
                model = load_model_directory(folder)
            except ModelError as err:
                self.skipped[str(folder)] = str(err)
                log.warning("model registry: skipping %s: %s", folder, err)
                continue
            version = model.metadata.model_version or folder.name
            if version in self._models:
                raise ModelError(f"model registry {self.root}: {folder} and {self._models[version].path} both claim "
                                 f"model version {version!r}; remove one of them")
            self._models[version] = model

    @property
    def versions(self) -> list[str]:
        return sorted(self._models)

    def __contains__(self, version: str) -> bool:
        return version in self._models

    def model(self, version: str) -> ModelDirectory:
        """The verified model directory of `version`; `UnknownModelError` if absent."""
        try:
            return self._models[version]
        except KeyError:
            have = ", ".join(self.versions) or "none"
            shipped = shipped_model_version()
            hint = f"; this installation ships {shipped!r}" if shipped else ""
            raise UnknownModelError(
                f"model version {version!r} is not in the registry {self.root} (it holds: {have}{hint}); add the "
                f"model directory or bundle whose manifest.json says model_version {version!r} with `laps-central "
                f"models add PATH --config CENTRAL_TOML` (PATH: the bundle the devices run, or a model folder that "
                f"`laps-export onnx` wrote)"
            ) from None

    def fsq(self, version: str) -> FSQ:
        """The FSQ (levels + output projection) of `version`."""
        if version not in self._fsq:
            meta = self.model(version).metadata
            weight, bias = meta.fsq_projection()
            self._fsq[version] = FSQ(meta.fsq_levels, weight, bias)
        return self._fsq[version]

    def codebook_stats(self, version: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-dimension mean and standard deviation (float32, (D,)) of z_q over the whole
        codebook of `version` (every code once). A property of the model, not of the data, so
        every run and every chunk of a large run standardises tokens the same way."""
        if version not in self._stats:
            fsq = self.fsq(version)
            s = np.zeros(fsq.dim, np.float64)
            ss = np.zeros(fsq.dim, np.float64)
            for a in range(0, fsq.codebook_size, 65536):
                z = fsq.z_q_from_codes(np.arange(a, min(a + 65536, fsq.codebook_size))).astype(np.float64)
                s += z.sum(axis=0)
                ss += (z * z).sum(axis=0)
            mean = s / fsq.codebook_size
            std = np.sqrt(np.maximum(ss / fsq.codebook_size - mean * mean, 0.0))
            std[std < 1e-12] = 1.0
            self._stats[version] = (mean.astype(np.float32), std.astype(np.float32))
        return self._stats[version]

    def latent_dim(self, version: str) -> int:
        """D, the width of z_q for `version`."""
        return self.fsq(version).dim

    def z_q(self, codes: np.ndarray | list[int], version: str) -> np.ndarray:
        """(S,) codes of one segment -> (S, D) float32 z_q with that version's projection.

        A code outside the version's codebook is a `ModelError` naming it (the segment came
        from a different model than its message says).
        """
        return codes_to_z_q(self.fsq(version), codes, version)


def codes_to_z_q(fsq: FSQ, codes: np.ndarray | list[int], version: str) -> np.ndarray:
    """`ModelRegistry.z_q` with the version's FSQ in hand: (S,) codes -> (S, D) float32 z_q, a
    code outside the codebook a `ModelError`. Needs no model files, so a Spark executor that
    received the FSQ by broadcast rebuilds z_q exactly as the registry does."""
    c = np.asarray(codes, dtype=np.int64)
    if c.size and (c.min() < 0 or c.max() >= fsq.codebook_size):
        bad = int(c[(c < 0) | (c >= fsq.codebook_size)][0])
        raise ModelError(f"code {bad} is outside the codebook of model {version!r} (size {fsq.codebook_size}); "
                         "the segment was not produced by this model version")
    return fsq.z_q_from_codes(c)


def add_model(registry_root: str | os.PathLike, model_dir: str | os.PathLike) -> Path:
    """Copy a verified model directory into the registry as `<root>/<model_version>/`."""
    import shutil

    model = load_model_directory(model_dir)
    version = model.metadata.model_version or Path(model_dir).name
    target = Path(registry_root) / version
    if target.exists():
        raise ModelError(f"model registry already holds {target}; remove it first to replace version {version!r}")
    shutil.copytree(model.path, target)
    load_model_directory(target)
    return target


def register_model(registry_root: str | os.PathLike, model_dir: str | os.PathLike) -> tuple[str, Path | None]:
    """Make sure the registry holds the model version of `model_dir` (a model directory or an
    OTA bundle, which is one plus its signature): copied in when absent, left alone when that
    version is already there (bundles that change only the calibration share the tokenizer's
    version, and the registry needs only its FSQ projection). Returns (model version, the
    folder it was copied to, or None when it was already registered). A folder that is no
    verified model is a `ModelError`."""
    model = load_model_directory(model_dir)
    version = model.metadata.model_version or Path(model_dir).name
    registry = ModelRegistry(registry_root)
    if version in registry:
        return version, None
    target = Path(registry_root) / version
    suffix = 1
    while target.exists():  # a folder of that name that holds another version (any names are allowed)
        target = Path(registry_root) / f"{version}-{suffix}"
        suffix += 1
    Path(registry_root).mkdir(parents=True, exist_ok=True)
    import shutil

    shutil.copytree(model.path, target, ignore=shutil.ignore_patterns("*.engine", "*.plan"))
    load_model_directory(target)
    log.info("model registry %s: registered model version %s from %s", registry_root, version, model_dir)
    return version, target


def register_shipped_model(registry_root: str | os.PathLike) -> str | None:
    """Register the model this installation ships (`edge/shipped_models/default`), the one every device
    runs until a bundle replaces it. Returns its version (None when none is shipped)."""
    shipped = shipped_model_dir()
    if shipped is None:
        return None
    version, _ = register_model(registry_root, shipped)
    return version


def shipped_model_version() -> str:
    """The model version of the shipped model ("" when none is shipped or it is unreadable)."""
    shipped = shipped_model_dir()
    if shipped is None:
        return ""
    try:
        return load_model_directory(shipped).metadata.model_version
    except ModelError:
        return ""
