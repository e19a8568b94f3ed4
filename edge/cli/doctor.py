"""`laps-edge doctor`: check that this machine can run the device service, and say how to fix it.

Checks, in order: Python; ONNX Runtime and its execution providers; TensorRT and CUDA; the
OpenCV build (GStreamer yes/no); the Numba cache directory; the configuration; the model;
the configured source (opened, one frame read); the broker (TCP reachability, then an MQTT
login with the configured TLS and credentials); free disk and write access in the state
directory; the outbox (unsent and evicted messages); the upload receiver.

Each line is `ok`, `warn` or `FAIL`; every FAIL and warn carries its fix. Exit status 1 if any
check FAILed (the service would not work), else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_CONFIG = "/etc/laps-edge/edge.toml"
MIN_FREE_BYTES = 100 * 1024 * 1024
WARN_FREE_BYTES = 1024 * 1024 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check this machine and the configuration; print each problem with its fix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default=None,
                   help=f"device TOML to check (default: {DEFAULT_CONFIG} if it exists; without one only "
                        "the machine is checked)")
    p.add_argument("--skip", action="append", default=[], choices=("model", "source", "broker", "upload"),
                   help="skip a check (repeatable), e.g. --skip source while the service holds the camera")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds for network checks (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=handle)


@dataclass
class Check:
    """One check's outcome. status: ok | warn | fail. fix: what to do (empty when ok)."""

    name: str
    status: str
    detail: str
    fix: str = ""


def handle(args: argparse.Namespace) -> int:
    # The checks start real components (model, source, an MQTT probe) that log as they would in
    # the service; here only doctor's own lines may reach the screen, all before the summary.
    capture = _LogCapture().start()
    try:
        checks = run_checks(args.config, skip=set(args.skip), timeout_s=args.timeout)
        problems = [r for r in capture.records if r.levelno >= 30]  # WARNING and above
        if problems:
            checks.append(Check("log", "warn", "; ".join(f"{r.name}: {r.getMessage()}" for r in problems[:3])[:500],
                                "a component logged this while it was checked; see the check above it concerns"))
        if args.json:
            print(json.dumps([asdict(c) for c in checks], indent=1))
        else:
            print(render(checks))
        sys.stdout.flush()
    finally:
        capture.stop()
    return 1 if any(c.status == "fail" for c in checks) else 0


class _LogCapture:
    """While active, every log record goes to `records` instead of the screen: the checks start
    real components (model, source, an MQTT probe) that log as they do in the service, and
    doctor's report must be the only thing printed, its summary last."""

    def __init__(self) -> None:
        import logging

        class _Collect(logging.Handler):
            def emit(inner, record: logging.LogRecord) -> None:  # noqa: N805 - the handler's own self
                self.records.append(record)

        self.records: list = []
        self._handler = _Collect()
        self._root = logging.getLogger()
        self._saved: tuple[list, int] | None = None

    def start(self) -> "_LogCapture":
        import logging

        self._saved = (list(self._root.handlers), self._root.level)
        self._root.handlers = [self._handler]
        self._root.setLevel(logging.INFO)
        return self

    def stop(self) -> None:
        if self._saved is not None:
            self._root.handlers, level = self._saved
            self._root.setLevel(level)
            self._saved = None


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        tag = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[c.status]
        lines.append(f"{tag}  {c.name.ljust(width)}  {c.detail}")
        if c.fix:
            lines.append(f"      {' ' * width}  fix: {c.fix}")
    fails = sum(c.status == "fail" for c in checks)
    warns = sum(c.status == "warn" for c in checks)
    lines.append(f"\n{fails} failed, {warns} warning(s), {len(checks) - fails - warns} ok")
    return "\n".join(lines)


