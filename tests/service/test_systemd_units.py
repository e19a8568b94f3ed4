"""The systemd unit, sysusers.d and tmpfiles.d snippets, and `laps-edge install-units`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.install_units import install, render_unit, verify_template, verify_unit

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
LAPS_EDGE = str(Path(sys.executable).parent / "laps-edge")


def unit_settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def systemd_analyze_usable() -> str | None:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return "systemd-analyze is not installed"
    probe = subprocess.run([tool, "--version"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"systemd-analyze cannot run here: {probe.stderr.strip()}"


def test_service_is_notify_with_watchdog_restart_and_start_limits():
    s = unit_settings((UNITS / "laps-edge.service").read_text())
    assert s["Type"] == ["notify"]
    assert int(s["WatchdogSec"][0]) > 0
    assert s["Restart"] == ["on-failure"]
    assert s["StartLimitIntervalSec"] and s["StartLimitBurst"]
    assert s["StateDirectory"] == ["laps-edge"] and s["CacheDirectory"] == ["laps-edge"]
    assert s["ConfigurationDirectory"] == ["laps-edge"]
    assert "NUMBA_CACHE_DIR=%C/laps-edge/numba" in s["Environment"]


def test_hardening_keeps_cameras_and_nvidia_devices_reachable():
    s = unit_settings((UNITS / "laps-edge.service").read_text())
    assert s["SupplementaryGroups"] == ["video"]
    assert s["DevicePolicy"] == ["closed"]
    allowed = " ".join(s["DeviceAllow"])
    assert "char-video4linux rw" in allowed and "char-nvidia* rw" in allowed and "char-nvhost* rw" in allowed
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    assert "PrivateDevices" not in s  # it would hide /dev/video* and the GPU
    assert s["MemoryDenyWriteExecute"] == ["no"]  # Numba JIT needs W+X pages


def test_rendered_unit_passes_systemd_analyze_verify(tmp_path):
    reason = systemd_analyze_usable()
    if reason:
        pytest.skip(reason)
    unit = tmp_path / "laps-edge.service"
    unit.write_text(render_unit((UNITS / "laps-edge.service").read_text(), LAPS_EDGE))
    ok, text = verify_unit(unit)
    assert ok, text


def test_verify_reports_a_broken_unit(tmp_path):
    reason = systemd_analyze_usable()
    if reason:
        pytest.skip(reason)
    unit = tmp_path / "laps-edge.service"
    text = render_unit((UNITS / "laps-edge.service").read_text(), LAPS_EDGE)
    unit.write_text(text.replace("WatchdogSec=30", "WatchdogSecs=30"))
    ok, out = verify_unit(unit)
    assert not ok and "WatchdogSecs" in out


def test_sysusers_snippet_creates_the_user_in_the_video_group(tmp_path):
    tool = shutil.which("systemd-sysusers")
    if tool is None:
        pytest.skip("systemd-sysusers is not installed")
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (etc / name).write_text("")
    proc = subprocess.run([tool, f"--root={tmp_path}", str(UNITS / "laps-edge.sysusers.conf")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("laps-edge:") for line in (etc / "passwd").read_text().splitlines())
    video = [line for line in (etc / "group").read_text().splitlines() if line.startswith("video:")]
    assert video and "laps-edge" in video[0]


def test_tmpfiles_snippet_creates_state_and_numba_cache_folders(tmp_path):
    tool = shutil.which("systemd-tmpfiles")
    sysusers = shutil.which("systemd-sysusers")
    if tool is None or sysusers is None:
        pytest.skip("systemd-tmpfiles/systemd-sysusers are not installed")
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group", "shadow", "gshadow"):
        (etc / name).write_text("")
    subprocess.run([sysusers, f"--root={tmp_path}", str(UNITS / "laps-edge.sysusers.conf")], check=True,
                   capture_output=True)
    proc = subprocess.run([tool, f"--root={tmp_path}", "--create", str(UNITS / "laps-edge.tmpfiles.conf")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "var/lib/laps-edge").is_dir()
    assert (tmp_path / "var/cache/laps-edge/numba").stat().st_mode & 0o777 == 0o750


def test_install_units_writes_unit_with_this_executable_and_keeps_an_existing_config(tmp_path):
    (tmp_path / "etc/laps-edge").mkdir(parents=True)
    (tmp_path / "etc/laps-edge/edge.toml").write_text("# mine\n")
    written = install(UNITS, tmp_path, LAPS_EDGE)
    unit = (tmp_path / "etc/systemd/system/laps-edge.service").read_text()
    assert f"ExecStart={LAPS_EDGE} run --config /etc/laps-edge/edge.toml" in unit
    assert (tmp_path / "etc/sysusers.d/laps-edge.sysusers.conf").is_file()
    assert (tmp_path / "etc/tmpfiles.d/laps-edge.tmpfiles.conf").is_file()
    assert (tmp_path / "etc/laps-edge/edge.toml").read_text() == "# mine\n"
    assert tmp_path / "etc/laps-edge/edge.toml" not in written


def test_install_units_cli_installs_the_example_config_and_verifies(tmp_path):
    reason = systemd_analyze_usable()
    if reason:
        pytest.skip(reason)
    proc = subprocess.run([LAPS_EDGE, "install-units", "--root", str(tmp_path), "--verify"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verify: ok" in proc.stdout and "systemctl enable --now laps-edge.service" in proc.stdout
    assert (tmp_path / "etc/laps-edge/edge.toml").read_text() == (REPO / "examples/laps-edge.toml").read_text()


def test_install_units_refuses_enable_into_a_staging_root(tmp_path):
    proc = subprocess.run([LAPS_EDGE, "install-units", "--root", str(tmp_path), "--enable"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --enable works only with --root /") and proc.stderr.count("\n") == 1


# -- several cameras per box: laps-edge@<name>.service ---------------------------------------------
#: the only settings in which the template may differ from the single unit
INSTANCE_SETTINGS = {"Description", "Documentation", "ExecStart", "StateDirectory", "CacheDirectory", "Environment"}


def test_template_unit_differs_from_the_single_unit_only_where_it_names_the_instance():
    single = unit_settings((UNITS / "laps-edge.service").read_text())
    template = unit_settings((UNITS / "laps-edge@.service").read_text())
    assert set(single) == set(template)
    assert {k for k in single if single[k] != template[k]} <= INSTANCE_SETTINGS
    assert template["ExecStart"] == ["/usr/local/bin/laps-edge run --config /etc/laps-edge/%i.toml"]
    assert template["StateDirectory"] == ["laps-edge/%i"] and template["CacheDirectory"] == ["laps-edge/%i"]
    assert "NUMBA_CACHE_DIR=%C/laps-edge/%i/numba" in template["Environment"]


def test_rendered_template_instance_passes_systemd_analyze_verify(tmp_path):
    reason = systemd_analyze_usable()
    if reason:
        pytest.skip(reason)
    unit = tmp_path / "laps-edge@.service"
    unit.write_text(render_unit((UNITS / "laps-edge@.service").read_text(), LAPS_EDGE))
    ok, text = verify_template(unit, "cam1")
    assert ok, text
    unit.write_text(unit.read_text().replace("WatchdogSec=30", "WatchdogSecs=30"))
    ok, text = verify_template(unit, "cam1")
    assert not ok and "laps-edge@cam1.service" in text and "WatchdogSecs" in text


def test_install_units_installs_the_template_with_this_executable(tmp_path):
    install(UNITS, tmp_path, LAPS_EDGE)
    unit = (tmp_path / "etc/systemd/system/laps-edge@.service").read_text()
    assert f"ExecStart={LAPS_EDGE} run --config /etc/laps-edge/%i.toml" in unit


def test_an_instance_config_without_paths_uses_the_folders_systemd_made_for_it(tmp_path):
    from edge.config import config_from_dict, systemd_directory_defaults

    data = {"device": {"site": "plant-a", "id": "cam1"}, "source": {"spec": "/dev/video0"}}
    env = {"STATE_DIRECTORY": "/var/lib/laps-edge/cam1", "CACHE_DIRECTORY": "/var/cache/laps-edge/cam1"}
    cfg = config_from_dict(systemd_directory_defaults(data, env))
    assert cfg.outbox_path == Path("/var/lib/laps-edge/cam1/outbox.sqlite")
    assert cfg.numba_cache_dir == Path("/var/cache/laps-edge/cam1/numba")
    # A folder the file names wins over systemd's.
    data["paths"] = {"state_dir": "/srv/cam1"}
    assert config_from_dict(systemd_directory_defaults(data, env)).paths.state_dir == "/srv/cam1"
