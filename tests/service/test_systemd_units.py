"""The systemd unit, sysusers.d and tmpfiles.d snippets, and `laps-edge install-units`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.install_units import install, render_unit, verify_unit

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
