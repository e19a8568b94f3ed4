"""The HTML report: one file, PNG plots that exist, a warning box when the proxy is weak."""

import re

from calibration.recordings import EnergyRecording
from calibration.report import write_report
from calibration.sweep import SweepSpace
from calibration.unsupervised import calibrate_unsupervised

from .makers import bursty_series

SMALL = SweepSpace(ratio_off=(0.9,), up_steps=(2,), down_steps=(2,), alpha=(0.7, 1.0), max_theta=32)


def _report(tmp_path, separable: bool):
    recs = []
    for i in range(2):
        e, p, _ = bursty_series(570 + i, 2000, separable=separable)
        recs.append(EnergyRecording(f"cam{i}", "t", e, p, 10.0, "velocity-energy", "trace"))
    cal = calibrate_unsupervised(recs, SMALL)
    return write_report(tmp_path, cal, recs), cal


def test_the_report_exists_and_every_image_it_references_exists(tmp_path):
    path, _ = _report(tmp_path, separable=True)
    page = path.read_text()
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) == 4  # score curve, histogram, one energy plot per recording
    for src in images:
        png = tmp_path / src
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "theta_on" in page and "Youden" in page


def test_a_weak_proxy_opens_the_report_with_a_warning_box(tmp_path):
    path, cal = _report(tmp_path, separable=False)
    page = path.read_text()
    assert cal.quality.weak
    assert "class='warning'" in page and "Record a few labelled minutes" in page
    assert "Check the camera view" in page and "Retrain the tokenizer" in page


def test_a_separating_proxy_gives_no_warning_box(tmp_path):
    path, _ = _report(tmp_path, separable=True)
    assert "class='warning'" not in path.read_text()
