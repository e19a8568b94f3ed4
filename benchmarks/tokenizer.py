"""Tokenizer speed on ONNX Runtime CPU, per frame, for both presets at N=400, T=16.

Each row times `TokenizerRuntime.step` (ring update, encoder, FSQ, z_q) over a stream of
frames and reports the median ms/frame over repeats. Baseline in the same run: the NumPy part
alone (ring update + FSQ rounding + code -> z_q, no encoder), so the ratio is the encoder's cost;
base is also shown against small. Weights are random (speed does not depend on them); the
committed default model is timed too when present.

    python -m benchmarks.tokenizer [--frames 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import median_time_s, print_table, write_results

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "edge" / "shipped_models" / "default"


def _export_preset(preset: str, root: Path):
    import torch

    from export.tokenizer.model import MotionTokenizer, TokenizerConfig
    from export.tokenizer.onnx import write_model_directory
    from export.tokenizer.windows import DataConventions

    torch.manual_seed(0)
    conv = DataConventions()
    model = MotionTokenizer(TokenizerConfig.from_preset(preset, steps=conv.steps, n_points=conv.n_points)).eval()
    return write_model_directory(model, conv, root / preset, model_version=f"bench-{preset}")


def _stream(n_points: int, frames: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.normal(0, 2, (frames, n_points, 2)).astype(np.float32),
            rng.random((frames, n_points)) > 0.05)


def _time_runtime(runtime, vel, vis, repeats: int) -> float:
    def run() -> None:
        runtime.reset()
        for v, m in zip(vel, vis):
            runtime.step(v, m)

    return median_time_s(run, repeats=repeats, warmup=1) / len(vel) * 1e3


def _time_numpy_part(runtime, vel, vis, repeats: int) -> float:
    """Ring update + FSQ + z_q exactly as the runtime does them, without the encoder call."""
    meta = runtime.metadata
    s = meta.steps
    buf = np.zeros((2 * s, meta.n_points, 2), np.float32)
    latents = np.random.default_rng(1).normal(0, 1, (s, len(meta.fsq_levels))).astype(np.float32)
    inv = np.float32(1.0 / meta.velocity_scale_px)
    fsq = runtime.fsq

    def run() -> None:
        pos = 0
        for v, m in zip(vel, vis):
            x = v * inv
            x[~m] = 0.0
            buf[pos] = x
            buf[pos + s] = x
            _ = buf[pos + 1: pos + 1 + s][None]  # the encoder's input view (a view, as on the device)
            pos = (pos + 1) % s
            code = int(fsq.codes(latents[-1]))
            fsq.z_q_from_codes(code)

    return median_time_s(run, repeats=repeats, warmup=1) / len(vel) * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200, help="frames per timed stream (default 200)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats, median reported (default 5)")
    args = parser.parse_args(argv)

    from edge.tokenizer import TokenizerRuntime

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        dirs = {p: _export_preset(p, Path(tmp)) for p in ("small", "base")}
        print(f"exported both presets in {time.perf_counter() - t0:.1f} s")
        runtimes = {p: TokenizerRuntime(d, providers="cpu") for p, d in dirs.items()}
        vel, vis = _stream(runtimes["small"].metadata.n_points, args.frames)
        base_ms = _time_numpy_part(runtimes["small"], vel, vis, args.repeats)
        rows.append({"name": "baseline: numpy ring + FSQ + z_q (no encoder)", "ms_per_frame": base_ms,
                     "ratio_vs_baseline": 1.0})
        small_ms = None
        for preset, rt in runtimes.items():
            ms = _time_runtime(rt, vel, vis, args.repeats)
            small_ms = ms if preset == "small" else small_ms
            size = dirs[preset].tokenizer_path.stat().st_size / 2 ** 20
            row = {"name": f"tokenizer {preset} (ORT CPU, N=400, T=16)", "ms_per_frame": ms,
                   "ratio_vs_baseline": ms / base_ms, "onnx_mib": size}
            if preset == "base":
                row["ratio_vs_small"] = ms / small_ms
            rows.append(row)
        wm = TokenizerRuntime(dirs["small"], providers="cpu", energy_mode="window_mean", stride=4)
        ms = _time_runtime(wm, vel, vis, args.repeats)
        rows.append({"name": "tokenizer small, window_mean mode (stride 4)", "ms_per_frame": ms,
                     "ratio_vs_baseline": ms / base_ms})
    if (DEFAULT_MODEL / "manifest.json").is_file():
        rt = TokenizerRuntime(DEFAULT_MODEL, providers="cpu")
        ms = _time_runtime(rt, vel, vis, args.repeats)
        rows.append({"name": f"default model {rt.metadata.model_version}", "ms_per_frame": ms,
                     "ratio_vs_baseline": ms / base_ms,
                     "onnx_mib": rt.model_dir.tokenizer_path.stat().st_size / 2 ** 20})
    print_table(rows, title=f"Tokenizer per-frame cost ({args.frames} frames, median of {args.repeats})")
    write_results("tokenizer", rows, extra={"frames": args.frames, "repeats": args.repeats,
                                             "providers": ["CPUExecutionProvider"]})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
