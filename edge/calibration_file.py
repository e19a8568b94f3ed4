"""`calibration.json`: the hysteresis thresholds of one tokenizer and where they came from.

`CalibrationFile` is the file's one owner: `laps-calibrate`, `laps-export onnx` and a model
directory's installer write it with `CalibrationFile.write`; the device pipeline, a model
directory, the bundler and the calibration report read it with `CalibrationFile.read` (or
`from_dict` for JSON already in hand). The device uses only `params`; everything else is
provenance for a person or a fleet tool.

The file (schema "laps.calibration/1"), one JSON object:

    {"schema": "laps.calibration/1",
     "params": HysteresisParams.to_dict(), "theta_off": params.theta_off (for a person),
     "model_version": the tokenizer the thresholds belong to, "fps": its frame rate,
     "mode": "unsupervised" | "labelled", "criterion": e.g. "youden" or "boundary_f1@2s",
     "score": the criterion's value,
     ...the writing tool's own records (`details`): laps-calibrate writes "proxy_quality",
        "labelled", "unsupervised_params", "split", "data", "sweep"; laps-export writes
        "method", "sources", "tracker", "energy"...,
     "warnings": [...], "created": ISO-8601 UTC, "tool": "laps-calibrate" | "laps-export",
     "tool_version": the laps-edge package version}

Older files still load:
- `laps-export onnx` before the schema: {"params": {...}, "provenance": {"method", "sources",
  "tracker", "energy", "f1_at_2s", "model_version"}} -> model_version from the provenance, the
  rest of it in `details`;
- a bare parameter object {"theta_on": ..., ...} (what every reader accepted): params only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from edge.energy import HysteresisParams
from edge.errors import ConfigError

SCHEMA = "laps.calibration/1"
#: Top-level keys the file itself defines; a tool's `details` may not reuse them.
RESERVED_KEYS = frozenset({"schema", "params", "theta_off", "model_version", "fps", "mode", "criterion", "score",
                           "warnings", "created", "tool", "tool_version", "provenance"})


@dataclass(frozen=True)
class CalibrationFile:
    """The content of a `calibration.json`.

    params: the hysteresis parameters the device runs with. model_version: the tokenizer they
    belong to ("" when an old file does not say). fps: its frame rate (steps per second), None
    when unknown. mode / criterion / score: how the thresholds were chosen and the criterion's
    value. details: the writing tool's own provenance records (JSON-ready), written at the top
    level in their order. warnings: one-line warnings of the calibration. created: ISO-8601 UTC
    time of writing. tool / tool_version: what wrote it.
    """

    params: HysteresisParams
    model_version: str = ""
    fps: float | None = None
    mode: str = ""
    criterion: str = ""
    score: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    created: str = ""
    tool: str = ""
    tool_version: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.params, HysteresisParams):
            raise ConfigError(f"a calibration needs HysteresisParams, not {type(self.params).__name__}")
        clash = sorted(RESERVED_KEYS & set(self.details))
        if clash:
            raise ConfigError(f"calibration details may not use the file's own key(s) {', '.join(clash)}; "
                              "rename them")
        object.__setattr__(self, "warnings", tuple(str(w) for w in self.warnings))

    # -- the JSON record ---------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON-ready record, in the file's key order."""
        return {
            "schema": SCHEMA,
            "params": self.params.to_dict(),
            "theta_off": self.params.theta_off,
            "model_version": self.model_version,
            "fps": self.fps,
            "mode": self.mode,
            "criterion": self.criterion,
            "score": self.score,
            **dict(self.details),
            "warnings": list(self.warnings),
            "created": self.created,
            "tool": self.tool,
            "tool_version": self.tool_version,
        }

    @classmethod
    def from_dict(cls, data: object, where: str = "calibration") -> "CalibrationFile":
        """Parse a record of any shape the module docstring lists; `where` names it in errors
        (one-line `ConfigError`)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where} is a JSON {type(data).__name__}, not an object; re-run laps-calibrate")
        schema = data.get("schema")
        if schema is not None and schema != SCHEMA:
            raise ConfigError(f"{where} has schema {schema!r}, this version reads {SCHEMA!r}; update laps-edge "
                              "or re-run laps-calibrate")
        if "params" not in data:
            if "theta_on" in data:  # an old bare parameter object
                return cls(params=_params(data, where))
            raise ConfigError(f"{where} has no 'params' object; re-run laps-calibrate")
        if not isinstance(data["params"], dict):
            raise ConfigError(f"{where} has no 'params' object; re-run laps-calibrate")
        params = _params(data["params"], where)
        if schema is None and isinstance(data.get("provenance"), dict):  # laps-export onnx before the schema
            provenance = dict(data["provenance"])
            return cls(params=params, model_version=str(provenance.pop("model_version", "")), details=provenance)
        score = data.get("score")
        fps = data.get("fps")
        try:
            return cls(
                params=params, model_version=str(data.get("model_version") or ""),
                fps=None if fps is None else float(fps), mode=str(data.get("mode") or ""),
                criterion=str(data.get("criterion") or ""), score=None if score is None else float(score),
                details={k: v for k, v in data.items() if k not in RESERVED_KEYS},
                warnings=tuple(data.get("warnings") or ()), created=str(data.get("created") or ""),
                tool=str(data.get("tool") or ""), tool_version=str(data.get("tool_version") or ""),
            )
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where} has a malformed field ({err}); re-run laps-calibrate") from None

    # -- the file ------------------------------------------------------------------------------
    def write(self, path: str | os.PathLike) -> Path:
        """Write the file atomically (a reader never sees half a file); returns its path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, p)
        return p

    @classmethod
    def read(cls, path: str | os.PathLike) -> "CalibrationFile":
        """Read a calibration file of any shape the module docstring lists; a missing file, one
        that is not JSON, or parameters the device would refuse are a one-line `ConfigError`."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"calibration file {p} does not exist; run laps-calibrate to make one") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"calibration file {p} is not readable JSON ({err}); re-run laps-calibrate") from None
        return cls.from_dict(data, where=f"calibration file {p}")


def utc_now() -> str:
    """The current UTC time as the file's `created` stamp (ISO-8601, seconds, "Z")."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def tool_version() -> str:
    """The installed laps-edge package version ("unknown" when not installed)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("laps-edge")
    except (ImportError, PackageNotFoundError):
        return "unknown"


def _params(data: Mapping[str, Any], where: str) -> HysteresisParams:
    try:
        return HysteresisParams.from_dict(data)
    except (ConfigError, TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
