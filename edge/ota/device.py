"""The OTA agent inside `laps-edge run --config` (service mode), when `[ota] enabled = true`.

`OtaRuntime(config, runtime)` runs before the pipeline is built: it opens the store, treats an
uncommitted `current` as failed (swap back, deny-list), seeds the store from `model.dir` (or the
shipped default model) on the very first start, and tells the service which folder to load
(`model_dir`, the resolved `<ota.root>/current`). `start(...)` then subscribes to
`laps/v1/<site>/<device>/ota/desired` on the service's MQTT link and starts the agent thread;
every status goes through the outbox (durable, QoS 1) to `.../ota/status`.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Callable

from edge.errors import ConfigError
from edge.model import resolve_model_spec
from edge.ota.agent import AgentSettings, OtaAgent, PipelineSwitch
from edge.ota.manifest import load_trusted_keys
from edge.ota.messages import StatusMessage
from edge.ota.store import OtaStore

log = logging.getLogger(__name__)


class OtaRuntime:
    """OTA for one device service. `runtime` is the service's `DeviceRuntime` (outbox, link, ids)."""

    def __init__(self, config, runtime) -> None:
        self.cfg = config
        self.rt = runtime
        o = config.ota
        try:
            keys = load_trusted_keys(list(o.trusted_keys) + list(o.trusted_keys_inline))
        except Exception as err:  # BundleRejected names the key; here it is a configuration problem
            raise ConfigError(f"config {config.origin or ''}: ota.trusted_keys: {err}") from None
        if o.threshold > len(keys):
            raise ConfigError(f"config {config.origin or ''}: ota.threshold = {o.threshold} but only {len(keys)} "
                              "distinct trusted key(s) are configured; add keys or lower the threshold")
        self.settings = AgentSettings(
            trusted_keys=tuple(keys), threshold=o.threshold, health_window_s=o.health_window_s,
            health_min_frames=o.health_min_frames, health_grace_s=o.health_grace_s,
            latency_budget_ms=o.latency_budget_ms, max_download_bytes=o.max_download_bytes,
            disk_reserve_bytes=o.disk_reserve_bytes, download_timeout_s=o.download_timeout_s,
            retry_max_s=o.retry_max_s, keep_bundles=o.keep_bundles, ca=o.ca, providers=config.model.providers,
        )
        self.store = OtaStore(config.ota_root)
        self.startup_rollbacks = self.store.recover()
        for version, reason in self.startup_rollbacks:
            log.error("OTA: version %s was never committed; rolled back at start (%s)", version, reason)
        if self.store.load().committed is None:
            seed = resolve_model_spec(config.model.dir)
            if seed is None:
                raise ConfigError(f"config {config.origin or ''}: ota.enabled needs a first model, but model.dir is "
                                  f"{config.model.dir!r}; set it to a model directory or 'default' (it seeds the OTA store)")
            version = self.store.seed(seed)
            log.info("OTA: store %s seeded with %s as committed version %s", self.store.root, seed, version)
        self.model_dir = self.store.current_dir()
        runtime.ota_installed_version = self.store.load().committed
        self.switch = PipelineSwitch()
        self.agent: OtaAgent | None = None

    def start(self, build_pipeline: Callable[[Path], object], current_pipeline: Callable[[], object]) -> None:
        """Report start-up rollbacks, subscribe to `.../ota/desired`, start the agent thread."""
        self.agent = OtaAgent(self.store, self.settings, report=self.report, build_pipeline=build_pipeline,
                              switch=self.switch, current_pipeline=current_pipeline)
        for version, reason in self.startup_rollbacks:
            self.report("rolled_back", version, reason)
        self.agent.start()
        if self.rt.link is not None:
            self.rt.link.subscribe(self.rt.topics.ota_desired, self.agent.on_desired)
        else:
            log.warning("OTA enabled but mqtt.enabled = false: no desired version can arrive")

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()

    def report(self, state: str, version: int | None, detail: str = "", **extra) -> None:
        """Queue a `laps.ota-status/1` message in the outbox (survives restarts, QoS 1)."""
        msg = StatusMessage(state, device_id=self.cfg.device.id, site=self.cfg.device.site,
                            boot_id=self.rt.boot_id, version=version, installed=self.store.load().committed,
                            detail=detail, **extra)
        log.info("OTA status: %s %s %s", state, version, msg.detail)
        self.rt.ota_state, self.rt.ota_installed_version = state, msg.installed
        self.rt.outbox.put(f"ota:{uuid.uuid4()}", self.rt.topics.ota_status, msg.to_json())
        if self.rt.link is not None:
            self.rt.link.wake()
