"""Numba cache policy: an unwritable cache directory gives ONE warning and uncached compilation,
never a crash; a read-only package still caches in the user-wide directory.

Each case runs a fresh interpreter. As root, write permission is taken away by dropping
CAP_DAC_OVERRIDE from the child (`setpriv`), so a 0555 directory is really read-only to it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edge.energy

REPO_EDGE = Path(edge.energy.__file__).resolve().parents[1]

SCRIPT = r"""
import json, warnings
warnings.simplefilter("always")
import edge.energy as en
from edge.energy import kernel
p = en.HysteresisParams(theta_on=1.0, min_steps=1).to_array()
s = en.new_state()
events = [en.energy_step(s, p, v) for v in (0.0, 2.0, 2.0, 2.0, 0.0, 0.0)]
print(json.dumps({"file": kernel.__file__, "cached": kernel._CACHE,
                  "events": events + [en.finish(s, p)]}))
"""


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv: cannot make a directory read-only to the child")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def _run(env_extra: dict, prefix: list[str]) -> tuple[dict, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(env_extra)
    # cwd outside the repo: `python -c` puts the cwd first on sys.path.
    proc = subprocess.run(prefix + [sys.executable, "-c", SCRIPT], env=env, cwd="/",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def _read_only_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    return path


def _read_only_package_copy(root: Path) -> Path:
    """A copy of edge/__init__.py, edge/errors.py and edge/energy/*.py with no write permission."""
    pkg = root / "edge"
    (pkg / "energy").mkdir(parents=True)
    for name in ("__init__.py", "errors.py"):
        shutil.copy(REPO_EDGE / name, pkg / name)
    for src in (REPO_EDGE / "energy").glob("*.py"):
        shutil.copy(src, pkg / "energy" / src.name)
    for p in [*pkg.rglob("*.py")]:
        p.chmod(0o444)
    (pkg / "energy").chmod(0o555)
    pkg.chmod(0o555)
    root.chmod(0o555)
    return root


EXPECTED = {"events": [0, 0, 1, 0, 0, 2, 0]}  # START at 2, END at 5: segment [1, 4)


def _assert_ran(out: dict) -> None:
    assert {k: out[k] for k in EXPECTED} == EXPECTED


def test_read_only_numba_cache_dir_warns_once_and_compiles_uncached(tmp_path):
    prefix = _unprivileged()
    cache = _read_only_dir(tmp_path / "ro_cache")
    out, err = _run({"NUMBA_CACHE_DIR": str(cache), "HOME": str(tmp_path),
                     "XDG_CACHE_HOME": str(tmp_path / "xdg")}, prefix)
    _assert_ran(out)
    assert out["cached"] is False
    assert err.count("KernelCacheWarning") == 1 and "NUMBA_CACHE_DIR" in err
    assert not (tmp_path / "xdg").exists()   # no silent fallback elsewhere


def test_numba_cache_dir_below_a_file_warns_once_and_compiles_uncached(tmp_path):
    # Unwritable for every user, root included: a regular file sits where a directory should.
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    out, err = _run({"NUMBA_CACHE_DIR": str(blocker / "cache"), "HOME": str(tmp_path)}, [])
    _assert_ran(out)
    assert out["cached"] is False
    assert err.count("KernelCacheWarning") == 1


def test_read_only_package_caches_in_the_user_cache_without_warning(tmp_path):
    prefix = _unprivileged()
    pkg_root = _read_only_package_copy(tmp_path / "site")
    xdg = tmp_path / "xdg"
    out, err = _run({"PYTHONPATH": str(pkg_root), "HOME": str(tmp_path),
                     "XDG_CACHE_HOME": str(xdg)}, prefix)
    _assert_ran(out)
    assert out["file"].startswith(str(pkg_root))
    assert out["cached"] is True
    assert "KernelCacheWarning" not in err
    assert list(xdg.rglob("kernel.energy_step-*.nbi")), "kernel not cached in the user cache"


def test_read_only_package_and_user_cache_warn_once_and_compile_uncached(tmp_path):
    prefix = _unprivileged()
    pkg_root = _read_only_package_copy(tmp_path / "site")
    home = _read_only_dir(tmp_path / "home")
    out, err = _run({"PYTHONPATH": str(pkg_root), "HOME": str(home),
                     "XDG_CACHE_HOME": str(home / ".cache")}, prefix)
    _assert_ran(out)
    assert out["file"].startswith(str(pkg_root))
    assert out["cached"] is False
    assert err.count("KernelCacheWarning") == 1


def test_every_jitted_function_of_the_energy_package_lives_in_kernel_py():
    # Numba invalidates a cached function only when ITS file changes; a jitted runner in another
    # file would keep running an old, inlined energy_step after kernel.py changed.
    decorator = re.compile(r"^\s*@(numba\.)?(n?jit|vectorize|guvectorize|stencil)\b", re.M)
    offenders = [p.name for p in (REPO_EDGE / "energy").glob("*.py")
                 if p.name != "kernel.py" and decorator.search(p.read_text())]
    assert offenders == []
