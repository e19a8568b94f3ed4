"""Model metadata: one convention, checked against the pipeline with one-line errors."""

import json

import pytest

from edge.errors import ModelError
from edge.model import ONNX_METADATA_KEY, ModelMetadata
from edge.inference import create_backend


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_matching_pipeline_passes(model_dir):
    meta = model_dir.metadata
    meta.check_matches(fps=meta.fps, window=meta.window, n_points=meta.n_points, input_size=meta.input_size,
                       convention="xy")


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"fps": 15.0}, "fps: pipeline 15 vs model 10"),
        ({"window": 16}, "window T: pipeline 16 vs model 6"),
        ({"n_points": 400}, "points N: pipeline 400 vs model 16"),
        ({"input_size": (320, 240)}, "input size: pipeline 320x240 vs model 64x48"),
        ({"convention": "rc"}, "coordinate convention: pipeline 'rc' vs model 'xy'"),
    ],
)
def test_mismatch_is_a_one_line_error_naming_both_values(model_dir, kwargs, expected):
    with pytest.raises(ModelError) as err:
        model_dir.metadata.check_matches(**kwargs)
    assert expected in _one_line(err)


def test_metadata_round_trips_through_json(model_dir):
    meta = model_dir.metadata
    assert ModelMetadata.from_json(meta.to_json()) == meta


def test_onnx_file_embeds_the_same_metadata_as_the_manifest(model_dir):
    embedded = create_backend(model_dir.tokenizer_path, providers="cpu").custom_metadata[ONNX_METADATA_KEY]
    assert json.loads(embedded) == model_dir.manifest["model"]


def test_metadata_missing_a_field_is_refused(model_dir):
    data = model_dir.metadata.to_dict()
    del data["fps"]
    with pytest.raises(ModelError) as err:
        ModelMetadata.from_dict(data)
    assert "lacks fps" in _one_line(err)


def test_metadata_with_another_convention_is_refused(model_dir):
    data = model_dir.metadata.to_dict()
    data["convention"] = "rc"
    with pytest.raises(ModelError) as err:
        ModelMetadata.from_dict(data)
    assert "convention is 'rc'" in _one_line(err)
