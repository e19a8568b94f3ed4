"""Inference backends: one interface over ONNX Runtime (TensorRT -> CUDA -> CPU).

    from edge.inference import InferenceBackend, create_backend
"""

from edge.inference.backend import (
    GPU_PROVIDERS,
    PROVIDER_NAMES,
    InferenceBackend,
    OrtBackend,
    ProviderUnavailableError,
    available_providers,
    create_backend,
    resolve_providers,
)

__all__ = [
    "GPU_PROVIDERS", "PROVIDER_NAMES", "InferenceBackend", "OrtBackend", "ProviderUnavailableError",
    "available_providers", "create_backend", "resolve_providers",
]
