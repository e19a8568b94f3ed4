"""`calibration.json`: the chosen thresholds and where they came from.

The device reads only `params` (`edge.pipeline.load_calibration`, or a model directory's
calibration through `edge.model.load_model_directory`); everything else is provenance for a
person or a fleet tool:

    {"schema": "laps.calibration/1",
     "params": HysteresisParams.to_dict(), "theta_off": ...,
     "model_version", "fps", "mode": "unsupervised" | "labelled", "criterion", "score",
     "proxy_quality": {"youden_j", "f1", "best_youden_j", "otsu_threshold", "otsu_separability",
                       "pseudo_active_fraction", "weak", "weak_below_youden_j"},
     "labelled": null | {held-out F1@2s/F1@5s, ...}, "unsupervised_params": null | {...},
     "split": null | {"mode", "split_window", "split_theta", "split_min_steps", "window_s", "peaks",
                      "peak_separability", "boundary_f1"},
     "data": {"sha256", "recordings": [{"name", "source", "kind", "steps", "seconds"}], "seconds"},
     "sweep": {"parameter_sets", "theta_candidates", "ratio_off", "up_steps", "down_steps", "alpha",
               "cooldown_steps", "min_steps", "max_steps"},
     "warnings": [...], "created", "tool", "tool_version"}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from edge.energy import HysteresisParams
from edge.errors import ConfigError, ModelError

SCHEMA = "laps.calibration/1"
FILE_NAME = "calibration.json"
TOOL = "laps-calibrate"


@dataclass(frozen=True)
class CalibrationFile:
    """A calibration file read back: the parameters and the whole record (provenance)."""

    params: HysteresisParams
    record: dict

    @property
    def model_version(self) -> str:
        return str(self.record.get("model_version", ""))


def calibration_record(cal, recordings: Sequence, model, data_sha256: str, created: str | None = None) -> dict:
    """The JSON-ready record of a `calibration.unsupervised.Calibration`.

    recordings: the `EnergyRecording`s it used; model: their `ModelConventions`;
    data_sha256: `calibration.recordings.data_hash` of what was calibrated on.
    """
    space = cal.grid.space
    return {
        "schema": SCHEMA,
        "params": cal.params.to_dict(),
        "theta_off": cal.params.theta_off,
        "model_version": model.model_version,
        "fps": model.fps,
        "mode": cal.mode,
        "criterion": cal.criterion,
        "score": cal.score,
        "proxy_quality": cal.quality.to_dict(),
        "labelled": cal.labelled.to_dict() if cal.labelled is not None else None,
        "unsupervised_params": cal.unsupervised_params.to_dict() if cal.unsupervised_params is not None else None,
        "split": cal.split.to_dict() if getattr(cal, "split", None) is not None else None,
        "data": {
            "sha256": data_sha256,
            "recordings": [{"name": r.name, "source": r.source, "kind": r.kind, "steps": r.n_steps,
                            "seconds": r.duration_s} for r in recordings],
            "seconds": float(sum(r.duration_s for r in recordings)),
        },
        "sweep": {
            "parameter_sets": cal.grid.size, "theta_candidates": int(cal.grid.thetas.shape[0]),
            "ratio_off": list(space.ratio_off), "up_steps": list(space.up_steps),
            "down_steps": list(space.down_steps), "alpha": list(space.alpha),
            "cooldown_steps": space.cooldown_steps, "min_steps": space.min_steps, "max_steps": space.max_steps,
        },
        "warnings": list(cal.warnings),
        "created": created or datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "tool": TOOL,
        "tool_version": tool_version(),
    }


def write_calibration(path: str | os.PathLike, record: dict) -> Path:
    """Write `record` as JSON to `path` atomically (a reader never sees half a file)."""
    if "params" not in record:
        raise ConfigError("a calibration record needs 'params'; build it with calibration_record()")
    HysteresisParams.from_dict(record["params"])  # never write parameters the device would refuse
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, p)
    return p


def read_calibration(path: str | os.PathLike) -> CalibrationFile:
    """Read a calibration file; one-line ConfigError when it is missing, not JSON, or its
    parameters are invalid."""
    p = Path(path)
    try:
        record = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"calibration file {p} does not exist; run laps-calibrate to make one") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"calibration file {p} is not readable JSON ({err}); re-run laps-calibrate") from None
    if not isinstance(record, dict) or not isinstance(record.get("params"), dict):
        raise ConfigError(f"calibration file {p} has no 'params' object; re-run laps-calibrate")
    return CalibrationFile(params=HysteresisParams.from_dict(record["params"]), record=record)


def install_into_model(model_dir: str | os.PathLike, record: dict) -> Path:
    """Put the calibration into a model directory (its `calibration.json` and the manifest's
    file list), so the device picks it up with the model. Refuses a calibration made for
    another model version, and a signed directory (changing it would break the signature:
    re-bundle with `laps-export` instead)."""
    from edge.model import MANIFEST_NAME, load_model_directory, sha256_file

    root = Path(model_dir)
    model = load_model_directory(root)
    if record.get("model_version") != model.metadata.model_version:
        raise ModelError(
            f"calibration is for model {record.get('model_version')!r} but {root} holds "
            f"{model.metadata.model_version!r}; calibrate with --model {root}"
        )
    if (root / "manifest.sig").exists():
        raise ModelError(
            f"{root} is signed (manifest.sig); adding calibration.json would break the signature, "
            f"re-bundle the model with its calibration using laps-export"
        )
    target = write_calibration(root / FILE_NAME, record)
    manifest = dict(model.manifest)
    files = dict(manifest.get("files", {}))
    files[FILE_NAME] = {"sha256": sha256_file(target), "size": target.stat().st_size}
    manifest["files"] = files
    tmp = root / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, root / MANIFEST_NAME)
    return target


def tool_version() -> str:
    """The installed laps-edge package version ("unknown" when not installed)."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("laps-edge")
    except (ImportError, PackageNotFoundError):
        return "unknown"
