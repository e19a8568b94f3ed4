"""Tokenizer model metadata and model directories (manifest with sha256 of every file).

    from edge.model import ModelMetadata, ModelDirectory, load_model_directory
"""

from edge.model.directory import (
    CALIBRATION_NAME,
    GOLDEN_DIR,
    MANIFEST_NAME,
    TOKENIZER_NAME,
    ModelDirectory,
    load_model_directory,
    sha256_file,
    write_manifest,
)
from edge.model.metadata import CONVENTION_XY, ONNX_METADATA_KEY, ModelMetadata

__all__ = [
    "CALIBRATION_NAME", "CONVENTION_XY", "GOLDEN_DIR", "MANIFEST_NAME", "ONNX_METADATA_KEY",
    "TOKENIZER_NAME", "ModelDirectory", "ModelMetadata", "load_model_directory", "sha256_file",
    "write_manifest",
]
