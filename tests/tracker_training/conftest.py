"""Tiny students and window sets shared by the tracker-training tests (2 cores: keep them small)."""

from __future__ import annotations

import pytest
import torch

from export.tracker.dataset import WindowSet, WindowSpec, synthetic_windows
from export.tracker.model import StudentConfig, StudentTracker
from export.tracker.train import TrainConfig

#: a student small enough to train a few steps in well under a second
TINY = {"channels": [4, 8, 8, 8], "hidden": 8, "mlp": 16, "radius": 2, "subpixel_iterations": 1,
        "subpixel_radius": 2, "subpixel_moving_radius": 1}
#: 3 steps per window, 12 points, 64x48 crops of the 320x240 frames
TINY_SPEC = WindowSpec(steps=3, points=12, crop=(64, 48), stride=4)


def tiny_student(seed: int = 0) -> StudentTracker:
    torch.manual_seed(seed)
    return StudentTracker(StudentConfig.from_dict({**StudentConfig().to_dict(), **TINY})).eval()


def tiny_train_config(**overrides) -> TrainConfig:
    base = dict(iterations=6, batch_size=4, lr=3e-3, warmup=1, eval_every=3, device="cpu", threads=1, model=TINY)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="session")
def tiny_windows() -> WindowSet:
    """Windows of 6 s of TRAINING seed 100 (exact synthetic targets)."""
    return synthetic_windows(100, 0.1, "all", TINY_SPEC, rng_seed=0)


@pytest.fixture(scope="session")
def tiny_val_windows() -> WindowSet:
    """Windows of 3 s of VALIDATION seed 500."""
    return synthetic_windows(500, 0.05, "all", TINY_SPEC, rng_seed=1)
