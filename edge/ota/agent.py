"""The device's OTA agent: one thread that turns a `desired` message into a committed model.

The state machine (each arrow may fail; see "On failure" below):

    desired (retained MQTT message: version, url, manifest sha256)
      -> fetch manifest.json + manifest.sig; sha256 of the manifest bytes == desired's
      -> signatures: >= threshold distinct trusted Ed25519 keys           (edge.ota.manifest)
      -> version rule: newer than the committed version and not deny-listed; a downgrade only
         when the SIGNED manifest lists the committed version in `rollback_from`
      -> size limit and disk check -> download every file into staging/<v> (Range resume,
         streaming sha256 against the signed manifest)                    (edge.ota.download)
      -> hashes of the whole staging folder once more
      -> prepare (TensorRT engine cache on a GPU device; nothing on CPU)
      -> self-test on the bundle's golden vectors, exact                  (edge.ota.selftest)
      -> install + swap: state pending=v, `previous`, `current` (atomic)  (edge.ota.store)
      -> restart the pipeline in-process on the new model (the frame loop adopts it between
         two frames; the old pipeline is kept)
      -> health window: >= health_min_frames frames and >= health_window_s seconds, no
         exception, p95 per-frame latency <= latency_budget_ms
      -> commit (state committed=v) -> status "committed"; old bundles pruned

On failure: before the swap the version is deny-listed and reported "refused" (bad signature,
hash, version, self-test: nothing was changed); after the swap the frame loop gets the old
pipeline back, `current` is swapped back and the version deny-listed ("rolled_back"). A download
or disk problem is not the bundle's fault: it is reported "failed" and retried with back-off
(partial files resume). At start (`OtaStore.recover`) an uncommitted `current` is treated as
failed, as a boot counter would.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edge.errors import LapsError
from edge.ota.download import check_disk_space, download_file, fetch_bytes
from edge.ota.errors import BundleRejected, DownloadFailed, HealthCheckFailed, SelfTestFailed
from edge.ota.steps import reached
from edge.ota.manifest import (
    SIGNATURE_NAME,
    BundleManifest,
    TrustedKey,
    parse_manifest,
    verify_files,
    verify_signatures,
)
from edge.ota.messages import DesiredMessage
from edge.ota.selftest import SelfTestReport, run_self_test
from edge.ota.store import OtaStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSettings:
    """What the agent needs from the `[ota]` config section (see `edge.config.OtaConfig`)."""

    trusted_keys: tuple[TrustedKey, ...]
    threshold: int = 1
    health_window_s: float = 60.0
    health_min_frames: int = 100
    health_grace_s: float = 120.0
    latency_budget_ms: float = 200.0
    max_download_bytes: int = 2 * 1024**3
    disk_reserve_bytes: int = 64 * 1024**2
    download_timeout_s: float = 30.0
    retry_min_s: float = 1.0
    retry_max_s: float = 60.0
    keep_bundles: int = 3
    ca: str = ""
    providers: str = "auto"


# -- the hand-over point between the agent and the frame loop -----------------------------------------
class PipelineSwitch:
    """The frame loop asks it for the pipeline before each frame and reports each frame back;
    the agent uses it to hand in a new pipeline, watch the health window and hand the old one back.

    Thread-safe: `adopt`/`frame_done`/`frame_failed` run in the frame loop's thread, the rest in
    the agent's.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offer = None
        self._adopted = threading.Event()
        self._watching = False
        self._latencies: list[float] = []
        self._errors: list[str] = []
        self._error_evt = threading.Event()

    # frame loop side
    def adopt(self, current):
        """The pipeline to use for the next frame: a newly offered one, or None to keep `current`."""
        if self._offer is None:  # every frame: no lock while nothing is offered (an attribute read is atomic)
            return None
        with self._lock:
            offer, self._offer = self._offer, None
        if offer is None:
            return None
        self._adopted.set()
        return offer

    def frame_done(self, latency_ms: float) -> None:
        if self._watching:
            with self._lock:
                self._latencies.append(latency_ms)

    def frame_failed(self, err: BaseException) -> bool:
        """A frame raised. True: the agent is watching a new model and takes the blame (the
        loop goes on and the agent swaps back); False: not under watch, the loop re-raises."""
        if not self._watching:
            return False
        with self._lock:
            self._errors.append(f"{type(err).__name__}: {err}")
        self._error_evt.set()
        return True

    # agent side
    def offer(self, pipe, watch: bool = True) -> None:
        """Hand `pipe` to the frame loop (adopted at the next frame); `watch`: collect its
        per-frame latencies and exceptions for a health window."""
        with self._lock:
            self._latencies, self._errors = [], []
            self._error_evt.clear()
            self._adopted.clear()
            self._offer = pipe
            self._watching = watch

    def withdraw(self) -> bool:
        """Take back an offer the frame loop has not adopted yet. True if it was withdrawn."""
        with self._lock:
            pending, self._offer = self._offer is not None, None
            self._watching = False
        return pending

    def wait_adopted(self, timeout: float) -> bool:
        return self._adopted.wait(timeout)

    def stop_watching(self) -> None:
        self._watching = False

    def health(self) -> tuple[list[float], list[str]]:
        with self._lock:
            return list(self._latencies), list(self._errors)


