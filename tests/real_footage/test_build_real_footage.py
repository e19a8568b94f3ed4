"""scripts/build_real_footage.py on a tiny git repository made here: it copies a clip out of the
recorded commit, checks its sha256, and says every problem in one line (exit 2)."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "build_real_footage.py"
PAYLOAD = b"\x00\x00\x00\x18ftypmp42 not really a video, but bytes with a known hash"


def _load_script():
    spec = importlib.util.spec_from_file_location("build_real_footage", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_script = _load_script()


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def tiny_repo(tmp_path) -> tuple[Path, str]:
    """A one-commit git repository holding clips/tiny.mp4 (the payload); (work tree, commit)."""
    repo = tmp_path / "acme-tiny"
    (repo / "clips").mkdir(parents=True)
    (repo / "clips" / "tiny.mp4").write_bytes(PAYLOAD)
    _git("init", "-q", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "tiny clip", cwd=repo)
    return repo, _git("rev-parse", "HEAD", cwd=repo)


def _manifest(tmp_path: Path, commit: str, sha256: str | None = None) -> Path:
    clip = {
        "id": "tiny-clip", "source": "acme/tiny", "path": "clips/tiny.mp4", "commit": commit, "split": "train",
        "sha256": sha256 or hashlib.sha256(PAYLOAD).hexdigest(), "bytes": len(PAYLOAD), "duration_s": 1.0,
        "fps": 10.0, "frames": 10, "width": 320, "height": 240, "model_steps": 10, "content": "hands",
        "third_party_media": False, "origin": "made by the test", "description": "not a video",
    }
    manifest = {
        "schema": "laps.real-footage-manifest/1",
        "sources": {"acme/tiny": {"kind": "git", "url": "https://example.invalid/acme/tiny", "licence": "CC0-1.0",
                                  "licence_evidence": "made by the test"}},
        "clips": [clip],
    }
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def _deb_manifest(tmp_path: Path, sha256: str) -> Path:
    """A manifest with one clip stored gzip-compressed inside a Debian package tiny-doc 1.0."""
    manifest = {
        "schema": "laps.real-footage-manifest/1",
        "sources": {"tiny-doc": {"kind": "deb", "package": "tiny-doc", "version": "1.0", "deb": "tiny-doc_1.0_all.deb",
                                 "url": "https://example.invalid/tiny", "licence": "CC0-1.0",
                                 "licence_evidence": "made by the test"}},
        "clips": [{
            "id": "deb-clip", "source": "tiny-doc", "path": "usr/share/doc/tiny-doc/clip.mp4.gz", "split": "val",
            "sha256": sha256, "bytes": len(PAYLOAD), "duration_s": 1.0, "fps": 10.0, "frames": 10, "width": 320,
            "height": 240, "model_steps": 10, "content": "hands", "third_party_media": False,
            "origin": "made by the test", "description": "not a video",
        }],
    }
    path = tmp_path / "deb-manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_builds_the_clip_from_the_commit_and_keeps_it_on_the_next_run(tiny_repo, tmp_path, capsys):
    repo, commit = tiny_repo
    manifest, out = _manifest(tmp_path, commit), tmp_path / "corpus"
    argv = ["--manifest", str(manifest), "--out", str(out), "--repo", f"acme/tiny={repo}", "--quiet"]
    assert build_script.main(argv) == 0
    built = out / "train" / "tiny-clip.mp4"
    assert built.read_bytes() == PAYLOAD
    assert "1 built" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert [c["id"] for c in index["clips"]] == ["tiny-clip"] and index["clips"][0]["licence"] == "CC0-1.0"

    # A later commit changes the file in the work tree: the clip still comes from the recorded commit.
    (repo / "clips" / "tiny.mp4").write_bytes(b"changed")
    _git("commit", "-q", "-am", "change", cwd=repo)
    built.write_bytes(b"damaged")  # a damaged copy in the corpus is rebuilt, not trusted
    assert build_script.main(argv) == 0
    assert built.read_bytes() == PAYLOAD
    assert build_script.main(argv) == 0
    assert "1 already present" in capsys.readouterr().out


def test_a_bare_mirror_under_mirror_root_is_found(tiny_repo, tmp_path):
    repo, commit = tiny_repo
    mirrors = tmp_path / "mirrors"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo), str(mirrors / "acme+tiny" / "repo")], check=True)
    out = tmp_path / "corpus"
    assert build_script.main(["--manifest", str(_manifest(tmp_path, commit)), "--out", str(out),
                              "--mirror-root", str(mirrors), "--quiet"]) == 0
    assert (out / "train" / "tiny-clip.mp4").read_bytes() == PAYLOAD


def test_a_hash_mismatch_is_one_line_and_writes_nothing(tiny_repo, tmp_path, capsys):
    repo, commit = tiny_repo
    wrong = hashlib.sha256(b"something else").hexdigest()
    out = tmp_path / "corpus"
    assert build_script.main(["--manifest", str(_manifest(tmp_path, commit, sha256=wrong)), "--out", str(out),
                              "--repo", f"acme/tiny={repo}", "--quiet"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert lines[0].startswith("error: clip tiny-clip from acme/tiny:clips/tiny.mp4@")
    assert hashlib.sha256(PAYLOAD).hexdigest()[:16] in lines[0] and wrong[:16] in lines[0]
    assert not (out / "train" / "tiny-clip.mp4").exists()


def test_a_missing_repository_is_one_line_naming_the_fix(tiny_repo, tmp_path, capsys):
    _, commit = tiny_repo
    empty = tmp_path / "no-mirrors"
    empty.mkdir()
    assert build_script.main(["--manifest", str(_manifest(tmp_path, commit)), "--out", str(tmp_path / "c"),
                              "--mirror-root", str(empty), "--quiet"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1
    assert lines[0].startswith("error: no local copy of acme/tiny")
    assert "--mirror-root" in lines[0] and "git clone" in lines[0]


def test_a_commit_the_copy_lacks_is_one_line(tiny_repo, tmp_path, capsys):
    repo, _ = tiny_repo
    assert build_script.main(["--manifest", str(_manifest(tmp_path, "0123456789" * 4)), "--out", str(tmp_path / "c"),
                              "--repo", f"acme/tiny={repo}", "--quiet"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "lacks commit 012345678901" in lines[0]


def test_the_script_runs_standalone_with_exit_2_on_a_bad_manifest(tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json", encoding="utf-8")
    run = subprocess.run([sys.executable, str(SCRIPT), "--manifest", str(bad), "--quiet"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert _error_lines(run.stderr) == [run.stderr.strip()]
    assert run.stderr.startswith(f"error: manifest {bad} is not readable JSON")


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed (not a Debian system)")
def test_a_gzipped_member_of_a_debian_package_is_unpacked_and_checked(tmp_path, capsys):
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: tiny-doc\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.invalid>\n"
        "Description: test package\n", encoding="utf-8")
    doc = pkg / "usr" / "share" / "doc" / "tiny-doc"
    doc.mkdir(parents=True)
    (doc / "clip.mp4.gz").write_bytes(gzip.compress(PAYLOAD))
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(pkg), str(debs / "tiny-doc_1.0_all.deb")],
                   check=True, capture_output=True)
    out = tmp_path / "corpus"
    good = _deb_manifest(tmp_path, hashlib.sha256(PAYLOAD).hexdigest())
    (out / "val").mkdir(parents=True)
    (out / "val" / "moved-elsewhere.mp4").write_bytes(b"a clip the manifest no longer puts in val")
    assert build_script.main(["--manifest", str(good), "--out", str(out), "--deb-dir", str(debs), "--quiet"]) == 0
    assert (out / "val" / "deb-clip.mp4").read_bytes() == PAYLOAD  # unpacked, named .mp4
    assert sorted(p.name for p in (out / "val").iterdir()) == ["deb-clip.mp4"]  # the stale file is gone
    assert "removed val/moved-elsewhere.mp4" in capsys.readouterr().out

    bad = _deb_manifest(tmp_path, hashlib.sha256(gzip.compress(PAYLOAD)).hexdigest())  # hash of the .gz, not the clip
    assert build_script.main(["--manifest", str(bad), "--out", str(tmp_path / "c2"), "--deb-dir", str(debs),
                              "--quiet"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("error: clip deb-clip from tiny-doc:usr/share/doc/tiny-doc/clip.mp4.gz has")


def test_the_installed_command_explains_itself():
    from export.cli import main as laps_export

    with pytest.raises(SystemExit) as exit_info:
        laps_export(["build-real-footage", "--help"])
    assert exit_info.value.code == 0
