"""`export-dataset --format lerobot`: a LeRobotDataset v3.0 of a real clustering run over ingested
segments and uploaded media, read back the way LeRobot's own loader reads it (lerobot_reader.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from central.batches import receive_batch
from central.cli import main
from central.cluster_run import run_clustering
from central.clustering import ClusterOptions
from central.ingest import validate_segment
from central.lerobot_export import IMAGE_BLANK, IMAGE_NEAREST, IMAGE_OWN, VIDEO_KEY, export_lerobot
from central.registry import ModelRegistry, add_model
from central.store import Store
from central_testkit import make_segments, segment_payloads
from edge.errors import ConfigError
from edge.recent_frames import ClipRecorder
from edge.upload import BatchSpool
from lerobot_reader import LeRobotV3Reader, SpecError
from library_data import fill_store

CLIP_FRAMES = 5  # ClipRecorder(max_s=0.5) at 10 fps keeps the newest 5 frames


def clip_colour(frame: int) -> int:
    return (frame * 37) % 200 + 30


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, tiny_model_dir):
    """A store of 60 ingested segments with keyframes for a quarter of them, one MJPEG clip
    (uploaded like the device does) for a segment without keyframes, and a saved clustering run."""
    root = tmp_path_factory.mktemp("lerobot")
    registry = root / "models"
    add_model(registry, tiny_model_dir)
    store = Store(root / "c.sqlite")
    media = root / "media"
    truth = fill_store(store, media, root / "spool")
    segs = store.segments()
    pictured = {sid for sid, files in store.media([s.segment_id for s in segs]).items() if files}
    clipped = next(s for s in segs if s.device_id == "dev-1" and not store.media([s.segment_id])[s.segment_id])
    recorder = ClipRecorder(fps=10.0, max_s=CLIP_FRAMES / 10, scale=0.5)
    for f in range(clipped.start_frame, clipped.end_frame):
        recorder.add(f, np.full((60, 80, 3), clip_colour(f), np.uint8))
    spool = BatchSpool(root / "clip-spool", device_id="dev-1", site="site-a")
    spool.add_segment(clipped.segment_id, {}, recorder.clip(clipped.start_frame, clipped.end_frame))
    batch = spool.seal()
    receive_batch(store, media, "dev-1", batch.sha256, batch.path)
    run = run_clustering(store, ModelRegistry(registry), methods=("transformer",),
                         options=ClusterOptions(k=3, n_init=2), truth=truth)
    yield {"store": store, "media": media, "root": root, "run": run, "clipped": clipped, "pictured": pictured}
    store.close()


@pytest.fixture(scope="module")
def exported(fleet):
    out = fleet["root"] / "ds"
    summary = export_lerobot(fleet["store"], fleet["media"], out)
    return out, summary, LeRobotV3Reader(out)


def test_the_folder_has_the_v3_layout_with_fps_features_and_video_info(exported):
    out, summary, reader = exported
    for rel in ("meta/info.json", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet",
                "data/chunk-000/file-000.parquet", f"videos/{VIDEO_KEY}/chunk-000/file-000.mp4"):
        assert (out / rel).is_file(), rel
    info = reader.info
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert info["total_episodes"] == summary["episodes"] == 60 and info["total_tasks"] == 3
    assert info["total_frames"] == summary["frames"] == len(reader.data)
    assert info["splits"] == {"train": "0:60"}
    assert info["features"]["latent_action"] == {"dtype": "int64", "shape": (1,), "names": ["fsq_code"]}
    video = info["features"][VIDEO_KEY]
    assert video["dtype"] == "video" and video["shape"] == (60, 80, 3)
    assert video["names"] == ["height", "width", "channels"]
    assert video["info"]["video.codec"] == "mpeg4" and video["info"]["video.fps"] == 10
    assert info["laps"]["run_id"] == summary["run_id"]


def test_every_frame_carries_its_segments_code_primitive_and_time(fleet, exported):
    _, _, reader = exported
    store, run = fleet["store"], fleet["run"]
    stored = {s.segment_id: s for s in store.segments()}
    assigned = store.assignments(run.run_id, list(stored))
    seen = set()
    for idx in range(len(reader)):
        item = reader[idx]
        ep = reader.episode(item["episode_index"])
        s = stored[ep["laps/segment_id"]]
        i = item["frame_index"]
        assert item["index"] == idx and ep["dataset_from_index"] + i == idx
        assert item["latent_action"] == int(s.codes[i])
        assert item["source_frame"] == s.start_frame + i
        assert item["timestamp"] == pytest.approx(i / 10, abs=1e-6)
        assert item["task_index"] == assigned[s.segment_id][0] and item["task"] == f"primitive {item['task_index']}"
        assert ep["tasks"] == [item["task"]] and ep["length"] == len(s.codes)
        assert item[VIDEO_KEY].shape == (60, 80, 3)
        seen.add(s.segment_id)
    assert seen == set(stored)


def test_keyframes_are_the_video_at_their_steps_and_the_nearest_fills_the_rest(fleet, exported):
    _, _, reader = exported
    media = fleet["store"].media(list(fleet["pictured"]))
    for ep_idx in range(reader.info["total_episodes"]):
        ep = reader.episode(ep_idx)
        files = [f for f in media.get(ep["laps/segment_id"], []) if f.kind == "keyframe"]
        if not files:
            continue
        steps = {f.frame - ep["laps/start_frame"]: cv2.imread(str(fleet["media"] / f.path)) for f in files}
        for i in range(ep["length"]):
            item = reader[ep["dataset_from_index"] + i]
            nearest = min(steps, key=lambda k: (abs(k - i), k))
            assert item["image_source"] == (IMAGE_OWN if i in steps else IMAGE_NEAREST)
            assert np.abs(item[VIDEO_KEY].astype(int) - steps[nearest]).mean() < 6


def test_an_uploaded_clip_is_the_video_of_the_segments_last_steps(fleet, exported):
    _, _, reader = exported
    s = fleet["clipped"]
    ep = next(reader.episode(e) for e in range(60) if reader.episode(e)["laps/segment_id"] == s.segment_id)
    n = ep["length"]
    for i in range(n):
        item = reader[ep["dataset_from_index"] + i]
        own = i >= n - CLIP_FRAMES
        colour = clip_colour(s.start_frame + max(i, n - CLIP_FRAMES))
        assert item["image_source"] == (IMAGE_OWN if own else IMAGE_NEAREST)
        assert abs(float(item[VIDEO_KEY].mean()) - colour) < 4


def test_segments_without_pictures_are_grey_and_say_so(fleet, exported):
    _, _, reader = exported
    media = fleet["store"].media([reader.episode(e)["laps/segment_id"] for e in range(60)])
    bare = [e for e in range(60) if not media[reader.episode(e)["laps/segment_id"]]]
    assert bare
    for e in bare[:5]:
        ep = reader.episode(e)
        item = reader[ep["dataset_from_index"]]
        img = item[VIDEO_KEY].astype(float)
        assert item["image_source"] == IMAGE_BLANK
        assert abs(img.mean() - 128) < 6 and img.std() < 3  # uniform grey (within the codec's error)


def test_large_exports_roll_over_to_further_files_that_read_the_same(fleet, exported, tmp_path):
    _, _, one_file = exported
    summary = export_lerobot(fleet["store"], fleet["media"], tmp_path / "ds", data_file_mb=0.01, video_file_mb=0.02)
    reader = LeRobotV3Reader(tmp_path / "ds")
    assert len(reader.data_files) >= 3 and len(list((tmp_path / "ds/videos").rglob("*.mp4"))) >= 3
    assert len({reader.episode(e)["videos/" + VIDEO_KEY + "/file_index"] for e in range(60)}) >= 3
    assert summary["frames"] == len(reader)
    for idx in range(0, len(reader), 7):
        a, b = reader[idx], one_file[idx]
        assert a["latent_action"] == b["latent_action"] and a["task"] == b["task"]
        assert np.abs(a[VIDEO_KEY].astype(int) - b[VIDEO_KEY]).mean() < 3


def test_vp9_video_reads_back_and_is_recorded_as_vp9(fleet, exported, tmp_path):
    _, _, mpeg4 = exported
    export_lerobot(fleet["store"], fleet["media"], tmp_path / "ds", codec="vp9")
    reader = LeRobotV3Reader(tmp_path / "ds")
    assert reader.info["features"][VIDEO_KEY]["info"]["video.codec"] == "vp9"
    for idx in range(0, len(reader), 11):
        assert np.abs(reader[idx][VIDEO_KEY].astype(int) - mpeg4[idx][VIDEO_KEY]).mean() < 4


def test_segments_the_run_did_not_assign_are_left_out_and_counted(tmp_path):
    with Store(tmp_path / "c.sqlite") as store:
        segs = make_segments(4, codes=[[1, 2, 3]] * 4)
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segs)], [])
        save_run(store, segs[:3])
        summary = export_lerobot(store, tmp_path / "media", tmp_path / "ds")
    assert summary["episodes"] == 3 and summary["left_out"] == {"not_assigned": 1, "no_codes": 0}
    reader = LeRobotV3Reader(tmp_path / "ds")
    assert {reader.episode(e)["laps/segment_id"] for e in range(3)} == {s.segment_id for s in segs[:3]}


def test_a_run_that_assigned_nothing_is_a_one_line_error_that_leaves_no_files(tmp_path):
    with Store(tmp_path / "c.sqlite") as store:
        segs = make_segments(2, codes=[[1, 2, 3]] * 2)
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segs)], [])
        store.save_cluster_run("r0", model_version=segs[0].model_version, method="transformer", k=2,
                               params={"selection": {}}, metrics={}, assignments=[])
        with pytest.raises(ConfigError, match="assigned none of the 2 segments") as err:
            export_lerobot(store, tmp_path / "media", tmp_path / "ds")
    assert "\n" not in str(err.value) and not (tmp_path / "ds" / "meta").exists()


def test_a_dataset_is_never_written_over_another(fleet, exported):
    out, _, _ = exported
    with pytest.raises(ConfigError, match="new or empty folder"):
        export_lerobot(fleet["store"], fleet["media"], out)


def test_no_uploaded_pictures_means_no_video_feature(tmp_path, fleet):
    with Store(tmp_path / "c.sqlite") as store:
        segs = make_segments(4, codes=[[1, 2, 3]] * 4)
        store.ingest([(validate_segment(t, p), t) for t, p in segment_payloads(segs)], [])
        save_run(store, segs)
        summary = export_lerobot(store, tmp_path / "media", tmp_path / "ds")
    reader = LeRobotV3Reader(tmp_path / "ds")
    assert summary["video"] is None and reader.video_keys == [] and reader.info["video_path"] is None
    assert [reader[i]["task"] for i in range(0, 12, 3)] == ["primitive 0", "primitive 1"] * 2
    assert not (tmp_path / "ds/videos").exists()


def test_the_reader_rejects_a_folder_that_breaks_the_layout(exported, tmp_path):
    out, _, _ = exported
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    info = json.loads((broken / "meta/info.json").read_text())
    info["fps"] = 10.0
    (broken / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(SpecError, match="fps"):
        LeRobotV3Reader(broken)


def test_a_store_without_runs_tells_how_to_make_one(tmp_path):
    with Store(tmp_path / "empty.sqlite") as store, pytest.raises(ConfigError, match="laps-central cluster"):
        export_lerobot(store, tmp_path, tmp_path / "out")
    assert not (tmp_path / "out" / "meta").exists()


def save_run(store: Store, assigned) -> None:
    """A saved two-cluster run over the whole store that assigns `assigned` alternately to 0 and 1."""
    store.save_cluster_run("r1", model_version=assigned[0].model_version, method="transformer", k=2,
                           params={"selection": {}}, metrics={},
                           assignments=[(s.segment_id, i % 2, 0.0) for i, s in enumerate(assigned)])


# -- command line -------------------------------------------------------------------------------------
@pytest.fixture
def configured(configured_central):
    return configured_central(12)


def test_export_dataset_format_lerobot_from_the_command_line(configured, tmp_path, capsys):
    assert main(["export-dataset", "--config", str(configured), "--out", str(tmp_path / "ds"), "--format", "lerobot",
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "laps-central cluster" in err and "\n" not in err
    assert main(["cluster", "--config", str(configured), "--out", str(tmp_path / "r"), "--k", "3", "--n-init", "2",
                 "--methods", "transformer", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export-dataset", "--config", str(configured), "--out", str(tmp_path / "ds"), "--format",
                 "lerobot,parquet", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "exported 12 segments" in printed and "LeRobotDataset v3.0" in printed and "80x60 mpeg4" in printed
    assert len(LeRobotV3Reader(tmp_path / "ds")) > 0 and (tmp_path / "ds/segments.parquet").is_file()
    assert main(["export-dataset", "--config", str(configured), "--out", str(tmp_path / "ds"), "--format",
                 "lerobot", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds files" in err and "\n" not in err


def test_an_unknown_format_is_a_one_line_error_naming_the_formats(configured, tmp_path, capsys):
    assert main(["export-dataset", "--config", str(configured), "--out", str(tmp_path / "ds"), "--format",
                 "lerobot,hdf5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --format") and "hdf5" in err and "lerobot" in err and "\n" not in err


def test_the_help_explains_the_lerobot_format():
    proc = subprocess.run([sys.executable, "-m", "central.cli", "export-dataset", "--help"], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0
    for words in ("LeRobotDataset", "v3.0", "one episode per", "latent_action", "primitive <id>", "--video-codec",
                  "vp9"):
        assert words in proc.stdout, words
