"""Nuisance switches: parsing, printing, and the camera effects they control."""

from __future__ import annotations

import dataclasses

import pytest

from edge.errors import ConfigError
from edge.synthetic import NUISANCE_NAMES, Nuisances


def test_all_on_and_none_set_every_switch():
    assert all(getattr(Nuisances.all_on(), n) for n in NUISANCE_NAMES)
    assert not any(getattr(Nuisances.none(), n) for n in NUISANCE_NAMES)


def test_parse_accepts_all_none_and_lists():
    assert Nuisances.parse("all") == Nuisances.all_on()
    assert Nuisances.parse("none") == Nuisances.none()
    picked = Nuisances.parse("noise, blur")
    assert picked.enabled() == ["noise", "blur"]


def test_spec_round_trips_through_parse():
    for nu in (Nuisances.all_on(), Nuisances.none(), Nuisances.parse("shake,compression")):
        assert Nuisances.parse(nu.spec()) == nu


def test_unknown_nuisance_is_a_one_line_config_error_naming_it():
    with pytest.raises(ConfigError) as err:
        Nuisances.parse("noise,fog")
    msg = str(err.value)
    assert "fog" in msg and "distractor" in msg and "\n" not in msg


def test_nuisances_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Nuisances.all_on().noise = False  # type: ignore[misc]
