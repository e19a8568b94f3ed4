"""The three `laps-export` commands end to end on saved tracks (no video needed)."""

import json

import numpy as np
import pytest

from export.cli import main

from .conftest import bursty_tracks

CONV = ["--grid", "4", "--window", "6", "--input-size", "64x48", "--velocity-scale", "4", "--max-displacement", "3"]


@pytest.fixture(scope="module")
def saved_tracks(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracks")
    paths = []
    for seed in (1, 2):
        vel, vis = bursty_tracks(160, 16, seed=seed)
        pos = np.cumsum(vel, axis=0) + 10.0
        path = root / f"clip{seed}.npz"
        np.savez(path, positions=pos, visibility=vis, fps=10.0)
        paths.append(str(path))
    return paths


def test_train_export_verify(saved_tracks, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train-tokenizer", "--source", saved_tracks[0], "--val-source", saved_tracks[1], *CONV,
                 "--epochs", "1", "--max-batches-per-epoch", "2", "--batch-size", "8", "--out", str(run),
                 "--no-progress"]) == 0
    assert "codebook" not in capsys.readouterr().err
    model_dir = tmp_path / "model"
    assert main(["onnx", "--checkpoint", str(run / "best.pt"), "--out", str(model_dir), "--model-version", "cli-1",
                 "--golden-source", saved_tracks[1], "--no-progress"]) == 0
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["model"]["window"] == 6 and manifest["model"]["model_version"] == "cli-1"
    assert "golden/golden.npz" in manifest["files"]
    report = tmp_path / "verify.json"
    assert main(["verify", "--model-dir", str(model_dir), "--checkpoint", str(run / "best.pt"),
                 "--source", saved_tracks[1], "--random-windows", "16", "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["passed"] and data["checks"]["real"]["code_agreement"] >= 0.999
    assert "fp16_code_agreement" in data["checks"]["real"]


def test_held_out_seeds_are_refused_for_training(tmp_path, capsys):
    code = main(["train-tokenizer", "--synthetic-seeds", "950", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "HELD-OUT" in err and err.count("\n") == 1


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["train-tokenizer", "--help"])
    text = capsys.readouterr().out
    for option in ("--synthetic-seeds", "--tracker", "--resume", "--focal-gamma", "--radial-k", "--latent-noise",
                   "--device", "--cache-dir", "--preset"):
        assert option in text


def test_a_tokenizer_exported_over_a_shipped_directory_keeps_its_tracker_and_raises_the_version(tmp_path):
    import shutil

    from edge.model import load_model_directory, shipped_model_dir

    shipped = load_model_directory(shipped_model_dir())
    if "tracker.onnx" not in shipped.manifest["files"]:
        pytest.skip("the shipped model directory holds no distilled tracker")
    target = tmp_path / "model"
    shutil.copytree(shipped.path, target)
    clips = []
    for seed in (1, 2):  # the shipped conventions: 20 x 20 points
        vel, vis = bursty_tracks(60, 400, seed=seed)
        clips.append(tmp_path / f"clip{seed}.npz")
        np.savez(clips[-1], positions=np.cumsum(vel, axis=0) + 10.0, visibility=vis, fps=10.0)
    run = tmp_path / "run"
    assert main(["train-tokenizer", "--source", str(clips[0]), "--val-source", str(clips[1]), "--epochs", "1",
                 "--max-batches-per-epoch", "1", "--batch-size", "4", "--out", str(run), "--no-progress"]) == 0
    assert main(["onnx", "--checkpoint", str(run / "best.pt"), "--out", str(target), "--model-version", "re-1",
                 "--golden-source", str(clips[1]), "--overwrite", "--no-progress"]) == 0
    again = load_model_directory(target)
    assert again.manifest["version"] == shipped.manifest["version"] + 1
    assert again.manifest["files"]["tracker.onnx"] == shipped.manifest["files"]["tracker.onnx"]
    assert again.manifest["tracker"] == shipped.manifest["tracker"]
    assert again.metadata.model_version == "re-1"


def test_real_footage_without_the_built_corpus_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LAPS_CACHE_DIR", str(tmp_path / "empty-cache"))
    code = main(["train-tokenizer", "--real-footage", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "build" in err and err.count("\n") == 1
