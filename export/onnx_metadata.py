"""Stamping an exported ONNX file the same way for every model `laps-export` writes.

The device reads a model's conventions from `metadata_props` (one JSON entry under the model's
key, plus a few flat `laps.*` entries that `onnx` tools show at a glance); nothing else.
"""

from __future__ import annotations

import os

import onnx


def stamp_and_save(proto: onnx.ModelProto, props: dict[str, str], doc: str, out: str | os.PathLike) -> None:
    """Replace the model's metadata with `props` (key -> string), set the producer and a
    one-paragraph `doc`, check the model and write it to `out`."""
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "laps-export"
    proto.doc_string = doc
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
