"""A whole fleet on one machine, in one command (`laps-central demo`).

What an operator would do by hand, done in order (the README's "A fleet on one machine" walks
through the same steps with the same configuration files):

1. start a Mosquitto broker on a free loopback port (its own config, no persistence);
2. start `laps-central ingest` (MQTT subscriber and batch endpoint) as a subprocess;
3. start N devices (`laps-edge run --config`), each on a short synthetic workstation recording
   replayed faster than real time, publishing segments and uploading keyframes and clips;
4. wait until every device has finished and central has acknowledged all it sent (the devices'
   outboxes are empty), then stop the ingest;
5. cluster the stored segments, write the report, export the dataset, and print where they are.

Every process it starts is ended by its own pid (SIGTERM, then SIGKILL), also when a step
fails or the user presses Ctrl-C. The files stay in the work folder: the configs, the logs of
every process, the store, the report and the dataset.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import ConfigError, LapsError

log = logging.getLogger(__name__)

#: the ports and device count of the configuration files in examples/fleet/ (the README's walkthrough)
EXAMPLE_MQTT_PORT, EXAMPLE_HTTP_PORT = 18830, 18470
SITE = "demo"
#: synthetic seeds of the demo's devices (one per device; outside training 100-199 and validation 500-599)
FIRST_SEED = 960
#: marks a work folder as the demo's own, so a second run may clear it
MARKER = ".laps-demo"


class DemoError(LapsError):
    """The demo cannot start or one of its processes failed (one line, with the log to read)."""


@dataclass
class DemoResult:
    """What the demo leaves behind: paths, and segments and batches per device."""

    workdir: Path
    report: Path
    dataset: Path
    segments: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)
    k: int = 0
    run_id: str = ""


def device_names(n: int) -> list[str]:
    return [f"ws-{i + 1:02d}" for i in range(n)]


def fleet_configs(*, mqtt_port: int, http_port: int, devices: int, minutes: float, model: str = "default") -> dict[str, str]:
    """The configuration files of a fleet on one machine: {file name: text}. Paths are relative
    (each config's own folder), so the files work wherever they are copied together."""
    files = {
        "mosquitto.conf": (
            "# Broker of the one-machine fleet: `mosquitto -c mosquitto.conf` (laps-central demo writes the same)\n"
            f"listener {mqtt_port} 127.0.0.1\n"
            "allow_anonymous true              # loopback only; a real fleet uses laps-central devices add\n"
            "persistence false\n"
        ),
        "central.toml": (
            "# Central of the one-machine fleet. Relative paths are relative to this file's folder.\n"
            "[paths]\n"
            'data_dir = "central"                  # the store, keyframes and clips (central/media)\n'
            'models_dir = "central/models"         # model registry: the shipped model registers itself\n\n'
            "[store]\n"
            'path = "central/central.sqlite"\n\n'
            "[mqtt]\n"
            'host = "127.0.0.1"\n'
            f"port = {mqtt_port}                          # mosquitto.conf: listener {mqtt_port}\n\n"
            "[http]\n"
            'host = "127.0.0.1"                    # the batch endpoint the devices upload to ...\n'
            f"port = {http_port}                          # ... their [upload] endpoint is http://127.0.0.1:{http_port}\n"
        ),
    }
    for i, name in enumerate(device_names(devices)):
        files[f"{name}.toml"] = (
            f"# Device {name} of the one-machine fleet. Relative paths are relative to this file's folder.\n"
            "[device]\n"
            f'site = "{SITE}"\n'
            f'id = "{name}"\n\n'
            "[source]\n"
            f'spec = "synthetic://assembly?seed={FIRST_SEED + i}&minutes={minutes:g}&size=320x240"\n'
            "pace = false      # as fast as the CPU allows (a file replay); segment times stay true (README)\n\n"
            "[model]\n"
            f'dir = "{model}"\n\n'
            "[mqtt]\n"
            'host = "127.0.0.1"\n'
            f"port = {mqtt_port}        # the broker (mosquitto.conf listener)\n"
            "ack_timeout_s = 5.0  # re-send what central has not acknowledged after 5 s\n"
            "drain_timeout_s = 20.0  # at the end of the recording, wait this long for central's acks\n\n"
            "[upload]\n"
            f'endpoint = "http://127.0.0.1:{http_port}"  # central.toml [http] host and port\n'
            "interval_s = 2.0\n"
            "clips = true      # a short clip per segment: the cluster report animates them\n\n"
            "[paths]\n"
            f'state_dir = "state/{name}"  # outbox and upload spool\n'
            'cache_dir = "cache"\n'
        )
    return files


def run_demo(workdir: str | os.PathLike, *, devices: int = 3, minutes: float = 0.3, model: str = "default",
             timeout_s: float = 600.0, k_range: tuple[int, int] = (2, 8), progress=print) -> DemoResult:
    """Run the whole fleet in `workdir` and return where its report and dataset are.

    devices: 1-8 simulated workstations. minutes: length of each one's synthetic recording.
    model: the devices' model ("default" = the shipped one, or a model directory). timeout_s:
    give up (one-line `DemoError`) when the devices have not finished by then. progress: where
    the step-by-step lines go."""
    if not 1 <= devices <= 8:
        raise ConfigError(f"--devices {devices} is not allowed; use 1 to 8")
    if not 0.05 <= minutes <= 10:
        raise ConfigError(f"--minutes {minutes:g} is not allowed; use 0.05 to 10")
    mosquitto = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else "")
    if not mosquitto:
        raise ConfigError("mosquitto is not installed; install it (apt-get install mosquitto): the demo starts its "
                          "own broker on a free loopback port and stops it again")
    if model not in ("default", "none"):
        model = str(Path(model).resolve())
    root = _prepare(Path(workdir))
    mqtt_port, http_port = _free_port(), _free_port()
    for name, text in fleet_configs(mqtt_port=mqtt_port, http_port=http_port, devices=devices, minutes=minutes,
                                    model=model).items():
        (root / name).write_text(text)
    logs = root / "logs"
    logs.mkdir()
    with (root / "mosquitto.conf").open("a") as fh:  # the demo reads the broker's log to see the ingest subscribe
        fh.write(f"log_dest file {logs / 'broker.log'}\nlog_type all\n")
        if os.geteuid() == 0:  # as root Mosquitto would switch to its own user, who cannot write here
            import getpass

            fh.write(f"user {getpass.getuser()}\n")
    with _Processes() as procs:
        procs.start("mosquitto", [mosquitto, "-c", str(root / "mosquitto.conf")], logs, root)
        _wait(lambda: _listening(mqtt_port), 10, "mosquitto did not listen", logs / "mosquitto.log")
        progress(f"broker: mosquitto on 127.0.0.1:{mqtt_port} (pid {procs.pid('mosquitto')})")
        from central.config import load_central_config

        config = load_central_config(root / "central.toml")
        if model not in ("default", "none"):
            from central.registry import register_model

            register_model(config.paths.models_dir, model)
        procs.start("ingest", [sys.executable, "-m", "central.cli", "ingest", "--config", str(root / "central.toml"),
                               "--stats-interval", "5"], logs, root)
        _wait(lambda: "$share/" in _read(logs / "broker.log") and _listening(http_port), 60,
              "the ingest did not subscribe", logs / "ingest.log", procs)
        progress(f"central: laps-central ingest (pid {procs.pid('ingest')}), batch endpoint on 127.0.0.1:{http_port}")
        names = device_names(devices)
        for name in names:
            procs.start(name, [sys.executable, "-m", "edge.cli", "run", "--config", str(root / f"{name}.toml")],
                        logs, root)
        progress(f"devices: {', '.join(f'{n} (pid {procs.pid(n)})' for n in names)} on {minutes:g}-minute "
                 "synthetic recordings; waiting for them to finish")
        deadline = time.monotonic() + timeout_s
        for name in names:
            rc = procs.wait(name, max(1.0, deadline - time.monotonic()))
            if rc is None:
                raise DemoError(f"device {name} has not finished after {timeout_s:g} s; read {logs / (name + '.log')} "
                                "or raise --timeout")
            if rc != 0:
                raise DemoError(f"device {name} exited with status {rc}; read {logs / (name + '.log')}")
        _wait(lambda: all(_outbox_empty(root / "state" / n / "outbox.sqlite") for n in names), 30,
              "central did not acknowledge every segment", logs / "ingest.log", procs)
        procs.stop("ingest")
        progress("devices finished; central acknowledged every segment; ingest stopped")
        result = _cluster_report_export(root, config, names, k_range, progress)
        procs.stop("mosquitto")
    return result


