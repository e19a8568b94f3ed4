"""The real-corpus builder: sha256-checked sources in, one .npz per video out, one-line errors."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess

import numpy as np
import pytest

from benchmarks.real_labelled.build import build, main
from benchmarks.real_labelled.corpus import CorpusError, LabelledVideo, load_corpus
from benchmarks.real_labelled.manifest import SCHEMA, SourceError

# Two tiny videos in the HA4M layout: (42, T) arm skeleton and one label per frame (0 = no action).
LABELS = {"V1": [0, 0, 1, 1, 1, 2, 2, 2, 2, 0], "V2": [0, 1, 1, 1, 2, 2, 3, 3, 3, 0, 0]}


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def source_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files = {}
    for name, labels in LABELS.items():
        files[f"Demo/ArmSkel/{name}.npy"] = npy_bytes(rng.normal(size=(42, len(labels))))
        files[f"Demo/GroundTruth/{name}.txt"] = "".join(f"{k}\n" for k in labels).encode()
    return files


def write_tree(root, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


def write_manifest(path, files: dict[str, bytes], commit: str) -> None:
    entry = {
        "title": "test", "repository": "someone/ha4m-like", "commit": commit,
        "repository_licence": "test", "dataset_licence": "test", "citation": "test", "fps": 30.0,
        "files": [{"path": p, "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()} for p, d in files.items()],
    }
    path.write_text(json.dumps({"schema": SCHEMA, "datasets": {"ha4m": entry}}))


@pytest.fixture
def checkout(tmp_path):
    """A plain folder with the files, and a manifest that records them."""
    files = source_files()
    root = tmp_path / "checkout"
    write_tree(root, files)
    manifest = tmp_path / "manifest.json"
    write_manifest(manifest, files, commit="0" * 40)
    return root, manifest


@pytest.fixture
def git_dir(tmp_path):
    """A real git repository holding the files in one commit; its .git directory and manifest."""
    files = source_files()
    repo = tmp_path / "repo"
    write_tree(repo, files)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "data"], check=True)
    commit = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    manifest = tmp_path / "manifest.json"
    write_manifest(manifest, files, commit)
    return repo / ".git", manifest, repo


def test_builds_one_file_per_video_from_a_checkout(checkout, tmp_path):
    root, manifest = checkout
    written = build({"ha4m": root}, tmp_path / "corpus", manifest)
    assert sorted(p.name for p in written["ha4m"]) == ["V1.npz", "V2.npz"]
    video = LabelledVideo.load(tmp_path / "corpus" / "ha4m" / "V1.npz")
    assert video.features.shape == (10, 42) and video.features.dtype == np.float32
    assert video.fps == 30.0 and video.background == (0,)
    np.testing.assert_array_equal(video.labels, LABELS["V1"])


def test_builds_from_a_git_directory_at_the_recorded_commit(git_dir, tmp_path):
    gdir, manifest, worktree = git_dir
    (worktree / "Demo/GroundTruth/V1.txt").write_text("changed after the commit\n")  # the commit is what counts
    build({"ha4m": gdir}, tmp_path / "corpus", manifest)
    assert [v.name for v in load_corpus(tmp_path / "corpus")] == ["V1", "V2"]


def test_ground_truth_is_the_action_runs_and_background_is_a_gap(checkout, tmp_path):
    root, manifest = checkout
    build({"ha4m": root}, tmp_path / "corpus", manifest)
    v2 = LabelledVideo.load(tmp_path / "corpus" / "ha4m" / "V2.npz")
    np.testing.assert_allclose(v2.segments() * 30.0, [[1, 4], [4, 6], [6, 9]])


def test_a_changed_file_is_refused_with_one_line_naming_it(checkout, tmp_path, capsys):
    root, manifest = checkout
    (root / "Demo/GroundTruth/V2.txt").write_text("0\n1\n")
    with pytest.raises(SourceError, match=r"V2\.txt .* sha256 .* manifest records"):
        build({"ha4m": root}, tmp_path / "corpus", manifest)
    assert main(["--source", f"ha4m={root}", "--out", str(tmp_path / "corpus"), "--manifest", str(manifest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "sha256" in err


def test_nothing_is_written_when_a_file_is_refused(checkout, tmp_path):
    root, manifest = checkout
    (root / "Demo/ArmSkel/V2.npy").write_bytes(b"not the recorded file")
    with pytest.raises(SourceError):
        build({"ha4m": root}, tmp_path / "corpus", manifest)
    assert not (tmp_path / "corpus" / "ha4m").exists()


def test_a_wrong_path_is_one_line(tmp_path, checkout, capsys):
    _, manifest = checkout
    assert main(["--source", f"ha4m={tmp_path / 'nowhere'}", "--manifest", str(manifest),
                 "--out", str(tmp_path / "corpus")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "not a folder" in err


def test_a_folder_without_the_files_is_one_line(tmp_path, checkout, capsys):
    _, manifest = checkout
    (tmp_path / "empty").mkdir()
    assert main(["--source", f"ha4m={tmp_path / 'empty'}", "--manifest", str(manifest),
                 "--out", str(tmp_path / "corpus")]) == 2
    assert "holds none of the files" in capsys.readouterr().err


def test_a_git_directory_without_the_commit_is_one_line(git_dir, tmp_path):
    gdir, manifest, _ = git_dir
    data = json.loads(manifest.read_text())
    data["datasets"]["ha4m"]["commit"] = "1" * 40
    manifest.write_text(json.dumps(data))
    with pytest.raises(SourceError, match="does not hold commit 111111111111"):
        build({"ha4m": gdir}, tmp_path / "corpus", manifest)


def test_an_unknown_dataset_or_a_malformed_source_is_one_line(tmp_path, checkout, capsys):
    root, manifest = checkout
    assert main(["--source", f"nope={root}", "--manifest", str(manifest)]) == 2
    assert "is not known; use one of ha4m" in capsys.readouterr().err
    assert main(["--source", "ha4m", "--manifest", str(manifest)]) == 2
    assert "is not NAME=PATH" in capsys.readouterr().err


def test_loading_a_missing_corpus_says_how_to_build_it(tmp_path):
    with pytest.raises(CorpusError, match="build_real_labelled"):
        load_corpus(tmp_path / "nothing")


def test_a_video_with_labels_out_of_range_is_refused():
    with pytest.raises(CorpusError, match="label ids span"):
        LabelledVideo("d", "v", np.zeros((3, 2)), [0, 1, 5], 10.0, ("a", "b"))


def test_the_committed_manifest_names_a_converter_for_every_dataset():
    from benchmarks.real_labelled.manifest import load_manifest
    from benchmarks.real_labelled.sources import CONVERTERS

    manifest = load_manifest()
    assert set(manifest) == set(CONVERTERS)
    for source in manifest.values():
        assert len(source.commit) == 40 and source.files and source.fps > 0
        assert all(len(f.sha256) == 64 for f in source.files)