# -- the agent --------------------------------------------------------------------------------------
class OtaAgent:
    """Runs updates in a background thread.

    store: the on-disk store (already `recover`ed and seeded). settings: see `AgentSettings`.
    report(state, version, detail, **extra): publishes a `laps.ota-status/1` (the service puts
    it into the outbox). build_pipeline(model_dir) -> a warmed-up pipeline for a bundle folder.
    switch: the frame loop's `PipelineSwitch`. current_pipeline: () -> the running pipeline.
    """

    def __init__(self, store: OtaStore, settings: AgentSettings, *, report: Callable[..., None],
                 build_pipeline: Callable[[Path], object], switch: PipelineSwitch,
                 current_pipeline: Callable[[], object]) -> None:
        self.store = store
        self.settings = settings
        self.report = report
        self.build_pipeline = build_pipeline
        self.switch = switch
        self.current_pipeline = current_pipeline
        self._queue: queue.Queue[dict] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._answered: set[tuple[int, str]] = set()  # (version, state) already reported this boot
        self.busy = threading.Event()

    # -- life cycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ota-agent", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def on_desired(self, topic: str, payload: bytes, retained: bool) -> None:
        """MQTT callback (link thread): validate and queue; the newest desired wins."""
        try:
            desired = DesiredMessage.from_json_or_none(payload)
        except LapsError as err:
            log.error("ignoring a malformed OTA desired message on %s: %s", topic, err)
            return
        if desired is None:
            log.info("OTA desired cleared on %s; nothing to do", topic)
            return
        self._queue.put(desired)

    def submit(self, desired: DesiredMessage) -> None:
        """Queue a desired message directly (tests, and anything that is not MQTT)."""
        self._queue.put(desired)

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            desired = self._queue.get()
            while not self._queue.empty():  # only the newest desired matters
                desired = self._queue.get_nowait()
            if self._stop.is_set() or not desired:
                return
            self.busy.set()
            try:
                self._handle(desired)
            except Exception:  # a bug must not kill the agent thread silently; the device runs on
                log.exception("OTA agent: unexpected error while handling version %s", desired.version)
            finally:
                self.busy.clear()

    def _handle(self, desired: DesiredMessage) -> None:
        version, rollout = desired.version, desired.rollout_id
        state = self.store.load()
        if version == state.committed:
            self._answer_once(version, "committed", rollout, "already installed and committed")
            return
        if version in state.deny:
            self._answer_once(version, "refused", rollout, f"deny-listed: {state.deny[version]}")
            return
        delay = self.settings.retry_min_s
        while not self._stop.is_set():
            try:
                self._update(desired)
                return
            except DownloadFailed as err:
                log.warning("OTA %s: %s", version, err)
                self.report("failed", version, str(err), rollout_id=rollout)
            if not self._queue.empty():
                return  # a newer desired supersedes this one
            self._stop.wait(delay)
            delay = min(delay * 2.0, self.settings.retry_max_s)

    def _answer_once(self, version: int, state: str, rollout: str, detail: str) -> None:
        if (version, state) in self._answered:
            return
        self._answered.add((version, state))
        self.report(state, version, detail, rollout_id=rollout)

    # -- one update ----------------------------------------------------------------------------------
    def _update(self, desired: DesiredMessage) -> None:
        """Turn one `desired` message into a committed model, stage by stage (the module doc's
        state machine): verify and stage the manifest, download and self-test, swap and watch the
        health window, commit. Each stage reports its state; a failure before the swap refuses
        the version, one after it rolls back."""
        version, url, rollout = desired.version, desired.url.rstrip("/"), desired.rollout_id
        clock = _StageClock()
        self.report("downloading", version, "fetching the signed manifest", rollout_id=rollout, progress=0.0)
        try:
            manifest, staging, expiry_note = self._verify_and_stage_manifest(desired, url, version, rollout)
            clock.lap("verify_manifest_s")
            reached("manifest_fetched")
            selftest = self._download_and_self_test(url, staging, manifest, version, rollout, clock)
        except (BundleRejected, SelfTestFailed) as err:
            self.store.deny(version, str(err))
            log.error("OTA %s refused: %s", version, err)
            self.report("refused", version, str(err), rollout_id=rollout)
            return
        if self._swap_and_watch(version, rollout, selftest, clock):
            self._commit(version, rollout, expiry_note, clock)

    def _verify_and_stage_manifest(self, desired: DesiredMessage, url: str, version: int, rollout: str
                                   ) -> tuple[BundleManifest, Path, str]:
        """Fetch the manifest and its signatures, check hash, signatures, version rule, size and
        disk space, and write both into the staging folder. Returns (manifest, staging folder,
        the advisory-expiry note for the status). Raises BundleRejected."""
        s = self.settings
        raw = fetch_bytes(f"{url}/manifest.json", timeout_s=s.download_timeout_s, ca_file=s.ca)
        sig = fetch_bytes(f"{url}/{SIGNATURE_NAME}", timeout_s=s.download_timeout_s, ca_file=s.ca, missing_ok=True)
        self.report("verifying", version, "checking signatures and the version rule", rollout_id=rollout)
        got = hashlib.sha256(raw).hexdigest()
        if got != desired.manifest_sha256:
            raise BundleRejected(
                f"manifest at {url} has sha256 {got[:12]}…, the desired message says "
                f"{desired.manifest_sha256[:12]}…; the manifest was changed after the rollout was published"
            )
        verify_signatures(raw, sig, list(s.trusted_keys), s.threshold)
        manifest = parse_manifest(raw, f"{url}/manifest.json")
        self._check_version(manifest, version)
        if manifest.total_bytes > s.max_download_bytes:
            raise BundleRejected(
                f"bundle {version} is {manifest.total_bytes} bytes, over ota.max_download_bytes = "
                f"{s.max_download_bytes}; raise the limit or ship a smaller bundle"
            )
        expiry_note = ""
        if manifest.expired():
            expiry_note = f" (advisory: the bundle expired {manifest.data.get('expires')})"
            log.warning("OTA bundle %s is past its advisory expiry %s; installing anyway",
                        version, manifest.data.get("expires"))
        staging = self.store.staging_dir(version)
        staging.mkdir(parents=True, exist_ok=True)
        present = sum(min((staging / rel).stat().st_size, size) for rel, (_, size) in manifest.files.items()
                      if (staging / rel).exists())
        present += sum((staging / (rel + ".part")).stat().st_size for rel in manifest.files
                       if (staging / (rel + ".part")).exists())
        check_disk_space(staging, max(manifest.total_bytes - present, 0), s.disk_reserve_bytes)
        _write_atomic(staging / "manifest.json", raw)
        if sig:
            _write_atomic(staging / SIGNATURE_NAME, sig)
        return manifest, staging, expiry_note

    def _download_and_self_test(self, url: str, staging: Path, manifest: BundleManifest, version: int, rollout: str,
                                clock: "_StageClock") -> SelfTestReport:
        """Download every file into staging, check all hashes once more, prepare the bundle and
        run its self-test on the golden vectors. Raises BundleRejected or SelfTestFailed."""
        self._download_all(url, staging, manifest, version, rollout)
        clock.lap("download_s")
        reached("downloaded")
        verify_files(staging, manifest)
        clock.lap("hashes_s")
        self.report("self_testing", version, "preparing and self-testing on the golden vectors", rollout_id=rollout)
        prepared = prepare_bundle(staging, self.settings.providers)
        log.info("OTA %s: %s", version, prepared)
        clock.lap("prepare_s")
        selftest = run_self_test(staging, providers=self.settings.providers)
        clock.lap("self_test_s")
        reached("self_tested")
        return selftest

    def _swap_and_watch(self, version: int, rollout: str, selftest: SelfTestReport, clock: "_StageClock") -> bool:
        """Install the bundle, swap the pipeline to it and run the health window. True when it
        passed; on any failure the old pipeline and `current` are swapped back (and the version
        deny-listed unless the agent was stopped), the outcome reported, and False returned."""
        s, store = self.settings, self.store
        self.report("swapping", version, f"self-test passed ({selftest.summary()}); swapping", rollout_id=rollout)
        old_pipe = self.current_pipeline()
        store.install(version)
        store.begin_swap(version)
        offered = False
        try:
            new_pipe = self.build_pipeline(store.bundle_dir(version))
            clock.lap("restart_s")
            self.switch.offer(new_pipe)
            offered = True
            self.report("health_check", version, "new model running; health window open", rollout_id=rollout)
            self._health_window(version)
            clock.lap("health_s")
        except (LapsError, Exception) as err:  # noqa: BLE001 - any failure of the new model rolls back
            reason = str(err) if isinstance(err, LapsError) else f"{type(err).__name__}: {err}"
            self.switch.stop_watching()
            if offered and not self.switch.withdraw():
                old_pipe.reset()  # a fresh stream state: the new model may have seen other frames
                self.switch.offer(old_pipe, watch=False)
                self.switch.wait_adopted(s.health_grace_s)  # report once the old model runs again
            # A clean stop is not the bundle's fault: swap back, but let the next start retry it.
            back = store.roll_back(version, reason, deny=not isinstance(err, _Interrupted))
            log.error("OTA %s rolled back to %s: %s", version, back, reason)
            self.report("rolled_back" if not isinstance(err, _Interrupted) else "failed", version, reason,
                        rollout_id=rollout)
            return False
        return True

    def _commit(self, version: int, rollout: str, expiry_note: str, clock: "_StageClock") -> None:
        """Commit the version that passed its health window, report it with the stage timings,
        and prune old bundles and the staging folder."""
        store = self.store
        self.switch.stop_watching()
        store.commit(version)
        clock.timings["total_s"] = clock.total()
        self._answered.add((version, "committed"))
        self.report("committed", version, f"committed{expiry_note}", rollout_id=rollout, timings_s=clock.timings)
        removed = store.prune(self.settings.keep_bundles)
        shutil.rmtree(store.staging_dir(version), ignore_errors=True)
        if removed:
            log.info("OTA: pruned old bundles %s", removed)

    def _check_version(self, manifest, version: int) -> None:
        state = self.store.load()
        if manifest.version != version:
            raise BundleRejected(f"the signed manifest is version {manifest.version} but version {version} was "
                                 "desired; the rollout points at the wrong bundle")
        if version in state.deny:
            raise BundleRejected(f"version {version} is deny-listed ({state.deny[version]})")
        committed = state.committed
        if committed is not None and version <= committed and committed not in manifest.rollback_from:
            raise BundleRejected(
                f"version {version} is not newer than the committed version {committed} and its signed manifest "
                f"does not allow a rollback from {committed} (rollback_from {list(manifest.rollback_from)}); "
                "build a rollback bundle with `laps-export bundle build --rollback-from`"
            )

    def _download_all(self, url: str, staging: Path, manifest, version: int, rollout: str) -> None:
        total = max(manifest.total_bytes, 1)
        done = 0
        last_report = [0.0]

        def progress(n: int) -> None:
            nonlocal done
            done += n
            now = time.monotonic()
            if now - last_report[0] >= 2.0:
                last_report[0] = now
                self.report("downloading", version, f"{done} of {total} bytes", rollout_id=rollout,
                            progress=min(done / total, 1.0))

        for rel, (digest, size) in sorted(manifest.files.items()):
            if self._stop.is_set():
                raise DownloadFailed("the device is stopping; the download resumes at the next start")
            download_file(f"{url}/{rel}", staging / rel, sha256=digest, size=size,
                          timeout_s=self.settings.download_timeout_s, ca_file=self.settings.ca, on_bytes=progress)

    def _health_window(self, version: int) -> None:
        s = self.settings
        if not self.switch.wait_adopted(s.health_window_s + s.health_grace_s):
            raise HealthCheckFailed(f"the frame loop did not pick up version {version} within "
                                    f"{s.health_window_s + s.health_grace_s:g} s (no frames?)")
        reached("pipeline_restarted")
        t0 = time.monotonic()
        deadline = t0 + s.health_window_s + s.health_grace_s
        while True:
            latencies, errors = self.switch.health()
            if errors:
                raise HealthCheckFailed(f"version {version} raised in the frame loop: {errors[0]}")
            elapsed = time.monotonic() - t0
            if elapsed >= s.health_window_s and len(latencies) >= s.health_min_frames:
                break
            if time.monotonic() > deadline:
                raise HealthCheckFailed(
                    f"version {version} processed {len(latencies)} frame(s) in {elapsed:.1f} s, "
                    f"{s.health_min_frames} needed in the health window"
                )
            if self._stop.wait(0.05):
                raise _Interrupted("the device stopped during the health window; retried at the next start")
        p95 = float(np.percentile(latencies, 95))
        if p95 > s.latency_budget_ms:
            raise HealthCheckFailed(
                f"version {version} p95 frame latency {p95:.1f} ms is over ota.latency_budget_ms = "
                f"{s.latency_budget_ms:g} over {len(latencies)} frames"
            )