def _cluster_report_export(root: Path, config, names: list[str], k_range: tuple[int, int], progress) -> DemoResult:
    from central.cluster_run import run_clustering
    from central.clustering import ClusterOptions
    from central.dataset_export import export_dataset
    from central.embedding import EmbeddingConfig
    from central.registry import ModelRegistry
    from central.report import write_report
    from central.store_protocol import open_store

    with open_store(config.store) as store:
        summary = {d.device_id: d for d in store.device_summary()}
        missing = [n for n in names if not summary.get(n) or not summary[n].segments]
        if missing:
            raise DemoError(f"no segments arrived from {', '.join(missing)}; read {root / 'logs'}")
        run = run_clustering(store, ModelRegistry(config.paths.models_dir),
                             options=ClusterOptions(k_min=k_range[0], k_max=k_range[1], n_init=4),
                             embedding=EmbeddingConfig(seed=0))
        report = write_report(run, root / "report", store=store, media_dir=config.media_dir)
        info = export_dataset(store, config.media_dir, root / "dataset")
    result = DemoResult(root, report, root / "dataset", {n: summary[n].segments for n in names},
                        {n: summary[n].batches for n in names}, run.primary.clustering.k, run.run_id)
    progress(f"clustered {info['rows']} segments into k = {result.k} primitives (run {run.run_id})")
    return result


