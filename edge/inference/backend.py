"""One inference-backend interface over ONNX Runtime, with providers TensorRT -> CUDA -> CPU.

ONNX Runtime silently falls back to the CPU when a GPU provider fails to load (missing CUDA
libraries, a TensorRT version mismatch). That is the wrong default on a device that was sized
for a GPU, so `create_backend` compares the providers the session actually loaded with the ones
the configuration demands and raises `ProviderUnavailableError` (one line) when a demanded GPU
provider is absent. `providers_in_use` always reports what really runs.
"""

from __future__ import annotations

import abc
import logging
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from edge.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

#: Short names accepted in configuration -> ONNX Runtime provider names, in preference order.
PROVIDER_NAMES: dict[str, str] = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


class ProviderUnavailableError(ConfigError):
    """The configuration demands an execution provider that is not available or did not load."""


class InferenceBackend(abc.ABC):
    """Runs one fixed-shape ONNX model. Inputs and outputs are dicts of name -> float32 array."""

    #: ONNX Runtime provider names actually in use, in priority order.
    providers_in_use: list[str]
    #: input name -> shape (fixed ints; a symbolic dimension is reported as -1).
    input_shapes: dict[str, tuple[int, ...]]
    #: output names in graph order.
    output_names: list[str]
    #: the model's custom metadata_props (key -> string).
    custom_metadata: dict[str, str]

    @abc.abstractmethod
    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model once; returns every output by name."""

    @property
    def uses_gpu(self) -> bool:
        return any(p in GPU_PROVIDERS for p in self.providers_in_use)


def resolve_providers(providers: str | Sequence[str], available: Sequence[str]) -> tuple[list[str], list[str]]:
    """Turn a configuration value into (ORT provider list to request, GPU providers demanded).

    `providers`: "auto" (every available one of TensorRT, CUDA, CPU, in that order), a short
    name ("cpu", "cuda", "tensorrt"), a comma-separated list of them, or a sequence of them.
    An explicitly named GPU provider is *demanded*: its absence is an error, not a fallback.
    CPU is always appended last so operators a GPU provider cannot run still have a home.
    """
    if isinstance(providers, str):
        names = [p.strip().lower() for p in providers.split(",") if p.strip()]
    else:
        names = [str(p).strip().lower() for p in providers]
    if not names:
        raise ConfigError("providers is empty; use 'auto', 'cpu', 'cuda', 'tensorrt' or a comma-separated list")
    if names == ["auto"]:
        wanted = [PROVIDER_NAMES[k] for k in ("tensorrt", "cuda", "cpu") if PROVIDER_NAMES[k] in available]
        return wanted, []
    requested: list[str] = []
    for name in names:
        if name not in PROVIDER_NAMES:
            raise ConfigError(
                f"unknown inference provider {name!r}; use 'auto' or any of {', '.join(PROVIDER_NAMES)}"
            )
        if PROVIDER_NAMES[name] not in requested:
            requested.append(PROVIDER_NAMES[name])
    demanded = [p for p in requested if p in GPU_PROVIDERS]
    missing = [p for p in demanded if p not in available]
    if missing:
        raise ProviderUnavailableError(
            f"inference provider {missing[0]} was requested but this onnxruntime build offers only "
            f"{', '.join(available)}; install onnxruntime-gpu (pip install 'laps-edge[gpu]') or set providers to 'cpu'"
        )
    if PROVIDER_NAMES["cpu"] not in requested:
        requested.append(PROVIDER_NAMES["cpu"])
    return requested, demanded


#: ONNX Runtime's session config key for busy-waiting intra-op threads ("1" by default)
ALLOW_SPINNING_KEY = "session.intra_op.allow_spinning"


class OrtBackend(InferenceBackend):
    """ONNX Runtime session behind the `InferenceBackend` interface."""

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        providers: str | Sequence[str] = "auto",
        require_gpu: bool = False,
        *,
        intra_op_threads: int | None = None,
        allow_spinning: bool = False,
        trt_fp16: bool = False,
        trt_cache_dir: str | os.PathLike | None = None,
        device_id: int = 0,
    ) -> None:
        """trt_cache_dir: where TensorRT keeps its engines (None: `engine_cache_dir` of the
        model's folder). allow_spinning: let ORT's CPU worker threads busy-wait between runs
        (ORT's own default). Off here: on the device every session shares the cores with the
        video decoder, the other session and the outbox, and threads spinning after a run take
        their CPU. Measured on the 2-core CI machine, `laps-edge run` on a 1-minute synthetic
        recording (rendering competes for the cores): 94-96 frames/s not spinning vs 60-71
        spinning with LK, 42-44 vs 25-35 with the ONNX tracker; `benchmarks.pipeline` on a file:
        150 vs 149; a session timed alone is ~10 % faster spinning (tracker 15.9 vs 17.4 ms)."""
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise ModelError(f"ONNX model {path} does not exist; check the model directory")
        available = list(ort.get_available_providers())
        requested, demanded = resolve_providers(providers, available)
        if require_gpu and not any(p in GPU_PROVIDERS for p in requested):
            raise ProviderUnavailableError(
                f"a GPU provider is required but onnxruntime offers only {', '.join(available)}; "
                "install onnxruntime-gpu (pip install 'laps-edge[gpu]') or drop the GPU requirement"
            )
        if trt_cache_dir is None:
            # Engines live beside the model they were built from: staging a bundle builds them
            # once (edge.ota.agent.prepare_bundle) and every later session of that model loads them.
            trt_cache_dir = engine_cache_dir(path.parent)
        provider_args = [(name, self._options(name, trt_fp16, trt_cache_dir, device_id)) for name in requested]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads:
            opts.intra_op_num_threads = int(intra_op_threads)
        if not allow_spinning:
            opts.add_session_config_entry(ALLOW_SPINNING_KEY, "0")
        # Quiet ORT's own warnings about fallbacks: we check and report them ourselves.
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=provider_args)
        except Exception as err:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(f"ONNX Runtime cannot load {path}: {first}; re-export the model") from None
        self.providers_in_use = list(self._session.get_providers())
        self.requested_providers = requested
        not_loaded = [p for p in demanded if p not in self.providers_in_use]
        if not_loaded:
            raise ProviderUnavailableError(
                f"inference provider {not_loaded[0]} was requested but did not load (in use: "
                f"{', '.join(self.providers_in_use)}); check the CUDA/TensorRT libraries with `laps-edge doctor` "
                "or set providers to 'cpu'"
            )
        if require_gpu and not self.uses_gpu:
            raise ProviderUnavailableError(
                f"a GPU provider is required but only {', '.join(self.providers_in_use)} loaded; check the "
                "CUDA/TensorRT libraries with `laps-edge doctor` or drop the GPU requirement"
            )
        if self.requested_providers[0] != self.providers_in_use[0]:
            log.warning("inference runs on %s: %s did not load", self.providers_in_use[0], self.requested_providers[0])
        self.input_shapes = {
            i.name: tuple(d if isinstance(d, int) else -1 for d in i.shape) for i in self._session.get_inputs()
        }
        self.output_names = [o.name for o in self._session.get_outputs()]
        self.custom_metadata = dict(self._session.get_modelmeta().custom_metadata_map)
        self.path = path

    @staticmethod
    def _options(name: str, trt_fp16: bool, trt_cache_dir: str | os.PathLike | None, device_id: int) -> dict:
        if name == "TensorrtExecutionProvider":
            opts: dict = {"device_id": device_id, "trt_fp16_enable": bool(trt_fp16)}
            if trt_cache_dir is not None:
                Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
                # Building an engine takes minutes on a Jetson; cache it next to the model.
                opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(trt_cache_dir),
                            trt_timing_cache_enable=True, trt_timing_cache_path=str(trt_cache_dir))
            return opts
        if name == "CUDAExecutionProvider":
            return {"device_id": device_id}
        return {}

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self.output_names, dict(inputs))
        return dict(zip(self.output_names, outputs))


def create_backend(
    onnx_path: str | os.PathLike,
    providers: str | Sequence[str] = "auto",
    require_gpu: bool = False,
    **options: object,
) -> InferenceBackend:
    """Open `onnx_path` on the best available providers; see `resolve_providers` for the values.

    Keyword options go to `OrtBackend` (intra_op_threads, allow_spinning, trt_fp16, trt_cache_dir,
    device_id).
    Raises `ProviderUnavailableError` when a demanded GPU provider (or `require_gpu`) cannot be
    honoured, `ModelError` when the file cannot be loaded.
    """
    return OrtBackend(onnx_path, providers=providers, require_gpu=require_gpu, **options)  # type: ignore[arg-type]


#: Folder inside a model directory where TensorRT keeps the engines it built for this device.
ENGINE_CACHE_NAME = "trt-cache"


def engine_cache_dir(model_path: str | os.PathLike) -> Path | None:
    """Where TensorRT engines for the models of `model_path` are cached: `<model_path>/trt-cache`,
    the folder the OTA agent fills while staging a bundle (an engine build takes minutes on a
    Jetson, so the restarted pipeline must find it). None when the directory is not writable
    (the shipped default inside site-packages): the engine is then rebuilt per process."""
    path = Path(model_path)
    cache = path / ENGINE_CACHE_NAME
    if cache.is_dir() or os.access(path, os.W_OK):
        return cache
    return None


def available_providers() -> list[str]:
    """ONNX Runtime providers this build offers (not necessarily loadable)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())
