"""The loop back to the device: a clustering run's primitives into a model directory.

`export_library` (what `laps-central library export` calls) builds the run's
`edge.primitive_library.PrimitiveLibrary` from what the run saved (its centres and z-score
statistics, `central.cluster_run.save_run`), the embedding it used (method, EmbeddingConfig) and
the model registry (the tokenizer's codebook statistics the Transformer standardises tokens
with), and writes it into a COPY of the run's model directory with the manifest updated. That
folder is an ordinary model directory: `laps-export bundle build` makes the signed OTA bundle
of it and `laps-central rollout start` ships it; a device that loads it labels every finished
segment with the nearest primitive and sends the label in its `laps.segment/2` messages.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Mapping

from central.dataset_export import resolve_run
from central.registry import ModelRegistry
from central.store_protocol import CentralStore
from edge.errors import ConfigError
from edge.model import LIBRARY_NAME, ModelDirectory, load_model_directory, save_manifest, update_manifest
from edge.primitive_library import PrimitiveLibrary
from edge.segment_embedding import EmbeddingConfig


def library_of_run(run: dict, registry: ModelRegistry, names: Mapping[int, str] | None = None) -> PrimitiveLibrary:
    """The primitive library of a stored run (a row of `CentralStore.cluster_runs()`).
    names: cluster id -> name (the others stay unnamed). `ConfigError` for a run saved
    without centres (before libraries existed) or a name for a cluster the run does not have."""
    run_id, version, method = run["run_id"], run["model_version"], run["method"]
    params = run["params"]
    saved = params.get("primitives")
    if not isinstance(saved, dict):
        raise ConfigError(f"clustering run {run_id} was saved without its centres (an older release); cluster "
                          "again with `laps-central cluster` and export that run")
    input_dim = registry.latent_dim(version)
    token_mean = token_std = None
    if method == "transformer":
        token_mean, token_std = registry.codebook_stats(version)  # what run_clustering standardised with
    k = int(run["k"])
    named = dict(names or {})
    bad = sorted(c for c in named if not 0 <= int(c) < k)
    if bad:
        raise ConfigError(f"--name names cluster {bad[0]}, but run {run_id} has clusters 0-{k - 1}")
    labels = tuple(named.get(c, "") for c in range(k)) if named else ()
    return PrimitiveLibrary(
        library_id=run_id, model_version=version, method=method,
        embedding=EmbeddingConfig(**params.get("embedding", {})), input_dim=input_dim,
        feature_mean=saved["feature_mean"], feature_std=saved["feature_std"], centers=saved["centers"],
        token_mean=token_mean, token_std=token_std, names=labels,
    )


def export_library(store: CentralStore, registry: ModelRegistry, out_dir: str | os.PathLike, *, run_id: str = "latest",
                   names: Mapping[int, str] | None = None) -> ModelDirectory:
    """Write the model directory of run `run_id` ('latest' = the newest) with its primitive
    library into `out_dir` (which must not exist or be empty), and return it loaded and
    verified. The copy keeps the model's files, calibration and bundle id; a library the
    source directory already carried is replaced."""
    run = resolve_run(store, run_id)
    library = library_of_run(run, registry, names)
    model = registry.model(run["model_version"])
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} exists and is not an empty folder; pick a new folder for the model directory")
    files = [rel for rel in model.manifest["files"] if rel != LIBRARY_NAME]
    try:
        out.mkdir(parents=True, exist_ok=True)
        for rel in files:  # only what the manifest lists: no signature, no engines built on a device
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(model.path / rel, out / rel)
        manifest = dict(model.manifest)
        manifest.pop("rollback_from", None)  # a signed downgrade marker belongs to the bundle it was signed in
        save_manifest(out, manifest)
        library.write(out / LIBRARY_NAME)
    except OSError as err:
        raise ConfigError(f"cannot write the model directory {out} ({err.strerror or err}); free space or choose "
                          "another --out") from None
    record = {"library_id": library.library_id, "method": library.method, "k": library.k}
    update_manifest(out, files=sorted(files + [LIBRARY_NAME]), records={"primitive_library": record})
    return load_model_directory(out)  # verifies every file and checks the library against the model
