"""Export the tokenizer's encoder to ONNX and write the model directory.

The graph ends at the pre-quantisation latent: input `velocity` (1, T-1, N, 2) float32
(normalised, see `DataConventions`), output `latent` (1, T-1, L) float32. Shapes are fixed,
the opset pinned (`OPSET`), and the full `ModelMetadata` JSON is embedded in the file's
metadata_props under `laps.metadata` (plus a few flat keys for people reading it with Netron).
"""

from __future__ import annotations

import os
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from edge.calibration_file import CalibrationFile
from edge.errors import ConfigError
from edge.model import (
    CALIBRATION_NAME,
    GOLDEN_DIR,
    ONNX_METADATA_KEY,
    TOKENIZER_NAME,
    ModelDirectory,
    ModelMetadata,
    load_model_directory,
    write_manifest,
)
from edge.tokenizer.runtime import INPUT_NAME, OUTPUT_NAME
from export.tokenizer.model import EncoderExport, MotionTokenizer
from export.onnx_metadata import stamp_and_save
from export.tokenizer.windows import DataConventions

#: The pinned ONNX opset (TensorRT 10 and ORT >= 1.17 both take 17).
OPSET = 17


def build_metadata(
    model: MotionTokenizer, conventions: DataConventions, *, model_version: str, training_data_hash: str = ""
) -> ModelMetadata:
    """The model's metadata: conventions + architecture + FSQ output projection weights."""
    cfg = model.cfg
    w = model.fsq.project_out.weight.detach().cpu().numpy().astype(np.float32)  # (d, L)
    b = model.fsq.project_out.bias.detach().cpu().numpy().astype(np.float32)
    return ModelMetadata(
        fps=float(conventions.fps), window=int(conventions.window), n_points=conventions.n_points,
        grid=conventions.grid, grid_margin=float(conventions.grid_margin),
        input_size=tuple(int(v) for v in conventions.input_size), convention=conventions.convention,
        velocity_scale_px=float(conventions.velocity_scale_px),
        max_displacement_px=int(conventions.max_displacement_px), fsq_levels=tuple(cfg.fsq_levels),
        d_model=cfg.d_model, n_heads=cfg.n_heads, n_layers=cfg.n_layers, preset=cfg.preset,
        fsq_out_weight=tuple(tuple(float(v) for v in row) for row in w),
        fsq_out_bias=tuple(float(v) for v in b),
        model_version=model_version, training_data_hash=training_data_hash,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )


def export_encoder(model: MotionTokenizer, metadata: ModelMetadata, path: str | os.PathLike) -> Path:
    """Write the encoder as ONNX (fixed shapes, opset `OPSET`, metadata embedded)."""
    import onnx

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    wrapper = EncoderExport(model).eval()
    example = torch.zeros(1, metadata.steps, metadata.n_points, 2)
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript; for this fixed-shape graph both give the same operators.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, (example,), str(out), dynamo=False, opset_version=OPSET,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
            external_data=False,
        )
    model.train(was_training)  # the exporter flips modes; leave the caller's as it was
    proto = onnx.load(str(out))
    flat = {
        ONNX_METADATA_KEY: metadata.to_json(),
        "laps.fps": f"{metadata.fps:g}", "laps.window": str(metadata.window),
        "laps.n_points": str(metadata.n_points), "laps.convention": metadata.convention,
        "laps.input_size": f"{metadata.input_size[0]}x{metadata.input_size[1]}",
        "laps.fsq_levels": ",".join(str(v) for v in metadata.fsq_levels),
        "laps.model_version": metadata.model_version,
    }
    stamp_and_save(proto, flat, (
        "LAPS motion tokenizer encoder: normalised point velocities (1, T-1, N, 2) -> pre-quantisation "
        "FSQ latent (1, T-1, L). FSQ rounding and the output projection run outside (see laps.metadata)."
    ), out)
    return out


def write_model_directory(
    model: MotionTokenizer,
    conventions: DataConventions,
    out_dir: str | os.PathLike,
    *,
    model_version: str,
    bundle_version: int = 1,
    training_data_hash: str = "",
    calibration: CalibrationFile | None = None,
    golden: dict[str, np.ndarray] | None = None,
    overwrite: bool = False,
) -> ModelDirectory:
    """Export `model` into a fresh model directory and return it, loaded and verified.

    calibration: the thresholds to ship as calibration.json.
    golden: arrays for golden/golden.npz (see `export.verify.make_golden`); codes are checked by
    `laps-export verify` and the device self-test.
    """
    out = Path(out_dir)
    if out.exists():
        if not overwrite:
            raise ConfigError(f"output directory {out} exists; pass --overwrite or choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    metadata = build_metadata(model, conventions, model_version=model_version, training_data_hash=training_data_hash)
    export_encoder(model, metadata, out / TOKENIZER_NAME)
    if calibration is not None:
        calibration.write(out / CALIBRATION_NAME)
    if golden is not None:
        (out / GOLDEN_DIR).mkdir()
        np.savez_compressed(out / GOLDEN_DIR / "golden.npz", **golden)
    write_manifest(out, metadata, bundle_id=f"laps-tokenizer-{model_version}", version=bundle_version)
    return load_model_directory(out)
