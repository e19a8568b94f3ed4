"""`laps-export distill-tracker`, `onnx` (tracker checkpoint) and `verify --tracker-checkpoint` end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge.model import load_model_directory, sha256_file
from export.cli import main
from export.tracker.train import load_checkpoint

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "edge" / "shipped_models" / "default"
TINY_ARGS = ["--synthetic-minutes", "0.1", "--val-synthetic-seeds", "500", "--val-minutes", "0.05",
             "--iterations", "2", "--eval-every", "2", "--batch-size", "4", "--points", "8", "--crop", "64x48",
             "--channels", "4,8,8,8", "--radius", "2", "--subpixel-iterations", "1", "--workers", "1",
             "--no-progress"]


def test_distill_export_into_a_bundle_and_verify(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["distill-tracker", "--synthetic-seeds", "100", *TINY_ARGS, "--out", str(run)]) == 0
    assert "val EPE median" in capsys.readouterr().out
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_DIR, bundle)
    tokenizer_sha = sha256_file(bundle / "tokenizer.onnx")
    before = int(load_model_directory(bundle).manifest["version"])
    assert main(["onnx", "--checkpoint", str(run / "best.pt"), "--out", str(bundle), "--model-version", "cli-t",
                 "--subpixel-radius", "4", "--subpixel-blur", "1.0", "--subpixel-iterations", "2",
                 "--visibility-threshold", "0.5", "--residual-threshold", "0.8", "--finest-stride", "2",
                 "--subpixel-anchor-iterations", "1", "--subpixel-anchor-px", "0.8"]) == 0
    md = load_model_directory(bundle)
    assert int(md.manifest["version"]) == before + 1
    assert md.manifest["tracker"]["model_version"] == "cli-t"
    # The weight-free stage as set at export, recorded in the metadata (verify below rebuilds it).
    arch = md.manifest["tracker"]["architecture"]
    assert (arch["subpixel_radius"], arch["subpixel_blur"], arch["subpixel_iterations"]) == (4, 1.0, 2)
    # The drift correction's seed window (9 x 9 pixels) rides in the anchor state.
    assert (arch["subpixel_anchor_iterations"], arch["subpixel_anchor_px"]) == (1, 0.8)
    assert md.manifest["tracker"]["anchor_dim"] == 8 + 8 + 8 + 81
    # Trained with passes at strides 8..1 and one more at 1: verify below drops them on the torch side too.
    assert (arch["finest_stride"], arch["fine_iterations"]) == (2, 0)
    assert (md.manifest["tracker"]["visibility_threshold"], md.manifest["tracker"]["residual_threshold"]) == (0.5, 0.8)
    assert sha256_file(bundle / "tokenizer.onnx") == tokenizer_sha
    report = tmp_path / "verify" / "report.json"
    assert main(["verify", "--model-dir", str(bundle), "--tracker-checkpoint", str(run / "best.pt"),
                 "--frames", "4", "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["passed"] and data["fp32"]["point_max_error_px"] < 0.05
    assert Path(data["fp16_path"]).is_file()


def test_held_out_seeds_are_refused(tmp_path, capsys):
    assert main(["distill-tracker", "--synthetic-seeds", "900", *TINY_ARGS, "--out", str(tmp_path)]) == 2
    assert "HELD-OUT 900-999 is only for benchmarks" in capsys.readouterr().err


def test_a_teacher_is_required(tmp_path, capsys):
    assert main(["distill-tracker", *TINY_ARGS, "--out", str(tmp_path)]) == 2
    assert "no teacher given" in capsys.readouterr().err


def test_an_out_of_range_subpixel_setting_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["distill-tracker", "--synthetic-seeds", "100", *TINY_ARGS, "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["onnx", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "t"), "--model-version", "x",
                 "--subpixel-radius", "0"]) == 2
    err = capsys.readouterr().err
    assert "--subpixel-radius 0 is out of range" in err and "Traceback" not in err
    assert main(["onnx", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "t"), "--model-version", "x",
                 "--subpixel-radius", "2", "--subpixel-moving-radius", "3"]) == 2
    err = capsys.readouterr().err
    assert "moving window (radius 3) must fit in the main one (radius 2)" in err and "Traceback" not in err
    for flag, value, says in (("--residual-threshold", "-0.1", "--residual-threshold -0.1 is out of range"),
                              ("--fine-iterations", "2", "--fine-iterations/--finest-stride: fine_iterations 2 is out "
                                                        "of range: this model was trained with 1, so 0..1"),
                              ("--finest-stride", "3", "--fine-iterations/--finest-stride: finest_stride 3 is out of "
                                                       "range"),
                              ("--visibility-threshold", "nan", "--visibility-threshold nan is not a number"),
                              ("--subpixel-anchor-px", "0", "--subpixel-anchor-px 0.0 is out of range; give a "
                                                            "distance > 0 px")):
        assert main(["onnx", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "t"),
                     "--model-version", "x", flag, value]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
    assert main(["onnx", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "t"), "--model-version", "x",
                 "--subpixel-iterations", "0", "--residual-threshold", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "--residual-threshold needs the sub-pixel stage" in err and "Traceback" not in err
    assert main(["onnx", "--checkpoint", str(run / "best.pt"), "--out", str(tmp_path / "t"), "--model-version", "x",
                 "--subpixel-iterations", "0", "--subpixel-anchor-iterations", "1"]) == 2
    err = capsys.readouterr().err
    assert "--subpixel-anchor-iterations corrects the sub-pixel stage's result, but that stage is off" in err


def test_tracker_only_flags_are_refused_for_a_tokenizer_export(tmp_path, capsys):
    # Not silently ignored: the flag would change nothing in a tokenizer bundle.
    assert main(["onnx", "--checkpoint", str(tmp_path / "tokenizer.pt"), "--out", str(tmp_path / "t"),
                 "--model-version", "x", "--finest-stride", "2"]) == 2
    err = capsys.readouterr().err
    assert "--finest-stride applies to a tracker checkpoint only" in err and "Traceback" not in err


def test_a_fine_tune_from_the_command_line_and_its_mistakes(tmp_path, capsys):
    run, tuned = tmp_path / "run", tmp_path / "tuned"
    assert main(["distill-tracker", "--synthetic-seeds", "100", *TINY_ARGS, "--out", str(run)]) == 0
    assert main(["distill-tracker", "--synthetic-seeds", "101", *TINY_ARGS, "--init", str(run / "best.pt"),
                 "--finest-stride", "2", "--lr", "1e-4", "--out", str(tuned)]) == 0
    capsys.readouterr()
    model, ckpt = load_checkpoint(tuned / "best.pt")
    assert (model.cfg.finest_stride, model.cfg.fine_iterations, len(model.refiners)) == (2, 0, 3)
    assert ckpt["provenance"]["init"]["sha256"] == sha256_file(run / "best.pt")
    base = ["distill-tracker", "--synthetic-seeds", "100", *TINY_ARGS, "--out", str(tmp_path / "x")]
    for extra, says in ((["--init", str(run / "best.pt"), "--channels", "8,8,8,8"],
                         "--channels 8,8,8,8 differs from --init's 4,8,8,8"),
                        (["--init", str(run / "best.pt"), "--radius", "3"], "--radius 3 differs from --init's 2"),
                        (["--init", str(run / "best.pt"), "--fps", "5"], "--fps 5.0 differs from the 10.0"),
                        (["--init", str(tuned / "best.pt"), "--finest-stride", "1"],
                         "at finest stride 1: finest_stride 1 is out of range"),
                        (["--init", str(tmp_path / "none.pt")], "does not exist"),
                        (["--finest-stride", "3"], "--finest-stride 3: finest_stride 3 is not one of")):
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err, err
