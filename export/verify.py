"""Parity of the exported tokenizer: torch vs ONNX Runtime, FP32 and an FP16 variant.

Judged the way the device uses the model (FSQ rounding outside the network,
docs/method.md#motion-tokenizer): the latent's max-abs error is reported, but the pass criteria are
code agreement (>= 99.9 % of tokens for FP32) and identical segments on the golden clip. The FP16
variant (FP32 inputs/outputs, for TensorRT) is written and its agreement reported; it is
informative, not a pass criterion.

Golden data (`golden/golden.npz` in the model directory), made by `make_golden`:
    window_velocity (K, S, N, 2) float32 px/step, window_valid (K, S, N) bool,
    window_codes (K, S) int64 expected codes of every token (torch);
    clip_velocity (F, N, 2) float16 px/step (the stored values ARE the input), clip_valid (F, N),
    clip_codes (F,) expected per-frame newest-token codes (runtime semantics: zero-padded ring),
    clip_segments (K, 2) [start, end) frames from `run_series_latent` with `clip_params`,
    clip_params (8,) float64 `HysteresisParams.to_array()` used for them.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from edge.model import GOLDEN_DIR, ModelDirectory, load_model_directory
from edge.ota.selftest import GOLDEN_NAME, replay_golden_clip
from edge.tokenizer import FSQ, TokenizerRuntime
from edge.tokenizer.runtime import INPUT_NAME, OUTPUT_NAME

#: Minimum fraction of identical codes for the FP32 export to pass.
FP32_MIN_CODE_AGREEMENT = 0.999


def ring_windows(velocity_norm: np.ndarray, steps: int) -> np.ndarray:
    """Per-frame encoder inputs as the runtime builds them: for each frame t the last `steps`
    normalised steps up to t, zero-padded before the stream start. (F, N, 2) -> (F, S, N, 2) view."""
    f = velocity_norm.shape[0]
    padded = np.concatenate([np.zeros((steps - 1,) + velocity_norm.shape[1:], np.float32), velocity_norm])
    idx = np.arange(f)[:, None] + np.arange(steps)[None, :]
    return padded[idx]


def torch_latents(model, velocity_norm: np.ndarray, batch: int = 64) -> np.ndarray:
    """Encoder latents (B, S, L) from the torch model for normalised inputs (B, S, N, 2)."""
    import torch

    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(velocity_norm), batch):
            outs.append(model.encode(torch.from_numpy(np.ascontiguousarray(velocity_norm[i:i + batch]))).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def ort_latents(backend, velocity_norm: np.ndarray) -> np.ndarray:
    """Latents (B, S, L) from an inference backend (batch 1, fixed shape) for inputs (B, S, N, 2)."""
    return np.stack([backend.run({INPUT_NAME: w[None]})[OUTPUT_NAME][0] for w in velocity_norm])


def make_golden(model, conventions, window_velocity: np.ndarray, window_valid: np.ndarray,
                clip_velocity: np.ndarray, clip_valid: np.ndarray, params) -> dict[str, np.ndarray]:
    """Golden arrays for a model directory (expected codes from torch; segments from the kernel)."""
    from edge.energy import run_series_latent
    from export.tokenizer.windows import normalise_velocity

    fsq = _fsq_of(model)
    steps = conventions.steps
    wv = np.asarray(window_velocity, np.float32)
    w_codes = fsq.codes(torch_latents(model, normalise_velocity(wv, window_valid, conventions.velocity_scale_px)))
    cv16 = np.asarray(clip_velocity, np.float32).astype(np.float16)
    cnorm = normalise_velocity(cv16.astype(np.float32), clip_valid, conventions.velocity_scale_px)
    newest = torch_latents(model, ring_windows(cnorm, steps))[:, -1]
    clip_codes = fsq.codes(newest)
    segments = run_series_latent(fsq.z_q_from_codes(clip_codes), params).segments
    return {
        "window_velocity": wv, "window_valid": np.asarray(window_valid, bool), "window_codes": w_codes,
        "clip_velocity": cv16, "clip_valid": np.asarray(clip_valid, bool), "clip_codes": clip_codes,
        "clip_segments": np.asarray(segments, np.int64).reshape(-1, 2), "clip_params": params.to_array(),
    }


def write_fp16_variant(onnx_path: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """An FP16 copy of an exported graph (tokenizer encoder or tracker) with FP32 inputs and
    outputs (the TensorRT path)."""
    import onnx
    from onnxconverter_common import float16

    proto = onnx.load(str(onnx_path))
    separate_consumed_outputs(proto)
    with warnings.catch_warnings():
        # The attention mask constant (-1e4) is exactly representable; the converter warns anyway.
        warnings.simplefilter("ignore", UserWarning)
        half = float16.convert_float_to_float16(proto, keep_io_types=True)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(half, str(out))
    return out


def verify_model_directory(
    model_dir: ModelDirectory | str | os.PathLike,
    *,
    model=None,
    real_windows: tuple[np.ndarray, np.ndarray] | None = None,
    n_random: int = 256,
    seed: int = 0,
    fp16_path: str | os.PathLike | None = None,
    providers: str = "cpu",
) -> dict:
    """Compare torch (when `model` is given) with ONNX Runtime, check the golden data, report.

    real_windows: optional extra (velocity (B, S, N, 2) px, valid (B, S, N)) windows.
    fp16_path: where to write the FP16 variant (None: skip it). Returns the JSON-ready report
    with "passed".
    """
    from edge.inference import create_backend
    from export.tokenizer.windows import normalise_velocity

    md = model_dir if isinstance(model_dir, ModelDirectory) else load_model_directory(model_dir)
    meta = md.metadata
    runtime = TokenizerRuntime(md, providers=providers)
    fsq = runtime.fsq
    report: dict = {"model_dir": str(md.path), "model_version": meta.model_version,
                    "providers": runtime.providers_in_use, "checks": {}}
    checks = report["checks"]

    # Inputs: random windows (a mix of rest and motion, like real clips) + golden + real ones.
    rng = np.random.default_rng(seed)
    rand_v = rng.normal(0.0, 2.0, size=(n_random, meta.steps, meta.n_points, 2)).astype(np.float32)
    rand_v *= rng.random((n_random, 1, meta.n_points, 1)) < rng.random((n_random, 1, 1, 1))
    rand_valid = rng.random((n_random, meta.steps, meta.n_points)) > 0.05
    sets = {"random": (rand_v, rand_valid)}
    golden_path = md.path / GOLDEN_DIR / GOLDEN_NAME
    golden = dict(np.load(golden_path)) if golden_path.is_file() else None
    if golden is not None:
        sets["golden_windows"] = (golden["window_velocity"], golden["window_valid"])
    if real_windows is not None:
        sets["real"] = (np.asarray(real_windows[0], np.float32), np.asarray(real_windows[1], bool))

    fp16_backend = None
    if fp16_path is not None:
        write_fp16_variant(md.tokenizer_path, fp16_path)
        fp16_backend = create_backend(fp16_path, providers=providers)
        report["fp16_path"] = str(fp16_path)

    passed = True
    for name, (vel, valid) in sets.items():
        x = normalise_velocity(vel, valid, meta.velocity_scale_px)
        ort_lat = ort_latents(runtime.backend, x)
        entry: dict = {"windows": int(len(x))}
        if model is not None:
            ref = torch_latents(model, x)
            entry["latent_max_abs_error"] = float(np.abs(ref - ort_lat).max())
            entry["code_agreement"] = float(np.mean(fsq.codes(ref) == fsq.codes(ort_lat)))
            entry["newest_code_agreement"] = float(np.mean(fsq.codes(ref[:, -1]) == fsq.codes(ort_lat[:, -1])))
            passed &= entry["code_agreement"] >= FP32_MIN_CODE_AGREEMENT
            if fp16_backend is not None:
                half = ort_latents(fp16_backend, x)
                entry["fp16_latent_max_abs_error"] = float(np.abs(ref - half).max())
                entry["fp16_code_agreement"] = float(np.mean(fsq.codes(ref) == fsq.codes(half)))
        if name == "golden_windows":
            entry["golden_code_agreement"] = float(np.mean(fsq.codes(ort_lat) == golden["window_codes"]))
            passed &= entry["golden_code_agreement"] >= FP32_MIN_CODE_AGREEMENT
        checks[name] = entry

    if golden is not None:
        # The device's own replay (edge.ota.selftest), so export and the device judge alike.
        codes, segments = replay_golden_clip(runtime, golden)
        expected = golden["clip_segments"]
        same = segments.shape == expected.shape and bool(np.all(segments == expected))
        checks["golden_clip"] = {
            "frames": int(len(codes)), "code_agreement": float(np.mean(codes == golden["clip_codes"])),
            "segments_expected": int(len(expected)), "segments_found": int(len(segments)),
            "segments_identical": same,
        }
        passed &= same
    else:
        checks["golden_clip"] = {"skipped": f"{golden_path} is missing"}
    report["thresholds"] = {"fp32_min_code_agreement": FP32_MIN_CODE_AGREEMENT}
    report["passed"] = bool(passed)
    return report


def write_report(report: dict, path: str | os.PathLike) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return out


def _fsq_of(model) -> FSQ:
    w = model.fsq.project_out.weight.detach().cpu().numpy()
    b = model.fsq.project_out.bias.detach().cpu().numpy()
    return FSQ(model.cfg.fsq_levels, w, b)


def separate_consumed_outputs(proto) -> None:
    """Give every graph output that other nodes also read (the tracker's state maps) its own Identity.

    The FP16 converter (keep_io_types) casts graph outputs back to float32 by renaming them; a
    node reading the same tensor inside the graph then sees the wrong type and ORT refuses the
    FP16 model. Reading an internal copy instead keeps both forms valid. Only the FP16 variant
    gets the copies: in the FP32 graph they cost ~0.4 ms per tracker step on the CPU.
    """
    from onnx import helper

    outputs = {o.name for o in proto.graph.output}
    consumed = {name for node in proto.graph.node for name in node.input} & outputs
    for name in sorted(consumed):
        internal = f"{name}_internal"
        for node in proto.graph.node:
            for i, value in enumerate(node.output):
                if value == name:
                    node.output[i] = internal
            for i, value in enumerate(node.input):
                if value == name:
                    node.input[i] = internal
        proto.graph.node.append(helper.make_node("Identity", [internal], [name], name=f"{name}_output"))