def run_checks(config_path: str | None, skip: set[str] = frozenset(), timeout_s: float = 5.0) -> list[Check]:
    """Run every check; never raises for a problem it is checking for."""
    from edge.errors import LapsError

    checks = [_python(), ]
    cfg = None
    path = config_path or (DEFAULT_CONFIG if os.path.exists(DEFAULT_CONFIG) else None)
    if path is not None:
        from edge.config import load_config

        try:
            cfg = load_config(path)
            checks.append(Check("config", "ok", f"{path} is valid"))
        except LapsError as err:
            checks.append(Check("config", "fail", str(err), "correct the key named above; see examples/laps-edge.toml"))
    else:
        checks.append(Check("config", "warn", f"no config given and {DEFAULT_CONFIG} does not exist",
                            "pass --config FILE (start from examples/laps-edge.toml) to check source, broker and disk"))
    checks += _onnxruntime(cfg)
    checks.append(_gpu(cfg))
    checks.append(_opencv(cfg))
    checks.append(_numba_cache(cfg))
    if cfg is None:
        return checks
    if "model" not in skip:
        checks.append(_model(cfg))
    if "source" not in skip:
        checks.append(_source(cfg))
    if "broker" not in skip:
        checks += _broker(cfg, timeout_s)
    checks.append(_disk(cfg))
    checks.append(_outbox(cfg))
    if "upload" not in skip and cfg.upload.enabled:
        checks.append(_upload(cfg, timeout_s))
    return checks


# -- the checks ------------------------------------------------------------------------------------
def _python() -> Check:
    v = sys.version_info
    if v < (3, 10):
        return Check("python", "fail", f"{platform.python_version()} is too old",
                     "install Python 3.10 or newer (JetPack 6 ships 3.10)")
    return Check("python", "ok", f"{platform.python_version()} ({sys.executable})")


def _onnxruntime(cfg) -> list[Check]:
    try:
        import onnxruntime as ort
    except ImportError as err:
        return [Check("onnxruntime", "fail", f"not importable ({err})",
                      "pip install onnxruntime (CPU) or onnxruntime-gpu (Jetson/CUDA)")]
    available = list(ort.get_available_providers())
    out = [Check("onnxruntime", "ok", f"{ort.__version__}, providers: {', '.join(available)}")]
    wanted = cfg.model.providers if cfg is not None else "auto"
    needs = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}.get(wanted)
    if needs and needs not in available:
        out.append(Check("providers", "fail", f"model.providers = {wanted!r} but {needs} is not available",
                         "install onnxruntime-gpu built for this CUDA/JetPack (pip install 'laps-edge[gpu]'), "
                         "or set model.providers = \"auto\" or \"cpu\""))
    elif wanted == "auto":
        best = next((p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider")
                     if p in available and _provider_runs(ort, p)[0]), "CPUExecutionProvider")
        out.append(Check("providers", "ok", f"auto -> {best}"))
    return out


def _gpu(cfg) -> Check:
    """TensorRT and CUDA, reported only as far as they can actually run here: a CUDA runtime
    library that finds no device (a toolkit on a machine without a GPU) or a TensorRT package
    that cannot create a builder is not "ok"."""
    runs, cannot = [], []
    cuda_ok, cuda_text = _cuda_devices()
    (runs if cuda_ok else cannot).append(cuda_text)
    trt_ok, trt_text = _tensorrt_builder()
    if trt_text:
        (runs if trt_ok else cannot).append(trt_text)
    try:
        import onnxruntime as ort

        for ep in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
            if ep in ort.get_available_providers():
                ok, text = _provider_runs(ort, ep)
                (runs if ok else cannot).append(text)
    except ImportError:
        pass
    wanted = cfg.model.providers if cfg is not None else "auto"
    if runs:
        return Check("tensorrt/cuda", "ok", "; ".join(runs + cannot))
    detail = "; ".join(cannot) + ": inference runs on CPU"
    if wanted in ("cuda", "tensorrt"):
        return Check("tensorrt/cuda", "fail", detail, "install JetPack (CUDA + TensorRT) and onnxruntime-gpu on a machine "
                     "with an NVIDIA GPU, or set model.providers = \"cpu\"")
    return Check("tensorrt/cuda", "warn", detail,
                 "on a Jetson install JetPack 6 (CUDA, TensorRT) and onnxruntime-gpu; on a CPU box this is expected")


