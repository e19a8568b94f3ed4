"""The student's building blocks: bilinear sampling, the sub-pixel stage, the exported layout."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from export.tracker.model import (
    StudentConfig,
    StudentExport,
    StudentTracker,
    flatten_map,
    lattice_scores,
    sample_points,
    subpixel_refine,
)


def _smooth_image(h: int = 60, w: int = 80, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, 1, h + 8, w + 8, generator=g)
    img = F.avg_pool2d(img, 5, stride=1)  # smooth: LK needs gradients
    return img[:, :, :h, :w].contiguous()


def test_gathered_samples_equal_a_zero_padded_grid_sample():
    torch.manual_seed(0)
    feat = torch.randn(2, 5, 30, 40)
    xy = torch.rand(2, 7, 2) * torch.tensor([45.0, 35.0]) - 2.0  # some outside the map
    ours = sample_points(feat, xy * 4, 4)
    grid = (xy * torch.tensor([2 / 39, 2 / 29]) - 1)[:, :, None]
    ref = F.grid_sample(feat, grid, align_corners=True, padding_mode="zeros")[..., 0].permute(0, 2, 1)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_lattice_scores_equal_dot_products_of_grid_samples():
    torch.manual_seed(1)
    feat = torch.randn(1, 6, 20, 24)
    xy = torch.rand(1, 5, 2) * torch.tensor([60.0, 50.0]) + 10.0
    t = torch.randn(1, 5, 6)
    (ours,) = lattice_scores(feat, 2, xy, [t], radius=1)
    r = torch.arange(-1, 2.0)
    gy, gx = torch.meshgrid(r, r, indexing="ij")
    lattice = (xy[:, :, None] + 2 * torch.stack([gx.flatten(), gy.flatten()], 1)) / 2
    grid = lattice * torch.tensor([2 / 23, 2 / 19]) - 1
    sampled = F.grid_sample(feat, grid, align_corners=True)  # (1, C, N, K)
    ref = torch.einsum("bcnk,bnc->bnk", sampled, t)
    assert torch.allclose(ours, ref, atol=1e-4)


def test_subpixel_stage_recovers_a_subpixel_shift():
    img = _smooth_image()
    shift = torch.tensor([0.37, -0.21])
    # current frame = previous frame moved by `shift`: sample it at (x - shift)
    h, w = img.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([(xs - shift[0]) * 2 / (w - 1) - 1, (ys - shift[1]) * 2 / (h - 1) - 1], -1)[None]
    moved = F.grid_sample(img, grid, align_corners=True, padding_mode="border")
    p0 = torch.tensor([[[30.0, 25.0], [45.2, 31.7], [52.0, 40.0]]])
    start = p0 + torch.tensor([0.5, 0.4])  # a network estimate half a pixel off
    out = subpixel_refine(flatten_map(img), flatten_map(moved), (1, h, w), p0, start, radius=7, iterations=3)
    assert (out - (p0 + shift)).norm(dim=-1).max() < 0.05


def test_subpixel_stage_leaves_flat_patches_alone():
    img = torch.full((1, 1, 40, 50), 0.5)
    p0 = torch.tensor([[[25.0, 20.0]]])
    start = p0 + torch.tensor([0.3, -0.2])
    out = subpixel_refine(flatten_map(img), flatten_map(img), (1, 40, 50), p0, start, radius=5, iterations=2)
    assert torch.equal(out, start)


def test_export_wrapper_carries_the_image_map_as_state():
    cfg = StudentConfig.from_dict({**StudentConfig().to_dict(), "channels": [4, 8, 8, 8], "hidden": 8, "mlp": 16})
    model = StudentTracker(cfg).eval()
    assert model.n_maps == 5
    h, w, n = 48, 64, 6
    state = model.initial_state(1, n, h, w)
    outs = StudentExport(model)(torch.zeros(1, 1, h, w), *state["feats"], torch.full((n, 2), 20.0),
                                torch.zeros(n, 2), torch.zeros(n, 8), torch.zeros(n, cfg.anchor_dim),
                                torch.ones(n, 1))
    assert len(outs) == 5 + model.n_maps
    assert outs[-1].shape == (1, 1, h, w)
    assert np.isfinite(outs[0].detach().numpy()).all()
