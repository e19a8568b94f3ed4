"""`laps-edge install-units`: install the systemd units, sysusers.d and tmpfiles.d snippets.

Copies `systemd/laps-edge.service` (one camera, /etc/laps-edge/edge.toml) and the template
`laps-edge@.service` (one instance per camera: `laps-edge@<name>.service` reads
/etc/laps-edge/<name>.toml, state in /var/lib/laps-edge/<name>), both with ExecStart pointing at
THIS installation's `laps-edge` executable, `laps-edge.sysusers.conf` and `laps-edge.tmpfiles.conf`, and (only if absent) the
example configuration to /etc/laps-edge/edge.toml. It never overwrites an existing config.
`--root DIR` installs into a staging tree (image builds, tests). `--verify` runs
`systemd-analyze verify` on the installed units (the template as an instance). `--enable` (root "/" only) also creates the user
and folders and enables and starts the service; otherwise the commands are printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

TEMPLATE_EXEC = "/usr/local/bin/laps-edge"
UNIT = "laps-edge.service"
#: one instance per camera: laps-edge@<name>.service
TEMPLATE_UNIT = "laps-edge@.service"
SYSUSERS = "laps-edge.sysusers.conf"
TMPFILES = "laps-edge.tmpfiles.conf"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "install-units",
        help="install the systemd unit and its sysusers/tmpfiles snippets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--root", default="/", help="install under this root folder (default: %(default)s)")
    p.add_argument("--exec", dest="executable", default=None,
                   help="absolute path of laps-edge for ExecStart (default: the one running now)")
    p.add_argument("--units-dir", default=None,
                   help="folder holding the unit templates (default: the systemd/ folder of this checkout)")
    p.add_argument("--verify", action="store_true", help="run systemd-analyze verify on the installed unit")
    p.add_argument("--enable", action="store_true",
                   help="also run systemd-sysusers, systemd-tmpfiles --create, systemctl daemon-reload and "
                        "systemctl enable --now (only with --root /)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from edge.errors import ConfigError

    templates = Path(args.units_dir) if args.units_dir else default_units_dir()
    if not (templates / UNIT).is_file():
        raise ConfigError(f"unit templates not found in {templates}; pass --units-dir pointing at the "
                          "repository's systemd/ folder")
    exe = args.executable or default_executable()
    if not os.path.isabs(exe) or not os.access(exe, os.X_OK):
        raise ConfigError(f"--exec {exe!r} is not an absolute path to an executable laps-edge; pass "
                          "--exec /path/to/laps-edge")
    root = Path(args.root)
    if args.enable and root.resolve() != Path("/"):
        raise ConfigError(f"--enable works only with --root / (got {root}); run the printed commands in the image instead")
    written = install(templates, root, exe)
    for path in written:
        print(f"installed {path}")
    if args.verify:
        ok, text = verify_unit(root / "etc/systemd/system" / UNIT)
        if ok and (root / "etc/systemd/system" / TEMPLATE_UNIT).is_file():
            ok, text = verify_template(root / "etc/systemd/system" / TEMPLATE_UNIT)
        print(("verify: ok" if ok else "verify: FAILED\n") + text)
        if not ok:
            return 1
    steps = [
        ["systemd-sysusers", "/etc/sysusers.d/" + SYSUSERS],
        ["systemd-tmpfiles", "--create", "/etc/tmpfiles.d/" + TMPFILES],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", UNIT],
    ]
    if args.enable:
        for cmd in steps:
            print("+ " + " ".join(cmd))
            subprocess.run(cmd, check=True)
        return 0
    print("\nnext steps (as root):")
    print("  edit /etc/laps-edge/edge.toml (device id, source, broker), then `laps-edge doctor --config "
          "/etc/laps-edge/edge.toml`")
    for cmd in steps:
        print("  " + " ".join(cmd))
    print("several cameras on this box: one config each, /etc/laps-edge/<name>.toml (own device.id; leave "
          "paths.state_dir out), then\n  systemctl enable --now laps-edge@<name>.service")
    return 0


def default_units_dir() -> Path:
    """The unit templates: the repository's systemd/ folder (checkout or editable install), else
    `<prefix>/share/laps-edge/systemd` (where a wheel's data files land)."""
    import edge

    checkout = Path(edge.__file__).resolve().parent.parent / "systemd"
    if (checkout / UNIT).is_file():
        return checkout
    return Path(sys.prefix) / "share" / "laps-edge" / "systemd"


def default_executable() -> str:
    """The laps-edge script of the running installation (venv first, then PATH)."""
    beside = Path(sys.executable).parent / "laps-edge"
    if beside.exists():
        return str(beside)
    return shutil.which("laps-edge") or TEMPLATE_EXEC


def render_unit(text: str, executable: str) -> str:
    """The unit text with ExecStart using `executable`."""
    return text.replace(TEMPLATE_EXEC, executable)


def install(templates: Path, root: Path, executable: str) -> list[Path]:
    """Write the unit and snippets under `root`; returns the paths written (config only if new)."""
    targets = [
        (templates / UNIT, root / "etc/systemd/system" / UNIT, True),
        (templates / TEMPLATE_UNIT, root / "etc/systemd/system" / TEMPLATE_UNIT, True),
        (templates / SYSUSERS, root / "etc/sysusers.d" / SYSUSERS, False),
        (templates / TMPFILES, root / "etc/tmpfiles.d" / TMPFILES, False),
    ]
    written = []
    for src, dst, is_unit in targets:
        if not src.is_file() and src.name == TEMPLATE_UNIT:
            continue  # unit templates of an older installation: the single unit still works
        text = src.read_text(encoding="utf-8")
        if is_unit:
            text = render_unit(text, executable)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(text, encoding="utf-8")
        dst.chmod(0o644)
        written.append(dst)
    example = templates.parent / "examples" / "laps-edge.toml"
    config = root / "etc/laps-edge/edge.toml"
    if example.is_file() and not config.exists():
        config.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(example, config)
        config.chmod(0o640)
        written.append(config)
    return written


def verify_unit(unit: Path) -> tuple[bool, str]:
    """Run `systemd-analyze verify`; ok only with exit 0 AND no warnings (it warns with exit 0)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return False, "systemd-analyze is not installed"
    proc = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    text = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0 and not text, text


def verify_template(template: Path, instance: str = "cam1") -> tuple[bool, str]:
    """`verify_unit` on an instance of a template unit (`laps-edge@.service` -> a copy named
    `laps-edge@cam1.service` beside it in a scratch folder), so every %i is filled in as systemd
    would fill it."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        unit = Path(scratch) / template.name.replace("@.", f"@{instance}.")
        shutil.copyfile(template, unit)
        return verify_unit(unit)
