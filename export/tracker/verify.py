"""Parity of the exported tracker: torch vs ONNX Runtime, FP32 and an FP16 variant.

Both run the same online sequence the device runs (`OnnxStudentTracker` on the ORT side, the
same state hand-over in torch): the grid is seeded on frame 0, then every frame is one step,
with re-seeding wherever the ONNX tracker reports a point invisible (the torch side is given
the ONNX side's state decisions, so both always start a step from the same points and the
comparison measures one step's numerical error, not a diverged track; raw graph outputs are
compared, before the re-seeding decision). Pass criterion: the
largest point error over all steps < 0.05 px in FP32. The FP16 variant (FP32 inputs and
outputs, for TensorRT) is written with `export.verify.write_fp16_variant` and its error is
reported (informative, not a pass criterion), with the share of points whose keep/drop decision
(visibility logit and match residual against the model's thresholds) flips, and the largest
difference of the match residual.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from edge.tracking.onnx_student import RESIDUAL_OUTPUT, OnnxStudentTracker, TrackerMetadata
from export.tracker.model import SUBPIXEL_FIELDS, StudentTracker, trim_passes

#: Largest FP32 point error (px) for the export to pass.
FP32_MAX_POINT_ERROR_PX = 0.05


def torch_step(model: StudentTracker, grey: np.ndarray, state: dict) -> dict:
    """One step of the torch model on the device's state layout (numpy in, numpy out)."""
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    with torch.no_grad():
        out = model(torch.from_numpy(grey.astype(np.float32))[None, None],
                    [t[f"feat{i}"] for i in range(model.n_maps)], t["points"][None], t["velocity"][None],
                    t["hidden"][None], t["anchor"][None], t["fresh"][None])
    residual = out["match_residual"]
    return {"points": out["points"][0].numpy(), "visibility_logit": out["visibility_logit"][0].numpy(),
            "match_residual": None if residual is None else residual[0].numpy()}


def compare_on_frames(model: StudentTracker, onnx_path: str | os.PathLike, frames: list[np.ndarray],
                      providers: str = "cpu") -> dict[str, float]:
    """Max and median point error (px) between torch and ORT over an online run of `frames`
    ((H, W) uint8 grey at the model input size), the share of keep decisions that differ and the
    largest match-residual difference (NaN for a graph without one)."""
    from edge.tracking.lk import to_grey

    model.eval()
    trk = OnnxStudentTracker(onnx_path, providers=providers)
    errors, flips, residual_diffs = [], [], []
    for image in frames:
        grey = to_grey(image)
        if trk._state is not None:
            state = {key: v.copy() for key, v in trk._state.items()}
            # The raw graph outputs on the device's state, before any re-seeding decision.
            ort = trk.backend.run({"image": grey.astype(np.float32)[None, None],
                                   **{f"prev_feat{i}": state[f"feat{i}"] for i in range(trk.n_maps)},
                                   **{k: state[k] for k in ("points", "velocity", "hidden", "anchor", "fresh")}})
            ref = torch_step(model, grey, state)
            errors.append(np.linalg.norm(ref["points"] - ort["points_out"], axis=1))
            ort_residual = ort.get(RESIDUAL_OUTPUT)
            # Each side's own motion: the moving cut switches on it, as on the device.
            moved = {k: np.linalg.norm(p - state["points"], axis=1) for k, p in (("ref", ref["points"]),
                                                                                  ("ort", ort["points_out"]))}
            flips.append(trk.keeps(ref["visibility_logit"], ref["match_residual"], moved["ref"])
                         != trk.keeps(ort["visibility_logit"], ort_residual, moved["ort"]))
            if ort_residual is not None and ref["match_residual"] is not None:
                residual_diffs.append(np.abs(ref["match_residual"] - ort_residual.reshape(-1)))
        trk.step(grey)  # advance exactly as the device does (re-seeding included)
    e = np.concatenate(errors) if errors else np.zeros(1)
    return {"point_max_error_px": float(e.max()), "point_median_error_px": float(np.median(e)),
            "visibility_disagreement": float(np.mean(np.concatenate(flips))) if flips else 0.0,
            "match_residual_max_diff": float(np.concatenate(residual_diffs).max()) if residual_diffs else float("nan"),
            "steps": len(errors)}


def verify_tracker(model: StudentTracker, onnx_path: str | os.PathLike, frames: list[np.ndarray],
                   fp16_path: str | os.PathLike | None = None) -> dict:
    """The report: FP32 comparison (pass/fail) and, with `fp16_path`, the FP16 variant's figures."""
    from edge.tracking.onnx_student import TRACKER_METADATA_KEY

    report: dict = {"onnx": str(onnx_path), "frames": len(frames)}
    exported = OnnxStudentTracker(onnx_path, providers="cpu").metadata.architecture
    for key in SUBPIXEL_FIELDS:
        # The weight-free stage may be set at export (`laps-export onnx --subpixel-*`):
        # compare against the torch model with the stage as exported.
        if key in exported:
            setattr(model.cfg, key, exported[key])
    # `laps-export onnx --fine-iterations/--finest-stride` may have dropped passes: drop them here too.
    trim_passes(model, fine_iterations=exported.get("fine_iterations"), finest_stride=exported.get("finest_stride"))
    model.pyramid.with_image = model.cfg.subpixel_on == "image"
    fp32 = compare_on_frames(model, onnx_path, frames)
    report["fp32"] = fp32
    report["fp32_passed"] = fp32["point_max_error_px"] < FP32_MAX_POINT_ERROR_PX
    if fp16_path is not None:
        from export.verify import write_fp16_variant

        write_fp16_variant(onnx_path, fp16_path)
        report["fp16_path"] = str(fp16_path)
        report["fp16"] = compare_on_frames(model, fp16_path, frames)
    trk = OnnxStudentTracker(onnx_path, providers="cpu")
    meta: TrackerMetadata = trk.metadata
    report["metadata"] = {"key": TRACKER_METADATA_KEY, "n_points": meta.n_points,
                          "input_size": list(meta.input_size), "model_version": meta.model_version}
    report["passed"] = bool(report["fp32_passed"])
    return report


def verification_frames(spec: str, fps: float, size: tuple[int, int], n: int) -> list[np.ndarray]:
    """`n` grey frames of a source at the model fps and size (a synthetic:// VALIDATION seed by default)."""
    from export.tracker.teachers import read_grey_frames

    return list(read_grey_frames(spec, fps, size, max_frames=n))


def write_report(report: dict, path: str | os.PathLike) -> Path:
    import json

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return out
