"""Shared, module-cached workstations for the synthetic tests (building one takes ~0.3 s)."""

from __future__ import annotations

import functools

import pytest

from edge.synthetic import Nuisances, SyntheticWorkstation


@functools.lru_cache(maxsize=None)
def workstation(seed: int = 7, minutes: float = 2.0, nuisances: str = "none", size: tuple[int, int] = (640, 480),
                hands: int | None = None, distractor: str | None = None) -> SyntheticWorkstation:
    """One SyntheticWorkstation per argument set, reused across tests (they only read from it)."""
    return SyntheticWorkstation(seed=seed, minutes=minutes, size=size, nuisances=Nuisances.parse(nuisances),
                                hands=hands, distractor=distractor)


@pytest.fixture(scope="session")
def make_ws():
    """`make_ws(seed=..., minutes=..., nuisances="none"|"all"|list, size=..., hands=..., distractor=...)`,
    cached: tests only read from what it returns."""
    return workstation


@pytest.fixture(scope="session")
def clean_ws() -> SyntheticWorkstation:
    """Two minutes, two hands, every nuisance off."""
    return workstation(seed=7, minutes=2.0, nuisances="none", hands=2)
