"""The long-running device service behind `laps-edge run --config FILE`: the wiring.

`run_service(config)` builds the pieces and runs the one frame loop until SIGTERM/SIGINT:

    source -> Pipeline.process -> FinishedSegment -> DevicePublisher (a sink)      edge.loop
      ServiceLoop: reconnect with back-off, resume a file, state reported          edge.service_loop
      DeviceRuntime: upload spool, outbox (fsync), MQTT link (QoS 1, acks),        edge.device_runtime
                     upload worker, systemd watchdog, metrics, signals
    every metrics.interval_s: `.../metrics`; on scrape with [metrics] prometheus_port set: the
    same figures for Prometheus (edge.prometheus)

Start-up order: models loaded and warmed (Numba compiled, one dummy inference) and the source
opened BEFORE READY=1. A source that cannot be opened is retried with back-off while the
device reports `source_lost` on `.../state`; after `source.ready_timeout_s` READY is sent anyway
so systemd keeps the process (alive and reporting) instead of restart-looping on an unplugged
camera.

Shutdown (SIGTERM/SIGINT): the pipeline closes its open segment, which is committed to the
outbox; the link drains for up to `mqtt.drain_timeout_s`, publishes the retained "stopped"
state and DISCONNECTs normally, so the broker does not fire the last will. Exit status 0.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from edge.config import EdgeConfig
from edge.device_runtime import DeviceRuntime
from edge.errors import ConfigError, LapsError
from edge.model import resolve_model_spec
from edge.service_loop import ServiceLoop

log = logging.getLogger(__name__)


def run_service(config: EdgeConfig) -> int:
    """Run the device service until SIGTERM/SIGINT (0) or the end of a finite source (0).

    Raises `LapsError` (one line) for a bad config, an unreadable model or a source that can
    never work (a missing video file); the CLI driver prints it and exits 2.
    """
    _prepare_numba_cache(config)
    runtime = DeviceRuntime(config)
    ota = None
    try:
        model_dir = resolve_model_spec(config.model.dir)
        if config.ota.enabled:
            from edge.ota.device import OtaRuntime

            # Recovers an interrupted update and seeds the store; the model is <ota.root>/current.
            ota = OtaRuntime(config, runtime)
            model_dir = str(ota.model_dir)
        runtime.notifier.status("loading models")
        pipe = make_pipeline(config, model_dir)
        runtime.start(model_version=pipe.model_version, providers=list(pipe.providers_in_use))
        runtime.notifier.status("warming up (models, Numba kernel)")
        t0 = time.monotonic()
        pipe.warm_up()
        log.info("pipeline warm in %.2f s: model %s, providers %s, %g fps, input %dx%d",
                 time.monotonic() - t0, pipe.model_version, ",".join(pipe.providers_in_use),
                 pipe.fps, *pipe.input_size)
        loop = ServiceLoop(config, pipe, runtime, switch=ota.switch if ota is not None else None)
        if ota is not None:
            def restart_on(bundle_dir) -> object:  # the agent's "restart the pipeline in-process"
                new = make_pipeline(config, str(bundle_dir))
                new.warm_up()
                return new

            ota.start(build_pipeline=restart_on, current_pipeline=lambda: loop.pipe)
        loop.run()
    except BaseException as err:
        if ota is not None:
            ota.stop()
        runtime.close(detail=f"stopped by error: {err}" if isinstance(err, LapsError) else "stopped by error")
        raise
    if ota is not None:
        ota.stop()
    runtime.close(detail="stopped")
    return 0


def make_pipeline(config: EdgeConfig, model_dir: str | None, keep_keyframes: bool | None = None):
    """The pipeline the config asks for, on `model_dir` (None: the velocity-energy proxy).
    keep_keyframes: default = whether uploads are on; clips are kept when uploads with
    `upload.clips` are on."""
    from edge.pipeline import build_pipeline

    pipe = build_pipeline(
        model_dir=model_dir,
        tracker=config.model.tracker,
        providers=config.model.providers,
        params=_threshold_params(config),
        calibration_path=config.model.calibration or None,
        keep_keyframes=config.upload.enabled if keep_keyframes is None else keep_keyframes,
        roi=config.roi.region,
    )
    if config.upload.enabled and config.upload.clips:
        from edge.recent_frames import ClipRecorder

        pipe.clips = ClipRecorder(config.source.fps or float(pipe.fps), max_s=config.upload.clip_max_s,
                                  scale=config.upload.clip_scale)
    return pipe


def configured_model_dir(config: EdgeConfig) -> str | None:
    """The model directory the service would start on, without changing anything: with OTA the
    store's `current` once it exists, else `model.dir` resolved ("default", "none", a path)."""
    if config.ota.enabled:
        current = Path(config.ota_root) / "current"
        if current.exists():
            return str(current)
    return resolve_model_spec(config.model.dir)


def _threshold_params(config: EdgeConfig):
    """HysteresisParams from [model.thresholds], or None (then calibration file or model's own)."""
    t = config.model.thresholds
    if not t:
        return None
    from edge.energy import HysteresisParams

    where = f"config {config.origin}: " if config.origin else "config: "
    if "theta_on" not in t:
        raise ConfigError(f"{where}[model.thresholds] needs theta_on (or remove the table to use "
                          "the calibration file)")
    try:
        return HysteresisParams.from_dict(t)
    except ConfigError as err:
        raise ConfigError(f"{where}[model.thresholds]: {err}") from None


def _prepare_numba_cache(config: EdgeConfig) -> None:
    """Point Numba's cache at <cache_dir>/numba unless NUMBA_CACHE_DIR is set (systemd sets it)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    path = config.numba_cache_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.warning("Numba cache %s cannot be created (%s); the kernel compiles on every start", path, err)
        return
    os.environ["NUMBA_CACHE_DIR"] = str(path)
    if "numba" in sys.modules:  # already imported: make it re-read the environment
        from numba.core import config as numba_config

        numba_config.reload_config()

