"""The device runtime never imports torch, nor the laptop/fleet packages (imports point one way)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EDGE = Path(__file__).resolve().parents[2] / "edge"


def test_running_the_edge_pipeline_never_imports_torch_or_laptop_packages(tmp_path):
    code = (
        "import sys\n"
        "from edge.cli import main\n"
        f"rc = main(['run', '--source', 'synthetic://assembly?seed=902&minutes=0.2', '--out', {str(tmp_path)!r}, '--quiet'])\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'export', 'calibration', 'central'))\n"
        "print('RC', rc, 'BAD', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "RC 0 BAD []" in proc.stdout, proc.stdout + proc.stderr


def test_no_edge_module_imports_torch_or_the_laptop_and_fleet_packages():
    pattern = re.compile(r"^\s*(from|import)\s+(torch|export|calibration|central)\b", re.M)
    offenders = [str(p.relative_to(EDGE)) for p in EDGE.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