# -- processes -------------------------------------------------------------------------------------------
class _Processes:
    """The demo's child processes by name; each is ended by its own pid, never by name."""

    def __init__(self) -> None:
        self._procs: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, object] = {}

    def __enter__(self) -> "_Processes":
        self._previous = signal.getsignal(signal.SIGTERM)
        if threading_main():
            signal.signal(signal.SIGTERM, _raise_interrupt)  # a SIGTERMed demo still cleans up
        return self

    def __exit__(self, *exc: object) -> None:
        for name in reversed(list(self._procs)):
            self.stop(name)
        for fh in self._logs.values():
            fh.close()  # type: ignore[attr-defined]
        if threading_main():
            signal.signal(signal.SIGTERM, self._previous)

    def start(self, name: str, cmd: list[str], logs: Path, cwd: Path) -> None:
        fh = open(logs / f"{name}.log", "ab")
        self._logs[name] = fh
        self._procs[name] = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             cwd=cwd)

    def pid(self, name: str) -> int:
        return self._procs[name].pid

    def alive(self, name: str) -> bool:
        return name in self._procs and self._procs[name].poll() is None

    def wait(self, name: str, timeout: float) -> int | None:
        try:
            return self._procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM the process by its pid (the ingest commits and the devices drain), SIGKILL
        if it has not exited within `timeout` seconds."""
        proc = self._procs.get(name)
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


# -- helpers ---------------------------------------------------------------------------------------------
def _prepare(root: Path) -> Path:
    """An empty work folder: a new one, an empty one, or one an earlier demo made (cleared)."""
    if root.exists():
        if not root.is_dir():
            raise ConfigError(f"--workdir {root} is a file; choose a folder")
        if any(root.iterdir()):
            if not (root / MARKER).is_file():
                raise ConfigError(f"--workdir {root} holds files the demo did not make; choose an empty or new folder")
            shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by laps-central demo; a new demo run clears this folder\n")
    return root.resolve()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _outbox_empty(path: Path) -> bool:
    from edge.outbox import read_stats

    stats = read_stats(path)
    return stats is not None and stats.depth == 0


def _wait(predicate, timeout: float, what: str, log_path: Path, procs: _Processes | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if procs is not None and not procs.alive("ingest"):
            raise DemoError(f"the ingest exited; read {log_path}")
        time.sleep(0.1)
    raise DemoError(f"{what} within {timeout:g} s; read {log_path}")
