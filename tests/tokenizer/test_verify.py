"""`laps-export verify`: parity report, golden checks and the FP16 variant."""

import shutil

import numpy as np

from edge.model import load_model_directory, write_manifest
from export.verify import verify_model_directory


def test_verify_passes_an_honest_export_and_reports_fp16(model, model_dir, tmp_path):
    report = verify_model_directory(model_dir, model=model, n_random=32, fp16_path=tmp_path / "fp16.onnx")
    assert report["passed"]
    checks = report["checks"]
    assert checks["random"]["code_agreement"] >= 0.999
    assert checks["random"]["latent_max_abs_error"] < 1e-4
    assert 0.0 <= checks["random"]["fp16_code_agreement"] <= 1.0
    assert checks["golden_clip"]["segments_identical"] and checks["golden_clip"]["segments_expected"] > 0
    assert (tmp_path / "fp16.onnx").is_file()


def test_verify_fails_when_the_golden_segments_disagree(model_dir, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(model_dir.path, copy)
    golden = dict(np.load(copy / "golden" / "golden.npz"))
    golden["clip_segments"] = golden["clip_segments"][1:]
    np.savez_compressed(copy / "golden" / "golden.npz", **golden)
    write_manifest(copy, model_dir.metadata, bundle_id=model_dir.bundle_id, version=1)
    md = load_model_directory(copy)
    report = verify_model_directory(md, n_random=8)
    assert not report["passed"] and not report["checks"]["golden_clip"]["segments_identical"]
