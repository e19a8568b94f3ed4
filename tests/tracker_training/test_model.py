"""The student's building blocks: bilinear sampling, the sub-pixel stage, the exported layout."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from export.tracker.model import (
    PATCH_BLOCK,
    StudentConfig,
    StudentExport,
    StudentTracker,
    count_parameters,
    flatten_map,
    gather_patch,
    lattice_scores,
    sample_points,
    smooth_image,
    SubpixelParams,
    subpixel_refine,
    match_residual,
    subpixel_stage,
    trim_passes,
    widen,
)


def _smooth_image(h: int = 60, w: int = 80, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    img = torch.rand(1, 1, h + 8, w + 8, generator=g)
    img = F.avg_pool2d(img, 5, stride=1)  # smooth: LK needs gradients
    return img[:, :, :h, :w].contiguous()


def _table(img: torch.Tensor) -> torch.Tensor:
    return widen(flatten_map(img), PATCH_BLOCK)


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
    out, residual, _ = subpixel_refine(_table(img), _table(moved), (1, h, w), p0, start,
                                       SubpixelParams(radius=7, iterations=3))
    assert (out - (p0 + shift)).norm(dim=-1).max() < 0.05
    assert residual.shape == (1, 3)


def test_subpixel_stage_leaves_flat_patches_alone():
    img = torch.full((1, 1, 40, 50), 0.5)
    p0 = torch.tensor([[[25.0, 20.0]]])
    start = p0 + torch.tensor([0.3, -0.2])
    out, _, _ = subpixel_refine(_table(img), _table(img), (1, 40, 50), p0, start,
                                SubpixelParams(radius=5, iterations=2))
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
    assert len(outs) == 5 + model.n_maps + 1  # ... and the match residual last
    assert outs[-2].shape == (h * w, PATCH_BLOCK)  # the (smoothed, standardised) frame, widened
    assert outs[-1].shape == (n,)
    assert np.isfinite(outs[0].detach().numpy()).all()


def test_flat_state_maps_give_the_same_step_as_training_maps():
    # Training hands `track` (B, C, h, w) maps, the exported graph the flat tables of the previous
    # call: both must be one and the same step.
    torch.manual_seed(3)
    cfg = StudentConfig.from_dict({**StudentConfig().to_dict(), "channels": [4, 8, 8, 8], "hidden": 8, "mlp": 16})
    model = StudentTracker(cfg).eval()
    h, w, n = 48, 64, 6
    prev_img, cur_img = _smooth_image(h, w, 1) * 255, _smooth_image(h, w, 2) * 255
    prev = model.features(prev_img)
    points = torch.rand(1, n, 2) * torch.tensor([w - 20.0, h - 20.0]) + 10
    args = (points, torch.zeros(1, n, 2), torch.zeros(1, n, 8), torch.zeros(1, n, cfg.anchor_dim), torch.ones(1, n, 1))
    with torch.no_grad():
        a = model(cur_img, prev, *args)
        b = model(cur_img, model.state_maps(prev), *args)
    assert torch.equal(a["points"], b["points"]) and torch.equal(a["visibility_logit"], b["visibility_logit"])
    assert all(torch.equal(m, flatten_map(f)) for m, f in zip(a["maps"][:4], a["feats"][:4]))
    assert torch.equal(a["maps"][4], _table(a["feats"][4]))


def test_block_gathers_equal_pixel_gathers():
    torch.manual_seed(4)
    feat = torch.randn(2, 3, 30, 41)
    flat = flatten_map(feat)
    xy = torch.rand(2, 9, 2) * torch.tensor([50.0, 40.0]) - 5.0  # some near or past the border
    for size in (5, 8, 13):
        ref, ref_frac, ref_inside = gather_patch(flat, (2, 30, 41), xy, size)
        for block in (2, 4, 8):
            ours, frac, inside = gather_patch(widen(flat, block), (2, 30, 41), xy, size, block=block)
            assert torch.equal(ours, ref) and torch.equal(frac, ref_frac) and torch.equal(inside, ref_inside)


def test_image_smoothing_is_a_normalised_gaussian():
    img = _smooth_image(30, 40) * 100
    assert torch.equal(smooth_image(img, 0.0), img)
    flat = torch.full((1, 1, 12, 16), 7.0)
    assert torch.allclose(smooth_image(flat, 0.7), flat)  # weights sum to 1, edges replicated
    impulse = torch.zeros(1, 1, 11, 11)
    impulse[0, 0, 5, 5] = 1.0
    out = smooth_image(impulse, 1.0)[0, 0]
    taps = torch.exp(-0.5 * torch.arange(-2, 3.0) ** 2)
    taps = taps / taps.sum()
    assert torch.allclose(out[3:8, 3:8], taps[:, None] * taps[None, :], atol=1e-7)
    assert torch.allclose(out.sum(), torch.tensor(1.0))



def test_points_that_move_get_the_smaller_window():
    # The right part of the frame moves by (3, 1) px, the left stays: the second point's large
    # window takes in static background, its small one does not.
    img = _smooth_image(60, 90, seed=6) * 4
    xs = torch.arange(90).view(1, 1, 1, 90)
    cur_img = torch.where(xs >= 40, torch.roll(img, shifts=(1, 3), dims=(2, 3)), img)
    prev, cur = _table(img), _table(cur_img)
    p0 = torch.tensor([[[20.0, 25.0], [44.0, 30.0], [65.0, 35.0]]])
    est = p0 + torch.tensor([[[0.2, 0.1], [2.9, 0.8], [1.2, 0.9]]])  # moved 0.2, 3.0 and 1.5 px
    cfg = StudentConfig(subpixel_radius=7, subpixel_iterations=1, subpixel_moving_radius=3, subpixel_moving_px=2.0)
    out, out_residual, _ = subpixel_stage(prev, cur, (1, 60, 90), p0, est, cfg)
    large, large_residual, _ = subpixel_refine(prev, cur, (1, 60, 90), p0, est, SubpixelParams(radius=7, iterations=1))
    small, small_residual, _ = subpixel_refine(prev, cur, (1, 60, 90), p0, est, SubpixelParams(radius=3, iterations=1))
    # The moving point's steps are those of the small window (its pixels alone weigh in), up to
    # the order of the float sums; the others keep the large window's result exactly.
    assert torch.equal(out[0, [0, 2]], large[0, [0, 2]])
    assert torch.allclose(out[0, 1], small[0, 1], atol=1e-4)
    assert (large[0, 1] - small[0, 1]).abs().max() > 1e-3  # one step: the two windows disagree
    # The residual is measured over the window each point used.
    assert torch.allclose(out_residual[0, 1], small_residual[0, 1], atol=1e-5)
    assert torch.allclose(out_residual[0, [0, 2]], large_residual[0, [0, 2]], atol=1e-6)
    off = StudentConfig(subpixel_radius=7, subpixel_iterations=1, subpixel_moving_radius=0)
    assert torch.equal(subpixel_stage(prev, cur, (1, 60, 90), p0, est, off)[0], large)


def _shifted(img: torch.Tensor, shift: tuple[float, float]) -> torch.Tensor:
    """img moved by `shift` (x, y) px, sub-pixel, border replicated."""
    h, w = img.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    grid = torch.stack([(xs - shift[0]) * 2 / (w - 1) - 1, (ys - shift[1]) * 2 / (h - 1) - 1], -1)[None]
    return F.grid_sample(img, grid, align_corners=True, padding_mode="border")


def test_the_drift_correction_pulls_drifted_points_back_to_their_seed_windows():
    # The frame as the graph matches it: lightly blurred (`smooth_image`, sigma 0.7).
    img = smooth_image(_smooth_image(60, 80, seed=9) * 4, 0.7)
    g = torch.Generator().manual_seed(0)
    seed = (torch.rand(1, 8, 2, generator=g) * torch.tensor([50.0, 30.0]) + 12.0).round()
    params = SubpixelParams(radius=6, iterations=2, anchor_iterations=1, anchor_px=1.0)
    # The step after seeding: the seed window is this step's template (fresh), taken at the seed.
    _, _, anchor = subpixel_refine(_table(img), _table(img), (1, 60, 80), seed, seed, params,
                                   anchor_patch=torch.zeros(1, 8, 13 * 13), fresh=torch.ones(1, 8, 1))
    assert anchor.shape == (1, 8, 13 * 13)
    # Later: the part moved by (2.3, 0.6) px and frame-to-frame matching has drifted by 0.3 px in
    # random directions. Matching the previous frame at the drifted points finds them again, drift
    # included; the seed window shows where they really are.
    moved = _shifted(img, (2.3, 0.6))
    truth = seed + torch.tensor([2.3, 0.6])
    angle = torch.rand(1, 8, generator=g) * 2 * torch.pi
    drifted = truth + 0.3 * torch.stack([angle.cos(), angle.sin()], dim=-1)
    stale = torch.zeros(1, 8, 1)
    plain, residual, _ = subpixel_refine(_table(moved), _table(moved), (1, 60, 80), drifted, drifted,
                                         SubpixelParams(radius=6, iterations=2))
    assert (plain - drifted).abs().max() < 1e-3  # frame to frame alone keeps the drift
    # The correction reuses the frame-to-frame solve, so it removes most of the drift per frame
    # (not all of it) and the rest over the next frames; the floor is the resampling blur of `moved`.
    p, errors = drifted, []
    for _ in range(4):
        p, residual_too, kept = subpixel_refine(_table(moved), _table(moved), (1, 60, 80), p, p, params,
                                                anchor_patch=anchor, fresh=stale)
        errors.append((p - truth).norm(dim=-1))
        assert torch.equal(kept, anchor)  # carried unchanged while the point is not re-seeded
    assert errors[0].mean() < 0.4 * 0.3 and errors[-1].max() < 0.05
    # The keep rule's residual stays the frame-to-frame one.
    assert torch.equal(residual, subpixel_refine(_table(moved), _table(moved), (1, 60, 80), drifted, drifted,
                                                 params, anchor_patch=anchor, fresh=stale)[1])
    # A correction larger than anchor_px means the seed window no longer matches: not taken.
    far = truth + torch.tensor([1.6, 0.0])
    out, _, _ = subpixel_refine(_table(moved), _table(moved), (1, 60, 80), far, far,
                                replace(params, anchor_iterations=3), anchor_patch=anchor, fresh=stale)
    assert (out - far).abs().max() < 1e-3


def test_the_drift_correction_is_carried_in_the_anchor_state():
    base = {**StudentConfig().to_dict(), "channels": [4, 8, 8, 8], "hidden": 8, "mlp": 16, "subpixel_radius": 3,
            "subpixel_moving_radius": 2}
    off = StudentConfig.from_dict(base)
    on = StudentConfig.from_dict({**base, "subpixel_anchor_iterations": 1})
    assert on.anchor_dim == off.anchor_dim + 7 * 7 and on.anchor_patch_dim == 49 and off.anchor_patch_dim == 0
    # Without a sub-pixel stage there is nothing to correct: no patch in the state.
    assert StudentConfig.from_dict({**base, "subpixel_anchor_iterations": 1, "subpixel_iterations": 0}
                                   ).anchor_patch_dim == 0
    with pytest.raises(ValueError, match="needs subpixel_on 'image'"):
        StudentTracker(StudentConfig.from_dict({**base, "subpixel_anchor_iterations": 1, "subpixel_on": "features"}))
    torch.manual_seed(0)
    model = StudentTracker(on).eval()
    n, h, w = 6, 48, 64
    img0, img1 = (_smooth_image(h, w, seed=s) * 255 for s in (1, 2))
    state = model.initial_state(1, n, h, w)
    points = torch.rand(1, n, 2) * torch.tensor([40.0, 30.0]) + 12.0
    with torch.no_grad():
        first = model(img0, state["feats"], points, state["velocity"], state["hidden"], state["anchor"],
                       torch.ones(1, n, 1))
        second = model(img1, first["maps"], first["points"], first["velocity"], first["hidden"], first["anchor"],
                       torch.ones(1, n, 1))
    assert first["anchor"].shape == (1, n, on.anchor_dim)
    # A re-seeded point takes a new seed patch, from the frame it was seeded on.
    assert not torch.equal(second["anchor"][..., off.anchor_dim:], first["anchor"][..., off.anchor_dim:])


def test_the_moving_window_must_fit_in_the_main_one():
    img = _table(_smooth_image(30, 40))
    p0 = torch.tensor([[[20.0, 15.0]]])
    cfg = StudentConfig(subpixel_radius=3, subpixel_moving_radius=4)
    with pytest.raises(ValueError, match="moving window is a part of the main one"):
        subpixel_stage(img, img, (1, 30, 40), p0, p0, cfg)


def test_match_residual_is_small_for_a_match_and_large_for_another_patch():
    img = _smooth_image(60, 80, seed=7) * 3
    other = _smooth_image(60, 80, seed=8) * 3
    p0 = torch.tensor([[[30.0, 25.0], [50.0, 35.0]]])
    moved = torch.roll(img, shifts=(1, 2), dims=(2, 3))  # an exact whole-pixel move by (2, 1)
    found, same, _ = subpixel_refine(_table(img), _table(moved), (1, 60, 80), p0, p0 + torch.tensor([2.3, 0.8]),
                                     SubpixelParams(radius=6, iterations=4))
    assert (found - (p0 + torch.tensor([2.0, 1.0]))).abs().max() < 0.01
    _, unrelated, _ = subpixel_refine(_table(img), _table(other), (1, 60, 80), p0, p0,
                                      SubpixelParams(radius=6, iterations=2))
    assert same.max() < 0.02
    assert unrelated.min() > 0.8  # two independent patches of one contrast: ~sqrt(2)
    # A global gain does not matter to the template's contrast scale, only the residual does.
    t = torch.randn(1, 2, 49, 1)
    assert torch.allclose(match_residual(t * 5, t * 0.5), match_residual(t, t * 0.1), atol=1e-5)
    # Only the window's pixels count: a residual outside it changes nothing.
    window = torch.zeros(1, 2, 1, 49)
    window[..., :20] = 1
    diff = torch.zeros(1, 2, 49, 1)
    diff[:, :, 30:] = 9.0
    assert torch.equal(match_residual(t, diff, window), torch.zeros(1, 2))
    # A flat template is floored, not divided by ~0.
    assert torch.isfinite(match_residual(torch.zeros(1, 1, 9, 1), torch.ones(1, 1, 9, 1))).all()


def _trained_pair(seed: int) -> tuple[StudentTracker, StudentTracker, StudentConfig]:
    torch.manual_seed(seed)
    cfg = StudentConfig.from_dict({**StudentConfig().to_dict(), "channels": [4, 8, 8, 8], "hidden": 8, "mlp": 16,
                                   "fine_iterations": 1})
    full = StudentTracker(cfg).eval()
    for p in full.parameters():  # non-zero last layers: every pass moves the points
        p.data.add_(0.01 * torch.randn_like(p))
    short = StudentTracker(StudentConfig.from_dict(cfg.to_dict())).eval()
    short.load_state_dict(full.state_dict())
    return full, short, cfg


def _one_step(model: StudentTracker, n: int = 6, h: int = 48, w: int = 64) -> dict:
    points = torch.rand(1, n, 2, generator=torch.Generator().manual_seed(1)) * torch.tensor([w - 20.0, h - 20.0]) + 10
    state = model.initial_state(1, n, h, w)
    with torch.no_grad():
        prev = model.features(_smooth_image(h, w, 1) * 255)
        return model(_smooth_image(h, w, 2) * 255, prev, points, state["velocity"], state["hidden"],
                     state["anchor"], torch.ones(1, n, 1))


def test_dropping_a_fine_pass_runs_the_same_earlier_passes_and_fewer_weights():
    full, short, cfg = _trained_pair(4)
    assert trim_passes(short, fine_iterations=0) is short
    assert short.cfg.fine_iterations == 0 and len(short.refiners) == len(cfg.strides)
    assert count_parameters(short) < count_parameters(full)
    a, b = _one_step(full), _one_step(short)
    passes = len(cfg.strides)
    assert len(a["estimates"]) == passes + 2 and len(b["estimates"]) == passes + 1  # + the sub-pixel stage
    for ea, eb in zip(a["estimates"][:passes], b["estimates"][:passes]):
        assert torch.equal(ea, eb)
    assert not torch.equal(a["estimates"][passes], b["estimates"][passes])  # the dropped pass moved points
    with pytest.raises(ValueError, match="trained with 0, so 0..0"):
        trim_passes(short, fine_iterations=1)
    with pytest.raises(ValueError, match="out of range"):
        trim_passes(full, fine_iterations=-1)


def test_a_coarser_finest_stride_drops_the_finer_maps_and_templates():
    full, short, cfg = _trained_pair(5)
    trim_passes(short, finest_stride=2)  # implies no extra stride-1 pass
    assert short.pass_strides() == [8, 4, 2] and short.cfg.fine_iterations == 0
    assert short.cfg.anchor_dim == 8 + 8 + 8 and short.n_maps == 3 + 1  # levels 2, 4, 8 and the frame
    a, b = _one_step(full), _one_step(short)
    for ea, eb in zip(a["estimates"][:3], b["estimates"][:3]):
        assert torch.equal(ea, eb)  # the coarse passes are untouched
    assert len(b["estimates"]) == 4 and [m.shape[1] for m in b["maps"]] == [8, 8, 8, PATCH_BLOCK]
    assert b["anchor"].shape[-1] == 24 and torch.equal(b["anchor"], a["anchor"][..., 4:])
    # The exported layout follows: state maps and anchor without the stride-1 level.
    h, w, n = 48, 64, 6
    state = short.initial_state(1, n, h, w)
    outs = StudentExport(short)(torch.zeros(1, 1, h, w), *state["feats"], torch.full((n, 2), 20.0),
                                torch.zeros(n, 2), torch.zeros(n, 8), torch.zeros(n, 24), torch.ones(n, 1))
    assert [o.shape[-1] for o in outs[5:9]] == [8, 8, 8, PATCH_BLOCK]
    with pytest.raises(ValueError, match="finest_stride 3 is out of range"):
        trim_passes(short, finest_stride=3)
    with pytest.raises(ValueError, match="finest_stride 1 is out of range: this model's passes reach stride 2"):
        trim_passes(short, finest_stride=1)
    with pytest.raises(ValueError, match="fine_iterations 1 needs the stride-1 level"):
        trim_passes(full, fine_iterations=1, finest_stride=2)
