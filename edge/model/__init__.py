"""Tokenizer model metadata and model directories (manifest with sha256 of every file).

    from edge.model import ModelMetadata, ModelDirectory, load_model_directory
"""

from edge.model.directory import (
    CALIBRATION_NAME,
    DEFAULT_MODEL_SPEC,
    GOLDEN_DIR,
    LIBRARY_NAME,
    MANIFEST_NAME,
    NO_MODEL_SPEC,
    TOKENIZER_NAME,
    ModelDirectory,
    install_calibration,
    load_model_directory,
    read_manifest,
    resolve_model_spec,
    save_manifest,
    sha256_file,
    shipped_model_dir,
    update_manifest,
    write_manifest,
)
from edge.model.metadata import CONVENTION_XY, ONNX_METADATA_KEY, ModelMetadata

__all__ = [
    "CALIBRATION_NAME", "CONVENTION_XY", "DEFAULT_MODEL_SPEC", "GOLDEN_DIR", "LIBRARY_NAME", "MANIFEST_NAME",
    "NO_MODEL_SPEC", "ONNX_METADATA_KEY", "TOKENIZER_NAME", "ModelDirectory", "ModelMetadata", "install_calibration",
    "load_model_directory", "read_manifest", "resolve_model_spec", "save_manifest", "sha256_file", "shipped_model_dir",
    "update_manifest", "write_manifest",
]
