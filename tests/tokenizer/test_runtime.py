"""The per-frame runtime: ring of T-1 steps -> encoder -> newest token -> code -> z_q."""

import numpy as np
import pytest

from edge.errors import ConfigError, ModelError
from edge.tokenizer import TokenizerRuntime, window_mean_energy
from export.tokenizer.windows import normalise_velocity
from export.verify import ring_windows, torch_latents

from .conftest import bursty_tracks


@pytest.fixture
def clip(conventions):
    return bursty_tracks(40, conventions.n_points, seed=11)


def test_each_frame_gives_the_newest_token_of_the_zero_padded_window(model, model_dir, conventions, clip):
    vel, vis = clip
    rt = TokenizerRuntime(model_dir, providers="cpu")
    codes = np.array([rt.step(v, m).code for v, m in zip(vel, vis)])
    ref = torch_latents(model, ring_windows(normalise_velocity(vel, vis, conventions.velocity_scale_px),
                                            conventions.steps))[:, -1]
    assert np.mean(codes == rt.fsq.codes(ref)) >= 0.999
    assert np.unique(codes).size > 2


def test_newest_mode_feeds_z_q_of_the_code(model_dir, clip):
    rt = TokenizerRuntime(model_dir, providers="cpu", energy_mode="newest")
    out = rt.step(clip[0][0], clip[1][0])
    assert out.z_q.shape == (rt.latent_dim,) and out.z_q.dtype == np.float32
    assert np.array_equal(out.energy_input, out.z_q)
    assert np.array_equal(out.z_q, rt.fsq.z_q_from_codes(out.code))
    assert out.energy is None


def test_window_mean_mode_gives_an_energy_every_stride_frames(model_dir, clip):
    rt = TokenizerRuntime(model_dir, providers="cpu", energy_mode="window_mean", stride=4)
    updates = []
    for i, (v, m) in enumerate(zip(*clip)):
        out = rt.step(v, m)
        if out.energy is not None:
            updates.append(i)
            assert out.energy == pytest.approx(window_mean_energy(rt.fsq.z_q(rt.last_latents)))
            assert rt.held_energy == out.energy
    assert updates == list(range(0, len(clip[0]), 4))


def test_window_mean_energy_is_the_mean_adjacent_distance():
    z = np.array([[0, 0], [3, 4], [3, 4], [0, 0]], np.float32)
    assert window_mean_energy(z) == pytest.approx((5 + 0 + 5) / 3)


def test_reset_restarts_the_stream(model_dir, clip):
    rt = TokenizerRuntime(model_dir, providers="cpu")
    first = [rt.step(v, m).code for v, m in zip(*clip)]
    rt.reset()
    again = [rt.step(v, m).code for v, m in zip(*clip)]
    assert first == again


def test_invisible_points_count_as_no_motion(model_dir, clip):
    vel, vis = clip
    a, b = TokenizerRuntime(model_dir, providers="cpu"), TokenizerRuntime(model_dir, providers="cpu")
    garbage = vel + np.where(vis[..., None], 0.0, 50.0).astype(np.float32)
    assert [a.step(v, m).code for v, m in zip(vel, vis)] == [b.step(v, m).code for v, m in zip(garbage, vis)]


def test_wrong_point_count_names_both_shapes(model_dir):
    rt = TokenizerRuntime(model_dir, providers="cpu")
    with pytest.raises(ModelError, match=r"got velocity \(400, 2\).*expects \(16, 2\)"):
        rt.step(np.zeros((400, 2), np.float32), np.ones(400, bool))


def test_unknown_energy_mode_is_refused(model_dir):
    with pytest.raises(ConfigError, match="energy_mode 'mean'"):
        TokenizerRuntime(model_dir, providers="cpu", energy_mode="mean")