def _cuda_devices() -> tuple[bool, str]:
    """(True, what) when the CUDA runtime loads and counts at least one device."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("cudart")
    if not name:
        return False, "no CUDA runtime library"
    try:
        lib = ctypes.CDLL(name)
        count = ctypes.c_int(0)
        rc = lib.cudaGetDeviceCount(ctypes.byref(count))
    except (OSError, AttributeError) as err:
        return False, f"CUDA runtime {name} does not load ({err})"
    if rc != 0 or count.value < 1:
        try:
            lib.cudaGetErrorString.restype = ctypes.c_char_p
            why = lib.cudaGetErrorString(rc).decode(errors="replace") if rc else "no device"
        except (AttributeError, OSError):
            why = f"error {rc}"
        return False, f"CUDA runtime {name} finds no usable GPU ({why})"
    return True, f"CUDA runtime {name}, {count.value} GPU(s)"


def _tensorrt_builder() -> tuple[bool, str]:
    """(True, what) when TensorRT imports and creates a builder (which needs a working GPU);
    (False, "") when it is not installed."""
    try:
        import tensorrt as trt
    except ImportError:
        return False, ""
    version = getattr(trt, "__version__", "?")
    try:
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
    except Exception as err:  # noqa: BLE001 - without a GPU TensorRT raises whatever its binding raises
        return False, f"TensorRT {version} is installed but cannot create a builder ({type(err).__name__}: {err})"
    if builder is None:
        return False, f"TensorRT {version} is installed but cannot create a builder (no GPU)"
    return True, f"TensorRT {version}"


#: a one-node ONNX model (Identity, float[1]): enough to see whether an execution provider loads
_PROBE_ONNX = "CAc6OwoQCgF4EgF5IghJZGVudGl0eRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN"


def _provider_runs(ort, provider: str) -> tuple[bool, str]:
    """(True, what) when ONNX Runtime creates a session on `provider` (it lists providers it
    was built with, not those that can run here, and falls back to CPU silently)."""
    import base64

    opts = ort.SessionOptions()
    opts.log_severity_level = 4  # its fallback warning would print past doctor's report
    try:
        session = ort.InferenceSession(base64.b64decode(_PROBE_ONNX), sess_options=opts,
                                       providers=[provider, "CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001
        return False, f"ONNX Runtime {provider} fails ({type(err).__name__})"
    if session.get_providers()[0] != provider:
        return False, f"ONNX Runtime lists {provider} but cannot use it here"
    return True, f"ONNX Runtime {provider} runs"


def _opencv(cfg) -> Check:
    try:
        import cv2
    except ImportError as err:
        return Check("opencv", "fail", f"not importable ({err})", "pip install opencv-python-headless")
    gst = "unknown"
    for line in cv2.getBuildInformation().splitlines():
        if "GStreamer" in line and ":" in line:
            gst = "yes" if "YES" in line.split(":", 1)[1].upper() else "no"
            break
    detail = f"{cv2.__version__}, GStreamer: {gst}"
    spec = cfg.source.spec if cfg is not None else ""
    if gst != "yes" and (spec.startswith("gst:") or " ! " in spec):
        return Check("opencv", "fail", detail + f"; source.spec {spec[:40]!r} is a GStreamer pipeline",
                     "install an OpenCV built with GStreamer (JetPack's python3-opencv) or use a camera/file/rtsp source")
    return Check("opencv", "ok", detail)


def _numba_cache(cfg) -> Check:
    env = os.environ.get("NUMBA_CACHE_DIR", "")
    path = Path(env) if env else (cfg.numba_cache_dir if cfg is not None else None)
    if path is None:
        return Check("numba cache", "warn", "NUMBA_CACHE_DIR is not set and no config names a cache_dir",
                     "set paths.cache_dir in the config (the systemd unit sets NUMBA_CACHE_DIR); without a cache "
                     "the kernel compiles on every start")
    source = "NUMBA_CACHE_DIR" if env else "paths.cache_dir/numba"
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if os.access(probe, os.W_OK):
        files = len(list(path.glob("**/*.nbi"))) if path.exists() else 0
        return Check("numba cache", "ok", f"{path} ({source}) is writable; {files} cached function(s)")
    return Check("numba cache", "warn", f"{path} ({source}) is not writable: the kernel compiles on every start "
                 "(slower READY)", f"run under systemd (CacheDirectory=laps-edge) or make {path} writable")


def _model(cfg) -> Check:
    from edge.errors import LapsError

    try:
        from edge.service import configured_model_dir, make_pipeline

        t0 = time.perf_counter()
        pipe = make_pipeline(cfg, configured_model_dir(cfg), keep_keyframes=False)
    except LapsError as err:
        return Check("model", "fail", str(err), "fix model.dir / model.calibration, or re-stage the bundle")
    return Check("model", "ok", f"{pipe.model_version} at {pipe.fps:g} fps, input {pipe.input_size[0]}x"
                 f"{pipe.input_size[1]}, providers {','.join(pipe.providers_in_use)} "
                 f"(loaded in {time.perf_counter() - t0:.1f} s)")


def _source(cfg) -> Check:
    from edge.errors import LapsError

    try:
        from edge.sources.factory import open_source

        with open_source(cfg.source.spec) as src:
            frame = src.read()
            if frame is None:
                return Check("source", "fail", f"{cfg.source.spec} opened but gave no frame",
                             "check the camera/stream delivers video, or the file is not empty")
            h, w = frame.image.shape[:2]
            return Check("source", "ok", f"{src.name or cfg.source.spec}: {w}x{h} at {src.fps:g} fps")
    except LapsError as err:
        return Check("source", "fail", str(err),
                     "follow the message; if laps-edge.service is running it may hold the camera "
                     "(check with --skip source)")


def _broker(cfg, timeout_s: float) -> list[Check]:
    from edge.errors import LapsError
    from edge.mqtt_link import probe_broker

    if not cfg.mqtt.enabled:
        return [Check("broker", "warn", "mqtt.enabled = false: segments stay in the outbox",
                      "set mqtt.enabled = true and mqtt.host to deliver segments")]
    host, port = cfg.mqtt.host, cfg.mqtt.effective_port
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as err:
        return [Check("broker", "fail", f"cannot reach {host}:{port} ({err.strerror or err})",
                      "check mqtt.host/mqtt.port, the network and that the broker runs")]
    checks = [Check("broker", "ok", f"{host}:{port} reachable over TCP")]
    try:
        creds = cfg.mqtt.credentials(cfg.origin)
    except LapsError as err:
        return checks + [Check("broker auth", "fail", str(err), "fix mqtt.credentials_file")]
    ok, text = probe_broker(cfg.mqtt, cfg.client_id, creds, timeout_s=timeout_s)
    tls = "TLS, " if cfg.mqtt.tls.active else ""
    who = f"user {creds.username!r}" if creds.username else "anonymous"
    if ok:
        checks.append(Check("broker auth", "ok", f"MQTT v5 login accepted ({tls}{who})"))
    else:
        # The link's messages already end with the fix after ';'.
        detail, _, fix = text.partition("; ")
        checks.append(Check("broker auth", "fail", detail, fix or "check mqtt.* in the config"))
    return checks


def _disk(cfg) -> Check:
    state = Path(cfg.paths.state_dir)
    probe = state
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    text = f"{state}: {free / 2**30:.1f} GiB free"
    if not os.access(probe, os.W_OK):
        return Check("state dir", "fail", text + ", not writable by this user",
                     "run under systemd (StateDirectory=laps-edge) or set paths.state_dir to a writable folder")
    if free < cfg.paths.min_free_bytes:
        return Check("state dir", "fail", text + f", below paths.min_free_bytes ({cfg.paths.min_free_bytes} bytes)",
                     "free disk space: the service is evicting the oldest media and unsent segments")
    if free < MIN_FREE_BYTES:
        return Check("state dir", "fail", text, "free disk space: the outbox and upload spool need room")
    if free < WARN_FREE_BYTES:
        return Check("state dir", "warn", text, "less than 1 GiB free; lower upload.max_disk_bytes or free space")
    return Check("state dir", "ok", text)


def _outbox(cfg) -> Check:
    from edge.outbox import read_stats

    try:
        stats = read_stats(cfg.outbox_path)
    except Exception as err:  # noqa: BLE001 - a corrupt file is exactly what doctor reports
        return Check("outbox", "fail", f"{cfg.outbox_path} unreadable ({err})",
                     "move the file aside; the service creates a new one (its unsent messages are lost)")
    if stats is None:
        return Check("outbox", "ok", f"{cfg.outbox_path} not created yet")
    text = (f"{stats.depth} unsent ({stats.bytes} bytes, oldest {stats.oldest_age_s:.0f} s), "
            f"{stats.evicted_total} evicted in total")
    if stats.evicted_total:
        return Check("outbox", "warn", text, "messages were evicted while the broker was unreachable; raise "
                     "outbox.max_bytes/max_age_s or fix the connection")
    return Check("outbox", "ok", text)


def _upload(cfg, timeout_s: float) -> Check:
    import urllib.parse

    url = urllib.parse.urlsplit(cfg.upload.endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            pass
    except OSError as err:
        return Check("upload", "warn", f"receiver {cfg.upload.endpoint} unreachable ({err.strerror or err}); "
                     "batches wait on disk", "check upload.endpoint and the network")
    return Check("upload", "ok", f"receiver {cfg.upload.endpoint} reachable")
