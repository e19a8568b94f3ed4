"""`laps-edge doctor` reports TensorRT/CUDA only where they can run, and its summary is the last
thing it prints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli.doctor import _gpu

from .helpers import write_config, write_video

LAPS_EDGE = str(Path(sys.executable).parent / "laps-edge")
GPU_NODES = ("/dev/nvidia0", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl")


def test_tensorrt_and_cuda_are_ok_only_where_a_gpu_is_present():
    check = _gpu(None)
    if not any(os.path.exists(n) for n in GPU_NODES):
        # e.g. a CUDA toolkit on a machine without a GPU: the library loads, no device answers
        assert check.status != "ok", check
        assert "runs on CPU" in check.detail
    else:
        assert check.status == "ok", check


@pytest.mark.broker
def test_the_summary_is_the_last_line_and_no_component_log_line_is_printed(broker, tmp_path):
    video = write_video(tmp_path / "v.avi", seconds=2)
    cfg = write_config(tmp_path / "edge.toml", port=broker.port, state_dir=tmp_path / "state", source=str(video))
    # Unbuffered, both streams in one pipe: what a person sees in a terminal, in that order.
    proc = subprocess.run([LAPS_EDGE, "doctor", "--config", str(cfg), "--timeout", "3"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines[-1].endswith(" ok") and " failed, " in lines[-1], proc.stdout[-2000:]
    assert not [line for line in lines if " INFO " in line or " WARNING " in line], proc.stdout[-2000:]
    assert any(line.startswith("ok    broker auth") for line in lines)
