"""The device's self-test of a bundle: its golden vectors must reproduce EXACTLY.

`golden/golden.npz` (written by `export.verify.make_golden`) holds input windows with their
expected codes and a golden clip with its expected per-frame codes and segments. On the device,
with the inference providers the pipeline will use, every window code, every clip code and every
segment boundary must be identical. A single flipped code fails the bundle: it would mean this
device segments differently from the machine that exported and calibrated the model.

`replay_golden_clip` is the one implementation of "run the golden clip through the device
runtime"; `export.verify` imports it for its parity report.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from edge.model import GOLDEN_DIR, ModelDirectory, load_model_directory
from edge.ota.errors import SelfTestFailed

GOLDEN_NAME = "golden.npz"


@dataclass(frozen=True)
class SelfTestReport:
    """Counts of a self-test. Mismatches are exact-equality failures; seconds: wall time."""

    window_tokens: int
    window_mismatches: int
    clip_frames: int
    clip_mismatches: int
    segments_expected: int
    segments_found: int
    segments_identical: bool
    seconds: float

    @property
    def passed(self) -> bool:
        return self.window_mismatches == 0 and self.clip_mismatches == 0 and self.segments_identical

    def summary(self) -> str:
        return (f"{self.window_tokens - self.window_mismatches}/{self.window_tokens} window codes, "
                f"{self.clip_frames - self.clip_mismatches}/{self.clip_frames} clip codes, segments "
                f"{self.segments_found} found vs {self.segments_expected} expected "
                f"({'identical' if self.segments_identical else 'DIFFERENT'})")

    def to_dict(self) -> dict:
        return asdict(self) | {"passed": self.passed}


def replay_golden_clip(runtime, golden: dict) -> tuple[np.ndarray, np.ndarray]:
    """Run the golden clip through a fresh `TokenizerRuntime` ring and the energy kernel.

    Returns (per-frame codes (F,) int64, segments (K, 2) [start, end) frames) computed with the
    golden `clip_params`; the runtime is reset before and left holding the clip's history.
    """
    from edge.energy import HysteresisParams, run_series_latent

    runtime.reset()
    velocity = np.asarray(golden["clip_velocity"]).astype(np.float32)
    codes = np.array([runtime.step(v, m).code for v, m in zip(velocity, golden["clip_valid"])], dtype=np.int64)
    params = HysteresisParams.from_array(golden["clip_params"])
    segments = run_series_latent(runtime.fsq.z_q_from_codes(codes), params).segments
    return codes, np.asarray(segments, np.int64).reshape(-1, 2)


def run_self_test(model_dir: ModelDirectory | str | os.PathLike, providers: str = "cpu") -> SelfTestReport:
    """Self-test a model directory on this device; raises `SelfTestFailed` unless every code
    and segment matches (or the golden data is missing: an untestable bundle is not installed)."""
    from edge.tokenizer import TokenizerRuntime

    t0 = time.perf_counter()
    md = model_dir if isinstance(model_dir, ModelDirectory) else load_model_directory(model_dir)
    path = md.path / GOLDEN_DIR / GOLDEN_NAME
    try:
        with np.load(path) as data:
            golden = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise SelfTestFailed(f"bundle golden data {path} is missing or unreadable ({err}); rebuild the bundle "
                             "from a model exported with golden vectors") from None
    # One intra-op thread: the self-test runs beside the live pipeline, and two ONNX Runtime
    # thread pools spinning against each other make both many times slower on a small device.
    runtime = TokenizerRuntime(md, providers=providers, intra_op_threads=1)
    w_codes = np.stack([runtime.fsq.codes(runtime.encode_window(v, m))
                        for v, m in zip(golden["window_velocity"], golden["window_valid"])])
    expected_w = np.asarray(golden["window_codes"]).reshape(w_codes.shape)
    codes, segments = replay_golden_clip(runtime, golden)
    expected_segments = np.asarray(golden["clip_segments"], np.int64).reshape(-1, 2)
    report = SelfTestReport(
        window_tokens=int(w_codes.size), window_mismatches=int(np.sum(w_codes != expected_w)),
        clip_frames=int(codes.size), clip_mismatches=int(np.sum(codes != np.asarray(golden["clip_codes"]))),
        segments_expected=len(expected_segments), segments_found=len(segments),
        segments_identical=bool(segments.shape == expected_segments.shape and np.all(segments == expected_segments)),
        seconds=time.perf_counter() - t0,
    )
    if not report.passed:
        raise SelfTestFailed(f"self-test of {md.path.name} failed on this device: {report.summary()}; "
                             "the bundle is not installed (re-export and re-verify the model)")
    return report
