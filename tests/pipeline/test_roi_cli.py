"""`laps-edge roi` draws the region and the grid points it keeps over a real frame; `laps-edge run
--roi` runs the pipeline with it. Real config files, real PNGs read back pixel by pixel."""

from __future__ import annotations

import json
import textwrap

import cv2
import numpy as np

from edge.cli import main
from edge.cli.roi import KEPT, LEFT_OUT, OUTLINE
from edge.tracking.base import grid_points
from edge.tracking.roi import RegionOfInterest
from tests.service.helpers import MINIMAL_EDGE_TOML

SOURCE = "synthetic://assembly?seed=901&minutes=0.1"
POLYGON = "0.1,0.3 0.9,0.3 0.9,0.9 0.1,0.9"
CONFIG = MINIMAL_EDGE_TOML + f'''
[model]
dir = "none"

[roi]
polygons = ["{POLYGON}"]
'''


def test_roi_command_draws_the_polygon_and_which_points_are_kept(tmp_path, capsys):
    config = tmp_path / "edge.toml"
    config.write_text(textwrap.dedent(CONFIG))
    out = tmp_path / "check" / "roi.png"
    assert main(["roi", "--source", SOURCE, "--config", str(config), "--out", str(out)]) == 0
    picture = cv2.imread(str(out))
    assert picture is not None and picture.shape == (480, 640, 3)  # the source's own resolution
    # the outline along the top edge (y = 0.3 of the height), between two grid columns
    y_edge = round(0.3 * 479)
    assert tuple(picture[y_edge, 320]) == OUTLINE
    assert tuple(picture[y_edge, 200]) == OUTLINE
    # ... and not above or below it, where the frame shows through
    assert tuple(picture[y_edge - 8, 320]) != OUTLINE and tuple(picture[y_edge + 8, 320]) != OUTLINE
    points = grid_points(640, 480, 20)
    inside = RegionOfInterest.parse(POLYGON).mask(points, 640, 480)
    for (x, y), keep in zip(np.round(points).astype(int), inside):
        assert tuple(picture[y, x]) == (KEPT if keep else LEFT_OUT)
    printed = capsys.readouterr().out
    assert f"{int(inside.sum())} of 400 grid points inside the region" in printed


def test_roi_command_takes_inline_polygons(tmp_path):
    out = tmp_path / "roi.png"
    assert main(["roi", "--source", SOURCE, "--roi", POLYGON, "--model", "none", "--out", str(out)]) == 0
    assert tuple(cv2.imread(str(out))[round(0.9 * 479), 320]) == OUTLINE  # bottom edge


def test_roi_command_refuses_a_bad_polygon_in_one_line(tmp_path, capsys):
    assert main(["roi", "--source", SOURCE, "--roi", "0,0 640,0 640,480", "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "not pixels" in err
    assert not (tmp_path / "r.png").exists()


def test_roi_command_says_when_the_config_has_no_region(tmp_path, capsys):
    config = tmp_path / "edge.toml"
    config.write_text(textwrap.dedent(CONFIG.split("[roi]")[0]))
    assert main(["roi", "--source", SOURCE, "--config", str(config), "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "[roi] has no polygons" in err and "\n" not in err


def test_run_with_roi_records_the_region_in_the_summary(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--source", SOURCE, "--out", str(out), "--model", "none", "--quiet",
                 "--roi", POLYGON]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["roi"] == [POLYGON] and summary["frames"] == 60
