"""The `synthetic://` frame source."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ConfigError, SourceError
from edge.sources.synthetic import SyntheticSource, parse_spec

SPEC = "synthetic://assembly?seed=3&minutes=0.02&size=160x120&nuisances=none"


def test_spec_defaults():
    kwargs = parse_spec("synthetic://assembly")
    assert kwargs["seed"] == 7 and kwargs["minutes"] == 2.0 and kwargs["fps"] == 30.0
    assert kwargs["size"] == (640, 480) and kwargs["nuisances"].spec() == "all"


def test_spec_keys_are_passed_through():
    kwargs = parse_spec("synthetic://assembly?seed=12&minutes=0.5&nuisances=noise,blur&fps=15&size=320x240"
                        "&hands=1&rests=0.25&distractor=conveyor")
    assert kwargs["seed"] == 12 and kwargs["minutes"] == 0.5 and kwargs["fps"] == 15.0
    assert kwargs["size"] == (320, 240) and kwargs["nuisances"].enabled() == ["noise", "blur"]
    assert kwargs["hands"] == 1 and kwargs["rest_fraction"] == 0.25 and kwargs["distractor"] == "conveyor"


def test_source_yields_every_frame_at_the_scenario_fps():
    src = SyntheticSource.from_uri(SPEC)
    with src:
        frames = list(src)
    assert len(frames) == src.frame_count == src.workstation.n_frames
    assert [f.index for f in frames] == list(range(len(frames)))
    assert np.allclose([f.timestamp_s for f in frames], np.arange(len(frames)) / src.fps)
    assert frames[0].image.shape == (120, 160, 3) and src.frame_size == (160, 120)
    assert np.array_equal(frames[5].image, src.workstation.render(5))


def test_reading_a_closed_source_is_a_source_error():
    src = SyntheticSource.from_uri(SPEC)
    with pytest.raises(SourceError):
        src.read()


@pytest.mark.parametrize("spec, names", [
    ("synthetic://assembly?colour=red", "colour"),
    ("synthetic://assembly?seed=abc", "seed"),
    ("synthetic://assembly?seed=-2", "seed"),
    ("synthetic://assembly?minutes=0", "minutes"),
    ("synthetic://assembly?size=640", "size"),
    ("synthetic://assembly?size=641x480", "641x480"),
    ("synthetic://assembly?nuisances=fog", "fog"),
    ("synthetic://assembly?hands=3", "hands"),
    ("synthetic://assembly?rests=2", "rests"),
    ("synthetic://assembly?distractor=forklift", "distractor"),
    ("synthetic://assembly?seed=1&seed=2", "seed"),
    ("synthetic://kitchen?seed=1", "kitchen"),
])
def test_bad_specs_are_one_line_config_errors_naming_the_problem(spec, names):
    with pytest.raises(ConfigError) as err:
        SyntheticSource.from_uri(spec)
    msg = str(err.value)
    assert names in msg and "\n" not in msg


def test_reopening_restarts_at_the_first_frame():
    src = SyntheticSource.from_uri("synthetic://assembly?seed=3&minutes=0.05&size=160x120&nuisances=all")
    with src:
        first = [src.read() for _ in range(3)]
    with src:
        again = src.read()
    assert again.index == 0 and np.array_equal(again.image, first[0].image)
    assert np.array_equal(first[2].image, src.workstation.render(2))
