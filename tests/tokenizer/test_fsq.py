"""FSQ: codes <-> z_q round trip, and the NumPy device path agrees with the torch training path."""

import numpy as np
import torch

from edge.tokenizer import FSQ, fsq_constants
from export.tokenizer.fsq import FSQ as TorchFSQ

LEVELS = [8, 8, 6, 5]


def _numpy_fsq(torch_fsq: TorchFSQ) -> FSQ:
    return FSQ(LEVELS, torch_fsq.project_out.weight.detach().numpy(), torch_fsq.project_out.bias.detach().numpy())


def test_default_levels_give_1920_codes():
    fsq = FSQ(LEVELS, np.zeros((4, 4), np.float32), np.zeros(4, np.float32))
    assert fsq.codebook_size == 8 * 8 * 6 * 5 == 1920


def test_every_code_round_trips_through_its_normalised_value():
    torch.manual_seed(0)
    fsq = _numpy_fsq(TorchFSQ(16, LEVELS))
    codes = np.arange(fsq.codebook_size)
    q = fsq.normalized_from_codes(codes)
    half = fsq_constants(LEVELS)["half_width"]
    # the integer values re-enter the latent path: atanh of the bounded value gives back the code
    q_int = q * half
    latent = np.arctanh((q_int + fsq._offset) / fsq._half_l) - fsq._shift
    assert np.array_equal(fsq.codes(latent), codes)


def test_z_q_from_codes_equals_z_q_from_latent():
    torch.manual_seed(1)
    fsq = _numpy_fsq(TorchFSQ(16, LEVELS))
    latent = np.random.default_rng(0).normal(0, 2, size=(500, 4)).astype(np.float32)
    assert np.allclose(fsq.z_q_from_codes(fsq.codes(latent)), fsq.z_q(latent), atol=1e-6)


def test_numpy_codes_and_z_q_match_torch():
    torch.manual_seed(2)
    tfsq = TorchFSQ(16, LEVELS).eval()
    fsq = _numpy_fsq(tfsq)
    latent = np.random.default_rng(1).normal(0, 3, size=(2000, 4)).astype(np.float32)
    z_q_t, codes_t = tfsq.quantize(torch.from_numpy(latent))
    assert np.array_equal(fsq.codes(latent), codes_t.numpy())
    assert np.allclose(fsq.z_q_from_codes(codes_t.numpy()), z_q_t.detach().numpy(), atol=1e-6)


def test_codes_stay_inside_the_codebook_for_extreme_latents():
    fsq = FSQ(LEVELS, np.zeros((2, 4), np.float32), np.zeros(2, np.float32))
    latent = np.array([[-1e6] * 4, [1e6] * 4, [0.0] * 4], np.float32)
    codes = fsq.codes(latent)
    assert codes.min() >= 0 and codes.max() < 1920
    assert codes[0] == 0 and codes[1] == 1919


def test_straight_through_gradient_reaches_the_latent():
    fsq = TorchFSQ(8, LEVELS)
    z = torch.randn(3, 4, requires_grad=True)
    z_q, _ = fsq.quantize(z)
    z_q.sum().backward()
    assert z.grad is not None and torch.count_nonzero(z.grad) > 0
