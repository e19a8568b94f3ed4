"""`laps-central cluster` and `laps-central export-dataset` from the command line."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from central.cli import main
from central.config import load_central_config
from central.ingest import validate_segment
from central.store import Store
from central_testkit import make_segments, segment_payloads, write_central_config
from library_data import fill_store


@pytest.fixture
def configured(tmp_path, registry_dir):
    cfg_path = write_central_config(tmp_path / "central.toml", port=1883, data_dir=tmp_path / "data",
                                    models_dir=registry_dir)
    cfg = load_central_config(cfg_path)
    with Store(cfg.store.path) as store:
        truth = fill_store(store, cfg.media_dir, tmp_path / "spool")
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["segment_id", "label"])
        w.writerows(truth.items())
    return cfg_path, cfg, labels


def test_cluster_writes_the_report_and_records_the_run(configured, tmp_path, capsys):
    cfg_path, cfg, labels = configured
    out = tmp_path / "report"
    assert main(["cluster", "--config", str(cfg_path), "--out", str(out), "--k", "3", "--n-init", "3",
                 "--labels", str(labels), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "k = 3" in printed and "NMI" in printed and "report.html" in printed
    assert (out / "report.html").is_file()
    with Store(cfg.store.path) as store:
        assert store.cluster_runs()[0]["k"] == 3


def test_export_dataset_writes_parquet_jsonl_and_its_description(configured, tmp_path, capsys):
    cfg_path, cfg, _ = configured
    assert main(["cluster", "--config", str(cfg_path), "--out", str(tmp_path / "r"), "--k", "3", "--n-init", "2",
                 "--methods", "transformer", "--quiet"]) == 0
    out = tmp_path / "ds"
    assert main(["export-dataset", "--config", str(cfg_path), "--out", str(out), "--quiet"]) == 0
    assert {p.name for p in out.iterdir()} == {"segments.parquet", "segments.jsonl", "dataset.json"}
    assert json.loads((out / "dataset.json").read_text())["rows"] == 60
    assert "exported 60 segments" in capsys.readouterr().out


def test_several_model_versions_need_a_choice_said_in_one_line(configured, tmp_path, capsys):
    cfg_path, cfg, _ = configured
    other = [s for s in make_segments(3, seed=9)]
    for s in other:
        s.model_version = "v2"
    with Store(cfg.store.path) as store:
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(other)], [])
    assert main(["cluster", "--config", str(cfg_path), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--model-version" in err and "v2 (3)" in err and "\n" not in err


@pytest.mark.parametrize("args, words", [
    (["--k-range", "12-2"], "--k-range"),
    (["--k", "1"], "--k 1"),
    (["--since", "yesterday"], "--since"),
    (["--model-version", "v9"], "no stored segments"),
])
def test_bad_cluster_options_are_one_line_errors(configured, tmp_path, capsys, args, words):
    cfg_path, _, _ = configured
    assert main(["cluster", "--config", str(cfg_path), "--out", str(tmp_path / "r"), "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and words in err and "\n" not in err


def test_ingest_without_a_config_says_how_to_get_one(capsys):
    assert main(["ingest"]) == 2
    assert "--example-config" in capsys.readouterr().err


def test_every_subcommand_has_help():
    for verb in ("ingest", "cluster", "export-dataset"):
        proc = subprocess.run([sys.executable, "-m", "central.cli", verb, "--help"], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0 and "usage: laps-central" in proc.stdout


@pytest.mark.parametrize("value", ["-1", "0.01", "nan"])
def test_ingest_stats_interval_that_would_flood_the_log_is_a_one_line_error(tmp_path, capsys, value):
    assert main(["ingest", "--config", str(tmp_path / "central.toml"), f"--stats-interval={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --stats-interval") and "0 for no counter lines" in err and "\n" not in err


def test_ingest_stats_interval_zero_means_no_counter_lines(tmp_path, caplog):
    import logging
    import threading

    from central.ingest import run_ingest

    cfg = load_central_config(write_central_config(tmp_path / "central.toml", port=1, data_dir=tmp_path / "data"))
    stop = threading.Event()
    timer = threading.Timer(1.5, stop.set)
    timer.start()
    caplog.set_level(logging.INFO, logger="central.ingest")
    assert run_ingest(cfg, http=False, stop_event=stop, stats_interval_s=0) == 0
    timer.join()
    assert not [r for r in caplog.records if r.getMessage().startswith("ingest: received")]
