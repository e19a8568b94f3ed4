"""The fleet dashboard (`laps-central serve`): its access rules over real HTTP, and its pages in a
real headless Chromium against a live central (a real Mosquitto, the ingest, segments and
retained states published as devices publish them, keyframes received as batches, a
clustering run, a staged OTA rollout of a signed bundle)."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from central.cli import main
from central.cluster_run import run_clustering
from central.clustering import ClusterOptions
from central.config import DashboardConfig, load_central_config
from central.dashboard import Dashboard
from central.ingest import run_ingest
from central.registry import ModelRegistry
from central.rollout import Bundle, BundleServer, Rollout, RolloutPlan, RolloutState, state_path
from central.store import Store
from central_testkit import Publisher, make_segments, segment_payloads, wait_until, write_central_config
from edge.errors import ConfigError
from edge.messages import StateMessage, Topics
from edge.ota.messages import StatusMessage
from export.bundle import keygen
from library_data import MOTIFS, _jpeg, fill_store
from tests.ota.ota_testkit import make_bundle

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
CHROMEDRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None)


# -- configuration ----------------------------------------------------------------------------------------
def test_dashboard_binds_loopback_by_default_and_refuses_a_wider_address_without_a_password(tmp_path):
    assert DashboardConfig().host == "127.0.0.1"
    with pytest.raises(ConfigError, match=r"dashboard\.host.*0\.0\.0\.0.*password_file"):
        DashboardConfig(host="0.0.0.0")
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert DashboardConfig(host="0.0.0.0", password_file=str(secret)).password() == "s3cret"


def test_an_empty_password_file_is_an_error_not_a_dashboard_without_login(tmp_path, capsys):
    (tmp_path / "pw").write_text("\n")
    cfg = write_central_config(tmp_path / "central.toml", port=1883, data_dir=tmp_path / "data",
                               extra=f'[dashboard]\nhost = "0.0.0.0"\npassword_file = "{tmp_path / "pw"}"\n')
    assert main(["serve", "--config", str(cfg), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dashboard.password_file") and "empty" in err and "\n" not in err


def test_serve_host_flag_beyond_loopback_without_a_password_is_a_one_line_error(tmp_path, capsys):
    cfg = write_central_config(tmp_path / "central.toml", port=1883, data_dir=tmp_path / "data")
    assert main(["serve", "--config", str(cfg), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --host 0.0.0.0") and "password_file" in err and "\n" not in err


def test_serve_help_says_what_it_shows_where_it_binds_and_how_to_log_in(capsys):
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0
    for words in ("127.0.0.1", "password_file", "HTTP Basic", "GET and HEAD only", "--host", "--port",
                  "online/offline", "primitive library", "OTA rollout"):
        assert words in text, words


def test_serve_on_a_port_in_use_is_a_one_line_error(tmp_path, capsys):
    import socket

    cfg = write_central_config(tmp_path / "central.toml", port=1883, data_dir=tmp_path / "data")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--config", str(cfg), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot serve the dashboard on 127.0.0.1:{port}") and "\n" not in err


# -- access over real HTTP ------------------------------------------------------------------------------------
@pytest.fixture
def stored_fleet(tmp_path, registry_dir):
    """A store with 60 segments of two devices, keyframes for some, and a clustering run."""
    data = tmp_path / "data"
    with Store(data / "central.sqlite") as store:
        fill_store(store, data / "media", tmp_path / "spool")
        run_clustering(store, ModelRegistry(registry_dir), options=ClusterOptions(k_min=2, k_max=4, n_init=2))
    return data


def _get(url: str, auth: tuple[str, str] | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, method=method, data=b"x" if method == "POST" else None)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_with_a_password_every_page_asks_for_the_login(tmp_path, stored_fleet):
    (tmp_path / "pw").write_text("s3cret\n")
    cfg = write_central_config(tmp_path / "central.toml", port=1883, data_dir=stored_fleet,
                               extra=f'[dashboard]\npassword_file = "{tmp_path / "pw"}"\n')
    dash = Dashboard(load_central_config(cfg), port=0).start()
    try:
        for path in ("/", "/media/dev-1/x.jpg", "/nowhere"):
            status, headers, _ = _get(dash.url + path)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
        assert _get(dash.url + "/", auth=("operator", "wrong"))[0] == 401
        assert _get(dash.url + "/", auth=("admin", "s3cret"))[0] == 401
        status, _, body = _get(dash.url + "/", auth=("operator", "s3cret"))
        assert status == 200 and b"dev-1" in body and b"dev-2" in body
    finally:
        dash.stop()


def test_the_dashboard_is_read_only_and_serves_nothing_outside_the_media_folder(tmp_path, stored_fleet):
    cfg = write_central_config(tmp_path / "central.toml", port=1883, data_dir=stored_fleet)
    dash = Dashboard(load_central_config(cfg), port=0).start()
    try:
        status, headers, _ = _get(dash.url + "/", method="POST")
        assert status == 405 and headers["Allow"] == "GET, HEAD"
        for path in ("/media/../central.sqlite", "/media/%2e%2e/central.sqlite", "/media/..%2fcentral.sqlite",
                     "/segments/no-such-segment", "/clusters/no-run/0", "/montages/no-run/0.png"):
            assert _get(dash.url + path)[0] == 404, path
        with Store(stored_fleet / "central.sqlite") as store:
            sid = next(s for s, files in store.media(store.segment_ids()).items() if files)
            path = store.media([sid])[sid][0].path
        status, headers, body = _get(dash.url + "/media/" + path)
        assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    finally:
        dash.stop()


# -- the pages in a real browser against a live central ------------------------------------------------------
@pytest.fixture
def live_central(broker, tmp_path, registry_dir):
    """A running ingest fed over MQTT by two devices (dev-1 online, dev-2 stopped), their keyframes
    received as batches, a clustering run and a running rollout in its second stage; yields
    (config path, run, segments by device)."""
    cfg_path = write_central_config(tmp_path / "central.toml", port=broker.port, data_dir=tmp_path / "data",
                                    models_dir=registry_dir)
    cfg = load_central_config(cfg_path)
    stop = threading.Event()
    ingest = threading.Thread(target=run_ingest, args=(cfg,), daemon=True,
                              kwargs={"http": False, "stop_event": stop, "stats_interval_s": 0})
    ingest.start()
    pub = Publisher(broker.port)
    rolling = None
    try:
        assert wait_until(lambda: "$share/laps-central" in broker.log_text(), 15.0)
        rng = np.random.default_rng(0)
        segments = make_segments(48, codes=[np.resize(MOTIFS[i % 3], int(rng.integers(6, 12))).tolist()
                                            for i in range(48)], keyframes=2)
        by_device = {"dev-1": segments[0::2], "dev-2": segments[1::2]}
        for device, mine in by_device.items():
            pub.publish_all(segment_payloads(mine, device=device))
            state = StateMessage("online" if device == "dev-1" else "stopped", device_id=device, site="site-a",
                                 boot_id="boot-1", model_version="tiny-central-test")
            pub.client.publish(Topics("site-a", device).state, state.to_json(), qos=1, retain=True).wait_for_publish(5)
        with Store(cfg.store.path) as store:
            assert wait_until(lambda: store.counters()["stored"] == 48 and all(
                d.state for d in store.device_summary()), 20.0)
            from central.batches import receive_batch
            from edge.upload import BatchSpool
            for device, mine in by_device.items():
                spool = BatchSpool(tmp_path / "spool" / device, device_id=device, site="site-a")
                for s in mine[::2]:
                    spool.add_segment(s.segment_id, {f: _jpeg(int(s.codes[0]) % 255 + 10 * i)
                                                     for i, f in enumerate(s.keyframes)})
                batch = spool.seal()
                receive_batch(store, cfg.media_dir, device, batch.sha256, batch.path)
            run = run_clustering(store, ModelRegistry(registry_dir), options=ClusterOptions(k_min=2, k_max=4, n_init=2))
        # A real staged rollout of a signed bundle, dev-1 the canary: once dev-1 reports "committed"
        # (as its OTA agent would), the rollout moves on to dev-2 and waits for it.
        key, _ = keygen(tmp_path / "keys" / "release")
        bundle = Bundle.open(make_bundle(tmp_path / "bundle-v2", 2, [key]))
        plan = RolloutPlan(bundle=bundle, devices=["site-a/dev-1", "site-a/dev-2"], canary=["site-a/dev-1"],
                           stages=[100.0], min_devices=3)
        server = BundleServer({2: bundle.path}).start()
        rollout_state = RolloutState(state_path(cfg.paths.data_dir))
        rollout = Rollout(plan, cfg.mqtt, server, rollout_state)
        rolling = threading.Thread(target=rollout.run, daemon=True)
        rolling.start()

        def device_state(name: str) -> str:
            return ((rollout_state.load() or {}).get("devices", {}).get(name) or {}).get("state", "")

        assert wait_until(lambda: device_state("site-a/dev-1") == "sent", 15.0)
        done = StatusMessage("committed", device_id="dev-1", site="site-a", boot_id="boot-1", version=2, installed=2,
                             rollout_id=plan.rollout_id, detail="self-test and health check passed")
        pub.publish_all([(Topics("site-a", "dev-1").ota_status, done.to_json())])
        assert wait_until(lambda: device_state("site-a/dev-2") == "sent", 15.0)
        yield cfg_path, run, by_device
    finally:
        if rolling is not None:
            rollout.stop_event.set()
            rolling.join(15)
            server.stop()
        pub.close()
        stop.set()
        ingest.join(15)


@pytest.fixture
def served(live_central, tmp_path):
    """`laps-central serve --port 0` as a real process; yields (its base URL, live_central)."""
    cfg_path = live_central[0]
    proc = subprocess.Popen([sys.executable, "-m", "central.cli", "serve", "--config", str(cfg_path), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "serve.log", "wb"), text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()
        assert line.startswith("dashboard on http://127.0.0.1:"), (line, (tmp_path / "serve.log").read_text())
        yield line.split()[2].rstrip("/"), live_central
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


@pytest.fixture
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--disable-sync", "--no-first-run",
                 "--force-device-scale-factor=1", "--window-size=1280,1600"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    yield driver
    driver.quit()


def _loaded(driver, img) -> bool:
    return bool(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img))


@pytest.mark.broker
def test_the_dashboard_shows_the_live_fleet_library_and_rollout_in_a_browser(served, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, (cfg_path, run, by_device) = served
    browser.get(url + "/")
    assert browser.title == "LAPS fleet" and browser.find_element(By.TAG_NAME, "h1").text == "LAPS fleet"
    rows = {r.get_attribute("data-device"): r for r in browser.find_elements(By.CSS_SELECTOR, "tr.device")}
    assert set(rows) == {"dev-1", "dev-2"}
    state = {d: r.find_elements(By.TAG_NAME, "td")[2] for d, r in rows.items()}
    assert state["dev-1"].text == "online" and state["dev-1"].get_attribute("class") == "online"
    assert state["dev-2"].text == "offline (stopped)" and state["dev-2"].get_attribute("class") == "offline"
    assert browser.find_element(By.ID, "online-count").text == "1"
    for d, r in rows.items():
        cells = [c.text for c in r.find_elements(By.TAG_NAME, "td")]
        assert cells[5] == str(len(by_device[d])) and float(cells[6]) > 0  # just received: a rate above 0
        assert cells[4].startswith("2026-01-05T08:")  # the last segment's end, device clock

    k = run.primary.clustering.k
    sizes = np.bincount(run.primary.clustering.labels, minlength=k)
    cards = browser.find_elements(By.CSS_SELECTOR, "#clusters .card")
    assert [int(c.get_attribute("data-size")) for c in cards] == [int(n) for n in sizes if n]
    assert sum(int(c.get_attribute("data-size")) for c in cards) == 48
    for card in cards:
        assert _loaded(browser, card.find_element(By.TAG_NAME, "img")), "a cluster montage did not load"
    rollout = {r.get_attribute("data-device"): [c.text for c in r.find_elements(By.TAG_NAME, "td")]
               for r in browser.find_elements(By.CSS_SELECTOR, "tr.rollout-device")}
    assert rollout == {"site-a/dev-1": ["site-a/dev-1", "0", "committed", "2", "self-test and health check passed"],
                       "site-a/dev-2": ["site-a/dev-2", "1", "sent", "", "desired published"]}
    assert browser.find_element(By.ID, "rollout-state").text == "running"
    assert "stage 2 of 2" in browser.find_element(By.ID, "rollout").text
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000

    cards[0].find_element(By.CSS_SELECTOR, "h3 a").click()
    assert browser.find_element(By.TAG_NAME, "h1").text == "Cluster 0"
    members = browser.find_elements(By.CSS_SELECTOR, "#members tr.member")
    assert len(members) == sizes[0]
    labels = run.primary.clustering.labels
    assert {m.find_element(By.TAG_NAME, "a").text for m in members} == {
        s for s, c in zip(run.segment_ids, labels) if c == 0}
    pictured = next(m for m in members if m.find_elements(By.TAG_NAME, "td")[6].text != "0")
    sid = pictured.find_element(By.TAG_NAME, "a").text
    pictured.find_element(By.TAG_NAME, "a").click()
    assert browser.find_element(By.ID, "segment-id").text == sid
    keyframes = browser.find_elements(By.CSS_SELECTOR, "img.keyframe")
    assert len(keyframes) == 2 and all(_loaded(browser, img) for img in keyframes)
    assert _loaded(browser, browser.find_element(By.ID, "animation"))
    browser.save_screenshot(str(tmp_path / "dashboard-segment.png"))
