"""The [roi] section of the device config and `--roi` files: real TOML files, one-line errors
naming the key and the fix, and the region reaching the service's pipeline."""

from __future__ import annotations


import pytest

from edge.config import load_config, load_roi
from edge.errors import ConfigError
from edge.service import make_pipeline
from edge.tracking.roi import RegionOfInterest
from .helpers import MINIMAL_EDGE_TOML, write_toml

MINIMAL = MINIMAL_EDGE_TOML + '\n[model]\ndir = "none"\n'
write = write_toml


def test_roi_polygons_in_the_config_file_become_the_pipelines_region(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL + '\n[roi]\npolygons = ["0,0.2 1,0.2 1,1 0,1", "0,0 0.1,0 0.1,0.1"]\n'))
    region = cfg.roi.region
    assert region == RegionOfInterest.parse(["0,0.2 1,0.2 1,1 0,1", "0,0 0.1,0 0.1,0.1"])
    pipe = make_pipeline(cfg, model_dir=None, keep_keyframes=False)
    assert pipe.tracker.roi == region


def test_no_roi_section_tracks_the_whole_frame(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.roi.region is None
    assert make_pipeline(cfg, model_dir=None, keep_keyframes=False).tracker.roi is None


@pytest.mark.parametrize("value, words", [
    ('["0,0.2 1,0.2"]', "roi.polygons[0] = '0,0.2 1,0.2' is not allowed"),
    ('["0,0 1,0 1,1", "0,0 640,0 640,480"]', "roi.polygons[1]"),
    ('"0,0 1,0 1,1"', "roi.polygons = '0,0 1,0 1,1' is not allowed: expected a list of strings"),
])
def test_a_bad_polygon_in_the_file_is_one_line_naming_file_key_and_fix(tmp_path, value, words):
    path = write(tmp_path, MINIMAL + f"\n[roi]\npolygons = {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and words in message


def test_load_roi_reads_a_toml_file_or_inline_text(tmp_path):
    path = write(tmp_path, '[roi]\npolygons = ["0,0.2 1,0.2 1,1 0,1"]\n', name="roi.toml")
    assert load_roi(str(path)) == RegionOfInterest.parse("0,0.2 1,0.2 1,1 0,1")
    assert load_roi("0,0.2 1,0.2 1,1 0,1") == load_roi(str(path))


def test_load_roi_names_a_file_without_polygons(tmp_path):
    path = write(tmp_path, MINIMAL, name="edge.toml")
    with pytest.raises(ConfigError, match=r"has no \[roi\] polygons; add e.g. polygons"):
        load_roi(str(path))
    with pytest.raises(ConfigError, match="does not exist"):
        load_roi(str(tmp_path / "missing.toml"))
