"""The inference backend: providers actually in use, and no silent fallback from a demanded GPU."""

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.inference import ProviderUnavailableError, available_providers, create_backend, resolve_providers

HAS_CUDA = "CUDAExecutionProvider" in available_providers()


def test_cpu_backend_reports_cpu_and_fixed_input_shape(model_dir):
    backend = create_backend(model_dir.tokenizer_path, providers="cpu")
    assert backend.providers_in_use == ["CPUExecutionProvider"]
    meta = model_dir.metadata
    assert backend.input_shapes == {"velocity": (1, meta.steps, meta.n_points, 2)}
    out = backend.run({"velocity": np.zeros((1, meta.steps, meta.n_points, 2), np.float32)})
    assert out["latent"].shape == (1, meta.steps, len(meta.fsq_levels))


def test_cpu_threads_do_not_spin_between_runs_unless_asked(model_dir):
    from edge.inference.backend import ALLOW_SPINNING_KEY

    quiet = create_backend(model_dir.tokenizer_path, providers="cpu")
    assert quiet._session.get_session_options().get_session_config_entry(ALLOW_SPINNING_KEY) == "0"
    busy = create_backend(model_dir.tokenizer_path, providers="cpu", allow_spinning=True)
    with pytest.raises(RuntimeError):  # not set at all: ORT's default, spinning
        busy._session.get_session_options().get_session_config_entry(ALLOW_SPINNING_KEY)


def test_auto_orders_tensorrt_cuda_cpu_among_available():
    requested, demanded = resolve_providers(
        "auto", ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    )
    assert requested == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert demanded == []


def test_named_gpu_provider_is_demanded_with_cpu_kept_for_fallback_ops():
    requested, demanded = resolve_providers("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert requested == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert demanded == ["CUDAExecutionProvider"]


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime build offers CUDA, so the demand can be met")
def test_demanding_cuda_without_it_is_a_one_line_error(model_dir):
    with pytest.raises(ProviderUnavailableError) as err:
        create_backend(model_dir.tokenizer_path, providers="cuda")
    assert "CUDAExecutionProvider was requested" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime build offers CUDA, so the requirement can be met")
def test_require_gpu_without_a_gpu_provider_is_an_error(model_dir):
    with pytest.raises(ProviderUnavailableError, match="GPU provider is required"):
        create_backend(model_dir.tokenizer_path, providers="auto", require_gpu=True)


def test_unknown_provider_name_is_a_config_error(model_dir):
    with pytest.raises(ConfigError, match="unknown inference provider 'npu'"):
        create_backend(model_dir.tokenizer_path, providers="npu")


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu with the CUDA provider")
def test_cuda_backend_runs_on_cuda_and_matches_cpu(model_dir):
    meta = model_dir.metadata
    x = np.random.default_rng(0).normal(0, 1, (1, meta.steps, meta.n_points, 2)).astype(np.float32)
    gpu = create_backend(model_dir.tokenizer_path, providers="cuda", require_gpu=True)
    cpu = create_backend(model_dir.tokenizer_path, providers="cpu")
    assert gpu.providers_in_use[0] == "CUDAExecutionProvider"
    assert np.abs(gpu.run({"velocity": x})["latent"] - cpu.run({"velocity": x})["latent"]).max() < 1e-3
