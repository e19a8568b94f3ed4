"""What every torch training loop of `export` shares: device choice, determinism, resume and
checkpoint files. The tokenizer (`export.tokenizer.train`) and the tracker student
(`export.tracker.train`) both use it, so a reproducibility fix lands in both.

Files in a run folder: `last.pt` (written at every evaluation), `best.pt` (the best so far),
`history.json` (the validation history).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch

from edge.errors import ConfigError

CHECKPOINT_LAST = "last.pt"
CHECKPOINT_BEST = "best.pt"
HISTORY_NAME = "history.json"


def pick_device(name: str) -> torch.device:
    """"auto" (CUDA when torch sees a GPU, else CPU), "cpu" or "cuda[:i]"; one-line errors."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was requested but torch sees no CUDA GPU; use --device cpu or auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise ConfigError(f"device {name!r} is unknown; use auto, cpu or cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def deterministic_setup(device_name: str, threads: int, seed: int) -> torch.device:
    """Pick the device, fix the thread count, switch torch to deterministic algorithms and seed
    every generator; call before the model is built. Bit-exact on CPU; on CUDA an op without a
    deterministic kernel warns instead of failing."""
    device = pick_device(device_name)
    torch.set_num_threads(max(1, threads))
    if device.type == "cuda":
        # cuBLAS is reproducible only with a fixed workspace; set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    seed_everything(seed)
    return device


def resume_from(out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                shape_mismatch: str) -> dict:
    """Load `out/last.pt` into model and optimizer and restore torch's RNG; returns the
    checkpoint for the loop's own counters. `shape_mismatch`: the one-line error when the
    checkpoint's `model_config` differs from `model.cfg`."""
    path = out / CHECKPOINT_LAST
    if not path.is_file():
        raise ConfigError(f"--resume given but {path} does not exist; start without --resume")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    if ckpt["model_config"] != model.cfg.to_dict():
        raise ConfigError(f"checkpoint {path} {shape_mismatch}")
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    torch.set_rng_state(ckpt["torch_rng"])
    return ckpt


def save_checkpoint(out: Path, ckpt: dict, improved: bool, history: list[dict]) -> None:
    """Write `last.pt`, `best.pt` when `improved`, and `history.json`."""
    torch.save(ckpt, out / CHECKPOINT_LAST)
    if improved:
        torch.save(ckpt, out / CHECKPOINT_BEST)
    (out / HISTORY_NAME).write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")