class _StageClock:
    """Seconds spent in each stage of an update (`timings_s` of the "committed" status)."""

    def __init__(self) -> None:
        self.start = self._last = time.monotonic()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        """Record the time since the previous lap (or the start) as `name`."""
        now = time.monotonic()
        self.timings[name] = now - self._last
        self._last = now

    def total(self) -> float:
        return time.monotonic() - self.start


class _Interrupted(HealthCheckFailed):
    """The service is stopping (SIGTERM) during a health window."""


def prepare_bundle(path: Path, providers: str) -> str:
    """Device-specific preparation of a staged bundle, before its self-test.

    With TensorRT among the providers, build the engines of its models (the tokenizer, and the
    tracker when the bundle has one) into `<bundle>/trt-cache`, where every later session of
    these files finds them (`edge.inference.backend.engine_cache_dir`): one session and one
    inference each build them. On CPU there is nothing to prepare. Returns a one-line description.
    """
    from edge.inference import backend as inference
    from edge.model import load_model_directory
    from edge.tokenizer import TokenizerRuntime
    from edge.tracking.onnx_student import TRACKER_NAME, OnnxStudentTracker

    requested, _ = inference.resolve_providers(providers, inference.available_providers())
    if "TensorrtExecutionProvider" not in requested:
        return "nothing to prepare on " + ", ".join(requested)
    md = load_model_directory(path)
    meta = md.metadata
    TokenizerRuntime(md, providers=providers).step(np.zeros((meta.n_points, 2), np.float32),
                                                    np.ones(meta.n_points, bool))
    built = ["tokenizer"]
    if TRACKER_NAME in md.manifest.get("files", {}):
        tracker = OnnxStudentTracker(md, providers=providers)
        blank = np.zeros((meta.input_size[1], meta.input_size[0]), np.uint8)
        tracker.step(blank)
        tracker.step(blank)  # the seeding call and a tracking call run the same graph; both warm it
        built.append("tracker")
    return f"TensorRT engines ({', '.join(built)}) built in {inference.engine_cache_dir(path)}"


def _write_atomic(path: Path, data: bytes) -> None:
    import os

    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
