"""The distilled point tracker ("student"): online, one frame per call, explicit state in and out.

What it is and why (the edge needs TensorRT at camera rate on a Jetson, at least LK's accuracy):

- **Feature pyramid** of the grey frame, 4 levels at strides 1, 2, 4, 8 (8, 16, 32, 32 channels),
  plain 3x3 convolutions + ReLU; each level's vectors are L2-normalised, so matching scores are
  cosines and a global gain change (flicker, drift) does not move them. The frame is first
  normalised by its own mean and standard deviation for the same reason.
- **Two templates per point**: the previous frame's features at the previous position
  (frame-to-frame, like LK) and an *anchor* taken when the point was (re-)seeded (limits drift
  over a window). Both are sampled bilinearly (whole-pixel Gather + bilinear blend, see
  `gather_bilinear`: ~10x faster than GridSample on ONNX Runtime CPU, and TensorRT-friendly).
- **Coarse-to-fine local correlation**: starting from previous position + previous velocity, at
  each level (stride 8 -> 1, then `fine_iterations` more at stride 1; trained so, the shipped
  export stops at stride 2 and leaves the rest to the sub-pixel stage: `trim_passes`) the current
  features are sampled on a (2r+1)^2 lattice of `stride`-spaced offsets around the estimate; a soft-argmax over the
  frame-to-frame scores moves the estimate (a strong prior, gated to 0 at initialisation so random
  features do not throw points around) and a small per-level MLP over both score maps and the
  point's hidden state adds a correction. Stride 8 with r = 3
  reaches +-24 px before the velocity prior, stride 1 resolves sub-pixel motion.
- **Sub-pixel stage** (no weights): inverse-compositional Gauss-Newton, i.e. Lucas-Kanade, on
  the standardised frame, lightly blurred, around the network's estimate (17x17 uniform window,
  9x9 to 13x13 for points moving > 2 px per step, 3-4 iterations, kept where every patch lies in
  the frame and the last step converged), then optionally (`subpixel_anchor_iterations`) a drift
  correction against the window taken when the point was seeded, carried in the anchor state. The
  learnt part finds the point robustly (blur, fast motion, low texture); this stage makes it as
  precise as LK where the image allows it. It runs inside the graph (Gather + arithmetic), so
  TensorRT runs it too.
- **Visibility head**: an MLP over the finest score maps and the hidden state; its logit says
  whether this step's estimate is reliable (trained to predict "scene-visible and within 2 px").
- **Match residual** (no weights): how far the sub-pixel stage's matched patch is from its
  template, relative to the template's contrast (`match_residual`), a graph output. The device
  drops a point whose logit or residual fails the thresholds in the metadata
  (`export.tracker.onnx.DEFAULT_*_THRESHOLD`): the student's counterpart of LK's
  forward-backward check, which is what keeps LK's median low on hard motion.
- **Stateless graph**: everything that persists between frames is an input and an output —
  the previous frame's four feature maps and blurred standardised frame (as the flat tables the
  step reads, `StudentTracker.state_maps`), points (N, 2), velocity (N, 2), hidden (N, H) and
  the anchors (N, `anchor_dim`: the feature anchors, then the drift correction's seed window). A
  `fresh` (N, 1) input flags points seeded or re-seeded on the previous frame: their anchor is
  taken now and their hidden state and velocity restart at zero.

174,829 parameters as trained, 124,453 in the shipped export (far under the ~2 M budget: a wider
pyramid costs CPU time, and the speed target is <= 3x LK on ORT CPU) and 0.43 GFLOPs per frame
at N = 400, 320x240 (`flops_per_frame`: 0.33 in the pyramid, 0.10 in tracking). On ORT CPU the
time goes less to FLOPs than to memory traffic (gathers, slices, layout changes), which is what
the layout choices below are about.

Coordinates: (x, y) pixels of the frame given to the tracker, origin at the top-left pixel's
centre (edge.tracking.base). The feature map of stride s has pixel j at image pixel s * j.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


#: The weight-free sub-pixel stage's settings in `StudentConfig`: no trained parameter depends on
#: them, so `laps-export onnx` may set them and verification rebuilds them from the export.
SUBPIXEL_FIELDS = ("subpixel_iterations", "subpixel_radius", "subpixel_on", "subpixel_blur",
                   "subpixel_moving_radius", "subpixel_moving_px", "subpixel_anchor_iterations",
                   "subpixel_anchor_px")


@dataclass
class StudentConfig:
    """Architecture of the student (all recorded in checkpoints and in the ONNX metadata).

    channels: feature channels per level (strides 1, 2, 4, 8). radius: correlation lattice
    half-width in cells of each level. hidden: per-point state size. mlp: width of the per-level
    refinement MLPs. fine_iterations: extra refinement passes at stride 1 after the pyramid.
    strides: the pyramid's strides; finest_stride: the finest stride the refinement passes use.

    The weight-free Gauss-Newton (LK) stage after the network (`subpixel_refine`, settings
    `SubpixelParams.from_config`):
    subpixel_iterations: frame-to-frame iterations (0 = off). subpixel_radius: half-width of its
    uniform window, px. subpixel_on: what it matches, "image" (the standardised frame, carried as
    a 5th state map) or "features" (the stride-1 features). subpixel_blur: Gaussian blur (px) of
    that frame (`smooth_image`). subpixel_moving_radius, subpixel_moving_px: a second, smaller
    window (0 = none) for points the network moved more than that many px this step (a large
    window averages noise on static texture but takes in the background of a small moving part).
    subpixel_anchor_iterations, subpixel_anchor_px: the drift correction against the seed window
    (0 = none) and the largest move it may make.

    How each default and the shipped export's values were chosen, with the figures:
    edge/shipped_models/README.md, "Distilled point tracker".
    """

    channels: tuple[int, ...] = (8, 16, 32, 32)
    radius: int = 3
    hidden: int = 32
    mlp: int = 96
    fine_iterations: int = 1
    subpixel_iterations: int = 4
    subpixel_radius: int = 8
    subpixel_on: str = "image"
    subpixel_blur: float = 0.7
    subpixel_moving_radius: int = 4
    subpixel_moving_px: float = 2.0
    subpixel_anchor_iterations: int = 0
    subpixel_anchor_px: float = 1.0
    strides: tuple[int, ...] = field(default=(1, 2, 4, 8))
    finest_stride: int = 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["strides"] = list(self.strides)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "StudentConfig":
        d = dict(d)
        d["channels"] = tuple(d["channels"])
        d["strides"] = tuple(d["strides"])
        return cls(**d)

    @property
    def levels(self) -> tuple[int, ...]:
        """Pyramid levels (indices into `strides`) the refinement passes use: those at or above
        `finest_stride`. Only their maps are state and only they give templates."""
        return tuple(i for i, s in enumerate(self.strides) if s >= self.finest_stride)

    @property
    def feature_anchor_dim(self) -> int:
        """Size of the per-point feature anchors (one template per level in use)."""
        return int(sum(self.channels[i] for i in self.levels))

    @property
    def anchor_patch_dim(self) -> int:
        """Size of the per-point seed window the sub-pixel stage's drift correction matches, its
        (2 r + 1)^2 pixels; 0 without that correction."""
        if not (self.subpixel_iterations and self.subpixel_anchor_iterations and self.subpixel_on == "image"):
            return 0
        return (2 * self.subpixel_radius + 1) ** 2

    @property
    def anchor_dim(self) -> int:
        """Per-point anchor state: the feature anchors, then the anchor patch (`anchor_patch_dim`)."""
        return self.feature_anchor_dim + self.anchor_patch_dim

    @property
    def lattice(self) -> int:
        return (2 * self.radius + 1) ** 2


class FeaturePyramid(nn.Module):
    """Grey frame (B, 1, H, W) float 0..255 -> 4 L2-normalised maps at strides 1, 2, 4, 8 (only those
    of `levels`, indices into them, when given), and with `with_image` one more: the standardised
    frame itself, smoothed by `smooth_image(., image_blur)` (for the sub-pixel refinement)."""

    def __init__(self, channels: tuple[int, ...], with_image: bool = False) -> None:
        super().__init__()
        self.with_image = with_image
        c0, c1, c2, c3 = channels
        self.level0 = nn.Sequential(nn.Conv2d(1, c0, 3, padding=1), nn.ReLU(), nn.Conv2d(c0, c0, 1))
        self.level1 = nn.Sequential(nn.ReLU(), nn.Conv2d(c0, c1, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Conv2d(c1, c1, 3, padding=1))
        self.level2 = nn.Sequential(nn.ReLU(), nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Conv2d(c2, c2, 3, padding=1))
        self.level3 = nn.Sequential(nn.ReLU(), nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Conv2d(c3, c3, 3, padding=1))

    def forward(self, image: torch.Tensor, image_blur: float = 0.0, levels: tuple[int, ...] = (0, 1, 2, 3)
                ) -> list[torch.Tensor]:
        # Per-frame standardisation: a global gain/offset (flicker, drift) cancels here.
        mean = image.mean(dim=(2, 3), keepdim=True)
        std = (image - mean).pow(2).mean(dim=(2, 3), keepdim=True).add(1e-2).sqrt()
        x = (image - mean) / std
        f0 = self.level0(x)
        f1 = self.level1(f0)
        f2 = self.level2(f1)
        f3 = self.level3(f2)
        # F.normalize's arithmetic with a broadcast divide: its Expand of the norm to the map's
        # shape is one more pass over every map in the exported graph.
        # `levels`: the maps to return (the finer ones may still feed the coarser convolutions).
        maps = [f / torch.linalg.vector_norm(f, dim=1, keepdim=True).clamp_min(1e-6)
                for i, f in enumerate((f0, f1, f2, f3)) if i in levels]
        return maps + [smooth_image(x, image_blur)] if self.with_image else maps


def flatten_map(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B * h * w, C): one row per pixel, the layout `gather_bilinear` reads."""
    # Plain ints: the exported graph gets a fixed (h * w, C) state shape, not Shape arithmetic.
    b, c, h, w = (int(v) for v in feat.shape)
    return feat.permute(0, 2, 3, 1).reshape(b * h * w, c)


def gather_bilinear(flat: torch.Tensor, shape: tuple[int, int, int], xy: torch.Tensor, size: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature vectors on an integer lattice around level-pixel positions, for bilinear sampling.

    flat: `flatten_map` of a (B, C, h, w) map; shape = (B, h, w); xy (B, N, 2) positions in that
    level's pixels; size: lattice side (the cells floor(xy) - r .. floor(xy) + r + 1, with
    size = 2r + 2). Returns the vectors (B, N, size * size, C) (clamped at the border), a mask
    (B, N, size * size, 1) that is 0 for cells outside the map (multiply it in -- on the vectors
    or, cheaper, on their dot products -- for a zero-padded bilinear sample) and the fractional
    parts (B, N, 2).

    Why not `grid_sample` on every lattice point: the lattice offsets are whole level pixels, so
    all of a point's samples share one fractional part, and a bilinear sample followed by a dot
    product equals the bilinear blend of the dot products on the integer lattice. Gathering
    whole pixel vectors (one ONNX Gather) is ~10x faster on ONNX Runtime CPU than GridSample.
    """
    b, h, w = shape
    r = (size - 2) // 2
    base = torch.floor(xy)
    frac = xy - base
    steps = torch.arange(-r, r + 2, device=xy.device, dtype=xy.dtype)
    # Bounds, clamps and row offsets on the (B, N, size) axes, then one broadcast add to the
    # (B, N, size_y, size_x) lattice: size x fewer element-wise ops than on the full lattice.
    gx = base[..., 0:1] + steps  # (B, N, size)
    gy = base[..., 1:2] + steps
    in_x = (gx >= 0) & (gx <= w - 1)
    in_y = (gy >= 0) & (gy <= h - 1)
    ix = gx.clamp(0, w - 1).to(torch.int64)
    iy = gy.clamp(0, h - 1).to(torch.int64)
    batch = (torch.arange(b, device=xy.device, dtype=torch.int64) * (h * w)).view(b, 1, 1)
    rows = batch + iy * w  # (B, N, size)
    index = (rows.unsqueeze(3) + ix.unsqueeze(2)).reshape(b, -1)
    vectors = flat[index].reshape(b, xy.shape[1], size * size, flat.shape[1])
    inside = in_y.unsqueeze(3) & in_x.unsqueeze(2)
    # Where, not a Cast to float: the FP16 converter leaves a Cast's target type at float32.
    one = torch.ones((), dtype=flat.dtype, device=flat.device)
    mask = torch.where(inside, one, torch.zeros_like(one)).reshape(b, xy.shape[1], size * size, 1)
    return vectors, mask, frac


def gather_patch(flat: torch.Tensor, shape: tuple[int, int, int], xy: torch.Tensor, size: int, block: int = 1
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Like `gather_bilinear` but for large patches: the lattice is shifted as a whole to lie in
    the map (one index add per point instead of per-cell clamps, ~3x faster on ONNX Runtime CPU),
    and a per-point flag (B, N, 1) says whether it had to be (the patch then is not the point's).

    block > 1: `flat` is `widen(flatten_map(.), block)` and each Gather index fetches `block`
    neighbouring pixels of a row at once. ONNX Runtime's Gather pays per index, so single-pixel
    rows of a 1-channel frame cost ~4 ns per pixel; blocks of 8 cut the sub-pixel stage's
    gathers about 5x. Returns the vectors (B, N, size * size, C), frac (B, N, 2) and the flag."""
    b, h, w = shape
    c = flat.shape[1] // block
    x0, y0, frac, inside = _lattice_origin(xy, size, h, w)
    x0 = x0.clamp(0, w - size).to(torch.int64)
    y0 = y0.clamp(0, h - size).to(torch.int64)
    blocks = -(-size // block)
    rows = torch.arange(size, device=xy.device, dtype=torch.int64)
    cols = torch.arange(blocks, device=xy.device, dtype=torch.int64) * block
    table = (rows[:, None] * w + cols[None, :]).reshape(1, 1, size * blocks)
    batch = (torch.arange(b, device=xy.device, dtype=torch.int64) * (h * w)).view(b, 1, 1)
    index = (batch + y0 * w + x0 + table).reshape(b, -1)
    vectors = flat[index].reshape(b, xy.shape[1], size, blocks * block, c)
    if blocks * block != size:
        # The last block reaches past the patch (into the next row, or the zero rows `widen` adds
        # at the end): those cells are dropped here.
        vectors = vectors[:, :, :, :size]
    return vectors.reshape(b, xy.shape[1], size * size, c), frac, inside


def _lattice_origin(xy: torch.Tensor, size: int, h: int, w: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where the size x size integer lattice of a bilinear patch of side size - 1 centred at xy
    (B, N, 2) starts: x0, y0 (B, N, 1) float, the fractional part of xy (B, N, 2), and whether the
    lattice lies in the h x w map (B, N, 1)."""
    r = (size - 2) // 2
    base = torch.floor(xy)
    x0, y0 = base[..., 0:1] - r, base[..., 1:2] - r
    inside = (x0 >= 0) & (x0 + size - 1 <= w - 1) & (y0 >= 0) & (y0 + size - 1 <= h - 1)
    return x0, y0, xy - base, inside


def widen(flat: torch.Tensor, block: int) -> torch.Tensor:
    """(M, C) `flatten_map` rows -> (M, block * C): row p holds rows p .. p + block - 1 (zeros
    past the end), the table `gather_patch(..., block=block)` reads."""
    m, c = int(flat.shape[0]), int(flat.shape[1])  # ints: a fixed-shape table in the exported graph
    padded = torch.cat([flat, flat.new_zeros(block - 1, c)], dim=0)
    return torch.cat([padded[k:k + m] for k in range(block)], dim=1)


def blend(values: torch.Tensor, frac: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear blend of values on a size x size integer lattice (B, N, size*size[, C]) to the
    (size-1)^2 lattice shifted by frac (B, N, 2) -> (B, N, (size-1)^2[, C])."""
    extra = values.shape[3:]
    v = values.reshape(values.shape[0], values.shape[1], size, size, *extra)
    fx = frac[..., 0].reshape(frac.shape[0], frac.shape[1], 1, 1, *([1] * len(extra)))
    fy = frac[..., 1].reshape(frac.shape[0], frac.shape[1], 1, 1, *([1] * len(extra)))
    out = lerp_lattice(v, fx, fy, 2)
    return out.reshape(values.shape[0], values.shape[1], (size - 1) ** 2, *extra)


def lerp_lattice(v: torch.Tensor, fx: torch.Tensor, fy: torch.Tensor, y_axis: int) -> torch.Tensor:
    """Bilinear interpolation between neighbouring cells of a lattice whose y and x axes are
    `y_axis` and `y_axis + 1` of v (sizes s, s -> s-1, s-1); fx, fy broadcast against v.
    Separable (along x, then y): 2 multiplies per output instead of 6."""
    s = v.shape[y_axis]
    left = v.narrow(y_axis + 1, 0, s - 1)
    across = left + fx * (v.narrow(y_axis + 1, 1, s - 1) - left)
    top = across.narrow(y_axis, 0, s - 1)
    return top + fy * (across.narrow(y_axis, 1, s - 1) - top)


def sample_points(feat: torch.Tensor, xy: torch.Tensor, stride: int, flat: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Bilinear samples of `feat` (B, C, h, w) at image-pixel positions xy (B, N, 2) -> (B, N, C).

    Outside the map the samples are zero (no evidence), like a zero-padded GridSample.
    `flat`: `flatten_map(feat)` when the caller already has it.
    """
    b, _, h, w = feat.shape
    flat = flatten_map(feat) if flat is None else flat
    vectors, mask, frac = gather_bilinear(flat, (b, h, w), xy / float(stride), 2)
    return blend(vectors * mask, frac, 2)[:, :, 0, :]


def lattice_scores(feat: torch.Tensor, stride: int, est: torch.Tensor, templates: list[torch.Tensor],
                   radius: int, flat: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Cosine scores of each template (B, N, C) against `feat` sampled at est + stride * (i, j),
    i, j in -radius..radius (x inner): one (B, N, (2r+1)^2) map per template."""
    b, c, h, w = feat.shape
    size = 2 * radius + 2
    flat = flatten_map(feat) if flat is None else flat
    vectors, mask, frac = gather_bilinear(flat, (b, h, w), est / float(stride), size)
    out = []
    for t in templates:
        dots = torch.matmul(vectors, t.unsqueeze(-1)) * mask  # (B, N, size*size, 1)
        out.append(blend(dots.squeeze(-1), frac, size))
    return out


#: Pixels per Gather index in the sub-pixel stage's patches (see `gather_patch`).
PATCH_BLOCK = 8


@dataclass(frozen=True)
class SubpixelParams:
    """The settings of one `subpixel_refine` call (plain numbers; the tensors are its arguments).

    radius: half-width of the uniform matching window, px. iterations: frame-to-frame
    Gauss-Newton steps (0 = off). max_step_px: largest move of one step. inner_radius: half-width
    of the smaller window used by the points `use_inner` selects (0 = none). anchor_iterations:
    drift-correction steps against the seed window (0 = none); anchor_px: the largest correction
    taken.
    """

    radius: int
    iterations: int
    max_step_px: float = 1.0
    inner_radius: int = 0
    anchor_iterations: int = 0
    anchor_px: float = 1.0

    @classmethod
    def from_config(cls, cfg: StudentConfig) -> "SubpixelParams":
        """The sub-pixel stage of a student as its config sets it."""
        return cls(radius=cfg.subpixel_radius, iterations=cfg.subpixel_iterations,
                   inner_radius=cfg.subpixel_moving_radius, anchor_iterations=cfg.subpixel_anchor_iterations,
                   anchor_px=cfg.subpixel_anchor_px)


def subpixel_refine(prev_table: torch.Tensor, table: torch.Tensor, shape: tuple[int, int, int], p0: torch.Tensor,
                    est: torch.Tensor, params: SubpixelParams, use_inner: torch.Tensor | None = None,
                    anchor_patch: torch.Tensor | None = None, fresh: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Inverse-compositional Gauss-Newton (Lucas-Kanade) on a full-resolution map, no weights.

    prev_table, table: `widen(flatten_map(m), PATCH_BLOCK)` of the previous and current (B, C, h, w)
    map m (the smoothed standardised frame, C = 1, or the stride-1 features); p0 (B, N, 2) the points
    on the previous map, est (B, N, 2) the network's estimate on the current one; settings in
    `params`. Three stages:

    1. Template (`_Template`): the previous map's (2r+1)^2 patch at p0 with a uniform window,
       like OpenCV's LK; its central-difference gradients give the 2x2 normal matrix once. With
       `use_inner` (B, N, 1) bool, those points match only the central (2 * inner_radius + 1)^2
       window of the patch: the same steps as a call with that radius (pixels outside get weight
       0), for the cost of one masked solve.
    2. Frame to frame (`_gauss_newton`): each iteration samples the current map at `est` and
       moves est by -H^-1 J^T (I - T) (limited to `max_step_px` per iteration; no move where H is
       near singular, i.e. on a flat patch). The refinement is kept where every patch lay in the
       frame and the last step was below the limit.
    3. Drift correction (`_correct_drift`, when `anchor_iterations` > 0 and `anchor_patch` is
       given; Matthews, Ishikawa and Baker, "The Template Update Problem", 2004): frame-to-frame
       matching accumulates its small errors over a track. So the window taken when the point was
       seeded, `anchor_patch` (B, N, (2r+1)^2) (state: this step's template where `fresh`
       (B, N, 1) is 1, i.e. the point was seeded on the previous frame), is matched too, starting
       from the frame-to-frame result, for `anchor_iterations` more steps with the same window
       mask. Those steps reuse the frame-to-frame solve (this step's template gradients) instead
       of the seed window's own: exact at zero drift, and a drift of d px moves by most of d per
       frame (the next frame's template is taken at the corrected point, so it contracts over
       frames). The seed window's own solve tracked no better on VALIDATION seeds 500-501 and
       cost ~1.3 ms per frame on ONNX Runtime CPU (a second solve, 3x the state). The correction
       is taken where it converged, its patches lay in the frame and it moved the point less than
       `anchor_px` (a larger correction means the seed window no longer looks like the point: a
       turned part, an occlusion, a change of light).

    Returns the refined est (B, N, 2), the match residual (B, N) (`match_residual`: how far the
    matched patch is from the frame-to-frame template, measured where the last step started, so no
    extra patch sample) and the anchor patch to carry (B, N, (2r+1)^2), None without the correction.

    Layout (B, N, C, y, x): element-wise ops then broadcast per-point scalars over long contiguous
    runs (channels-last patches with C = 1 made ONNX Runtime broadcast element by element).
    """
    sampler = _PatchSampler(shape, p0.shape[1])
    tpl = _Template.at(sampler, prev_table, p0, params, use_inner)
    start = est
    cur, _ = sampler.patch(table, est, tpl.side)
    refined, diff, good = _gauss_newton(sampler, table, est, cur.reshape(sampler.b, sampler.n, -1, 1) - tpl.core,
                                        tpl.core, tpl.solve, params.iterations, tpl.usable, tpl.side,
                                        params.max_step_px)
    mismatch = match_residual(tpl.core, diff, tpl.window)
    # Keep the refinement where every patch lay inside the frame and the last step was below the
    # limit (converging). No "lower residual than the network's estimate" test: on VALIDATION seeds
    # 500-501 it threw away good refinements (EPE median 0.096 with it, 0.088 without) and cost
    # one more patch sample.
    est = torch.where(good, refined, start)
    if not params.anchor_iterations or anchor_patch is None:
        return est, mismatch, None
    est, anchor_patch = _correct_drift(sampler, table, est, tpl, params, anchor_patch, fresh)
    return est, mismatch, anchor_patch


class _PatchSampler:
    """Bilinear (B, N, C, side, side) patches of a widened map at N points (stage helper of
    `subpixel_refine`)."""

    def __init__(self, shape: tuple[int, int, int], n: int) -> None:
        self.b, self.h, self.w = shape
        self.n = n

    def patch(self, source: torch.Tensor, at: torch.Tensor, out_side: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, N, C, out_side, out_side) bilinear patch of `source` centred at `at`, and the inside flag."""
        b, n, size = self.b, self.n, out_side + 1
        vec, frac, inside = gather_patch(source, (b, self.h, self.w), at, size, block=PATCH_BLOCK)
        c = vec.shape[-1]
        vec = vec.reshape(b, n, 1, size, size) if c == 1 else vec.reshape(b, n, size, size, c).permute(0, 1, 4, 2, 3)
        fx = frac[..., 0].reshape(b, n, 1, 1, 1)
        fy = frac[..., 1].reshape(b, n, 1, 1, 1)
        return lerp_lattice(vec, fx, fy, 3), inside


@dataclass(frozen=True)
class _Template:
    """Stage 1 of `subpixel_refine`: the template patch at p0 and its Gauss-Newton solve.

    core (B, N, P, 1): the template's pixels; window (B, N, 1, P) 0/1 or None: the pixels each
    point matches; solve (B, N, 2, P): H^-1 J^T; usable (B, N, 1): the template lay in the map.
    """

    side: int
    core: torch.Tensor
    window: torch.Tensor | None
    solve: torch.Tensor
    usable: torch.Tensor

    @classmethod
    def at(cls, sampler: _PatchSampler, prev_table: torch.Tensor, p0: torch.Tensor, params: SubpixelParams,
           use_inner: torch.Tensor | None) -> "_Template":
        b, n, radius = sampler.b, sampler.n, params.radius
        side = 2 * radius + 1
        tpl, usable = sampler.patch(prev_table, p0, side + 2)  # one extra ring for the gradients
        gx = (tpl[:, :, :, 1:-1, 2:] - tpl[:, :, :, 1:-1, :-2]) * 0.5
        gy = (tpl[:, :, :, 2:, 1:-1] - tpl[:, :, :, :-2, 1:-1]) * 0.5
        core = tpl[:, :, :, 1:-1, 1:-1].reshape(b, n, -1, 1)
        gx = gx.reshape(b, n, 1, -1)
        gy = gy.reshape(b, n, 1, -1)
        window = None
        if use_inner is not None:
            offsets = torch.arange(-radius, radius + 1, device=p0.device).abs() <= params.inner_radius
            inner = (offsets[:, None] & offsets[None, :]).reshape(1, 1, 1, -1)
            one = torch.ones((), dtype=gx.dtype, device=gx.device)
            window = torch.where(use_inner.unsqueeze(-1) & ~inner, torch.zeros_like(one), one)  # (B, N, 1, P)
        return cls(side, core, window, _gauss_newton_solver(gx, gy, window), usable)


def _gauss_newton(sampler: _PatchSampler, table: torch.Tensor, est: torch.Tensor, diff: torch.Tensor,
                  template: torch.Tensor, matrix: torch.Tensor, steps: int, usable: torch.Tensor, side: int,
                  max_step_px: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stages 2 and 3 of `subpixel_refine`: `steps` Gauss-Newton steps from est, whose residual
    against `template` is diff; returns the new est, the residual where the last step started, and
    "usable and converged"."""
    b, n = sampler.b, sampler.n
    step = torch.zeros_like(est)
    for i in range(steps):
        # Multiply and sum, not a (2, P) x (P, 1) MatMul: ONNX Runtime loops its batched MatMul
        # over the N points one tiny product at a time.
        step = (matrix * diff.reshape(b, n, 1, -1)).sum(dim=-1).clamp(-max_step_px, max_step_px)  # (B, N, 2)
        est = est - step
        if i < steps - 1:
            cur, inside = sampler.patch(table, est, side)
            diff = cur.reshape(b, n, -1, 1) - template
            usable = usable & inside
    usable = usable & _lattice_origin(est, side + 1, sampler.h, sampler.w)[3]  # the last estimate's patch, unsampled
    converged = (step.abs() < max_step_px).all(dim=-1, keepdim=True)
    return est, diff, usable & converged


def _correct_drift(sampler: _PatchSampler, table: torch.Tensor, est: torch.Tensor, tpl: _Template,
                   params: SubpixelParams, anchor_patch: torch.Tensor, fresh: torch.Tensor | None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 3 of `subpixel_refine`: match the seed window, starting from the frame-to-frame
    result est; returns the corrected est (where the correction is taken) and the anchor patch to
    carry."""
    b, n = sampler.b, sampler.n
    anchor_patch = torch.where(fresh > 0, tpl.core.reshape(b, n, -1), anchor_patch)
    acore = anchor_patch.reshape(b, n, -1, 1)
    cur, inside = sampler.patch(table, est, tpl.side)
    corrected, _, agood = _gauss_newton(sampler, table, est, cur.reshape(b, n, -1, 1) - acore, acore, tpl.solve,
                                        params.anchor_iterations, inside, tpl.side, params.max_step_px)
    take = agood & ((corrected - est).norm(dim=-1, keepdim=True) < params.anchor_px)
    return torch.where(take, corrected, est), anchor_patch


def match_residual(template: torch.Tensor, diff: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
    """How well a matched patch explains its template, as a reliability signal (B, N): the RMS of
    the residual `diff` (current patch - template) over the window, divided by the template's own
    RMS contrast there (floored at 0.05, in units of the standardised frame, so a flat patch does
    not divide by ~0). template, diff (B, N, P, 1); window (B, N, 1, P) 0/1 or None (all P pixels).

    ~0 for a clean match; ~1.4 for an unrelated patch of the same contrast. The tracker drops a
    point above `TrackerMetadata.residual_threshold`, the student's counterpart of LK's
    forward-backward check: on VALIDATION seeds 500-501 the points it keeps beyond what LK keeps
    were mostly ones the Gauss-Newton match could not explain (occlusion, a part changing its
    look), and their error was ~3x the median."""
    t = template.squeeze(-1)  # (B, N, P)
    d2 = diff.squeeze(-1).square()
    if window is None:
        count = float(t.shape[-1])
        mean = t.mean(dim=-1)
        power = t.square().mean(dim=-1)
        rms = d2.mean(dim=-1).sqrt()
    else:
        w = window.squeeze(2)
        count = w.sum(dim=-1)
        mean = (w * t).sum(dim=-1) / count
        power = (w * t.square()).sum(dim=-1) / count
        rms = ((w * d2).sum(dim=-1) / count).sqrt()
    contrast = (power - mean.square()).clamp_min(0.0025).sqrt()
    return rms / contrast


def subpixel_stage(prev_table: torch.Tensor, table: torch.Tensor, shape: tuple[int, int, int], p0: torch.Tensor,
                   est: torch.Tensor, cfg: StudentConfig, anchor_patch: torch.Tensor | None = None,
                   fresh: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The sub-pixel stage as configured: `subpixel_refine` with the main window, and for points the
    network moved more than `subpixel_moving_px` this step (|est - p0|) with the smaller moving
    window (when `subpixel_moving_radius` > 0; it must not exceed the main radius), then the drift
    correction against `anchor_patch` when `subpixel_anchor_iterations` > 0. Arguments as
    `subpixel_refine`; returns the refined est (B, N, 2), `match_residual` (B, N) and the anchor
    patch to carry (None without the correction)."""
    if cfg.subpixel_moving_radius > cfg.subpixel_radius:
        raise ValueError(f"subpixel_moving_radius {cfg.subpixel_moving_radius} exceeds subpixel_radius "
                         f"{cfg.subpixel_radius}: the moving window is a part of the main one")
    moving = None
    if cfg.subpixel_moving_radius:
        moving = (est - p0).norm(dim=-1, keepdim=True) > cfg.subpixel_moving_px
    return subpixel_refine(prev_table, table, shape, p0, est, SubpixelParams.from_config(cfg), use_inner=moving,
                           anchor_patch=anchor_patch, fresh=fresh)


def _gauss_newton_solver(gx: torch.Tensor, gy: torch.Tensor, window: torch.Tensor | None = None) -> torch.Tensor:
    """H^-1 J^T of a patch as one (B, N, 2, P) matrix, from its gradients gx, gy (B, N, 1, P) and an
    optional 0/1 window (B, N, 1, P) that leaves pixels out: each iteration's step is then this
    matrix times the residual (a multiply-and-sum over P in `subpixel_refine`). Zero where the patch is flat or an edge (2x2 normal
    matrix near singular)."""
    if window is not None:
        gx, gy = gx * window, gy * window  # window^2 = window: H and J^T both see the window once
    hxx = (gx * gx).sum(dim=-1, keepdim=True)  # (B, N, 1, 1)
    hxy = (gx * gy).sum(dim=-1, keepdim=True)
    hyy = (gy * gy).sum(dim=-1, keepdim=True)
    det = hxx * hyy - hxy * hxy
    trace = hxx + hyy
    # Well-conditioned patches only (smallest eigenvalue not tiny against the largest).
    ok = det > 1e-3 * trace * trace + 1e-9
    inv_det = torch.where(ok, 1.0 / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
    return torch.cat([gx * hyy - gy * hxy, gy * hxx - gx * hxy], dim=2) * inv_det


def smooth_image(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) with standard deviation `sigma` px (5-tap, edges
    replicated); sigma 0 returns x. For the sub-pixel stage: central-difference gradients of a
    noisy frame bias the Gauss-Newton step (noise in both the gradients and the residual), which
    OpenCV's LK tempers with Scharr derivatives; a light blur of both frames does the same here."""
    if sigma <= 0:
        return x
    taps = torch.arange(-2, 3, dtype=x.dtype, device=x.device)
    g = torch.exp(-0.5 * (taps / sigma) ** 2)
    g = g / g.sum()
    x = F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), g.view(1, 1, 1, 5))
    return F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), g.view(1, 1, 5, 1))


class Refiner(nn.Module):
    """One refinement pass at one level: scores -> soft-argmax move + MLP correction + state update."""

    def __init__(self, lattice: int, hidden: int, width: int) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.tensor(2.5))  # cosine * e^2.5 ~ 12: a peaked softmax
        # The soft-argmax move starts switched off: on random initial features it would throw points
        # around; training opens the gate as soon as the scores point the right way.
        self.gate = nn.Parameter(torch.tensor(0.0))
        self.mlp = nn.Sequential(nn.Linear(2 * lattice + hidden, width), nn.ReLU(),
                                 nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 2 + hidden))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, s_f2f: torch.Tensor, s_anchor: torch.Tensor, hidden: torch.Tensor,
                offsets: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(s_f2f * self.log_temperature.exp(), dim=-1)  # (B, N, K)
        move = self.gate * torch.matmul(weights, offsets)
        out = self.mlp(torch.cat([s_f2f, s_anchor, hidden], dim=-1))
        move = move + out[..., :2] * float(stride)
        hidden = torch.tanh(hidden + out[..., 2:])
        return move, hidden


class StudentTracker(nn.Module):
    """The student network. `forward` is one tracker step on a batch of B independent streams.

    image (B, 1, H, W) float32 grey 0..255; prev_feats: the previous call's `n_maps` maps, as its
    "maps" (flat tables (B * h_l * w_l, C_l)) or as "feats" (B, C_l, h_l, w_l), h_l = ceil(H/s);
    points, velocity (B, N, 2) px; hidden (B, N, H_s); anchor (B, N, cfg.anchor_dim); fresh (B, N, 1) 1.0
    where the point was (re-)seeded on the previous frame.
    Returns dict: points, velocity, hidden, anchor, visibility_logit (B, N), feats (the maps),
    maps (the same as flat tables, the next call's state), `estimates` (list of (B, N, 2), one
    per refinement pass, for the loss) and match_residual ((B, N) `match_residual` of the
    sub-pixel stage, None without one).
    """

    def __init__(self, cfg: StudentConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or StudentConfig()
        c = self.cfg
        if c.subpixel_on not in ("features", "image"):
            raise ValueError(f"subpixel_on must be 'features' or 'image', got {c.subpixel_on!r}")
        check_passes(c)
        if c.subpixel_anchor_iterations and c.subpixel_on != "image":
            raise ValueError("the sub-pixel drift correction (subpixel_anchor_iterations) matches frame patches; "
                             "it needs subpixel_on 'image'")
        self.pyramid = FeaturePyramid(c.channels, with_image=c.subpixel_on == "image")
        self.refiners = nn.ModuleList(Refiner(c.lattice, c.hidden, c.mlp) for _ in pass_strides(c))
        self.visibility = nn.Sequential(nn.Linear(2 * c.lattice + c.hidden + 2, c.mlp), nn.ReLU(),
                                        nn.Linear(c.mlp, 1))
        r = torch.arange(-c.radius, c.radius + 1, dtype=torch.float32)
        gy, gx = torch.meshgrid(r, r, indexing="ij")
        self.register_buffer("unit_offsets", torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), persistent=False)

    @property
    def n_maps(self) -> int:
        """Maps the pyramid returns (and the exported graph carries as state)."""
        return len(self.cfg.levels) + (1 if self.cfg.subpixel_on == "image" else 0)

    def pass_strides(self) -> list[int]:
        """Stride of each refinement pass, coarse to fine."""
        return pass_strides(self.cfg)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.pyramid(image, self.cfg.subpixel_blur, self.cfg.levels)

    def forward(self, image, prev_feats, points, velocity, hidden, anchor, fresh) -> dict:
        feats = self.features(image)
        return self.track(feats, prev_feats, points, velocity, hidden, anchor, fresh)

    def track(self, feats, prev_feats, points, velocity, hidden, anchor, fresh) -> dict:
        """The step given this frame's features (training computes them for a whole clip at once)."""
        c = self.cfg
        keep = 1.0 - fresh
        hidden = hidden * keep
        velocity = velocity * keep
        maps = self.state_maps(feats)  # flat tables, once per level, shared by every pass
        # The previous call's maps arrive as its `maps` (the exported graph's state, so no map is
        # flattened twice) or, in training, as (B, C, h, w) maps.
        prev_flats = prev_feats if prev_feats[0].dim() == 2 else self.state_maps(prev_feats)
        strides = [c.strides[i] for i in c.levels]
        flats = maps[:len(strides)]
        # Frame-to-frame templates: previous features at previous positions, one per level.
        t_f2f = [sample_points(f, points, s, flat=pf) for f, pf, s in zip(feats, prev_flats, strides)]
        # The anchor state: the feature anchors, then (with the drift correction) the frame patch,
        # which the sub-pixel stage takes and updates.
        anchor, anchor_patch = anchor[..., :c.feature_anchor_dim], anchor[..., c.feature_anchor_dim:]
        anchor = fresh * torch.cat(t_f2f, dim=-1) + keep * anchor
        t_anchor = list(torch.split(anchor, [c.channels[i] for i in c.levels], dim=-1))
        level_of = {s: i for i, s in enumerate(strides)}
        est = points + velocity
        estimates = []
        s_f2f = s_anc = None
        for refiner, stride in zip(self.refiners, self.pass_strides()):
            lv = level_of[stride]
            offsets = self.unit_offsets * float(stride)
            s_f2f, s_anc = lattice_scores(feats[lv], stride, est, [t_f2f[lv], t_anchor[lv]], c.radius,
                                          flat=flats[lv])
            move, hidden = refiner(s_f2f, s_anc, hidden, offsets, stride)
            est = est + move
            estimates.append(est)
        peak = torch.stack([s_f2f.amax(dim=-1), s_anc.amax(dim=-1)], dim=-1)
        vis_logit = self.visibility(torch.cat([s_f2f, s_anc, hidden, peak], dim=-1)).squeeze(-1)
        if c.subpixel_iterations:
            if c.subpixel_on == "image":
                lv, prev_table, table = len(strides), prev_flats[-1], maps[-1]
            else:
                lv = level_of[c.strides[0]]
                prev_table, table = widen(prev_flats[lv], PATCH_BLOCK), widen(flats[lv], PATCH_BLOCK)
            # Plain ints: the exported graph then carries the map size as constants, not as Shape
            # arithmetic (whose Casts the FP16 converter leaves at float32).
            dims = (int(feats[lv].shape[0]), int(feats[lv].shape[2]), int(feats[lv].shape[3]))
            # anchor_patch is (B, N, 0) without the correction, and the stage then returns None.
            est, mismatch, anchor_patch = subpixel_stage(prev_table, table, dims, points, est, c, anchor_patch, fresh)
            if anchor_patch is not None:
                anchor = torch.cat([anchor, anchor_patch], dim=-1)
            estimates.append(est)
        else:
            mismatch = None
        return {"points": est, "velocity": est - points, "hidden": hidden, "anchor": anchor,
                "visibility_logit": vis_logit, "feats": feats, "maps": maps, "estimates": estimates,
                "match_residual": mismatch}

    def state_maps(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """The maps as the flat tables a step carries to the next: `flatten_map` of each level
        (B * h * w, C), and the frame's map (subpixel_on "image") already `widen`ed to
        (B * H * W, PATCH_BLOCK), the table the sub-pixel stage gathers its patches from
        (`image_table_width`)."""
        maps = [flatten_map(f) for f in feats]
        if self.image_table_width > 1:
            maps[-1] = widen(maps[-1], PATCH_BLOCK)
        return maps

    @property
    def image_table_width(self) -> int:
        """Columns of the frame's state table: PATCH_BLOCK when the sub-pixel stage reads it, else 1
        (training with the stage off does not pay for widening every frame), 0 without that map."""
        if self.cfg.subpixel_on != "image":
            return 0
        return PATCH_BLOCK if self.cfg.subpixel_iterations else 1

    def initial_state(self, batch: int, n_points: int, height: int, width: int,
                      device: torch.device | None = None) -> dict:
        """Zero state tensors of the right shapes (features of a blank frame are zeros); "feats"
        are flat tables as `track` returns them under "maps" (`state_maps`)."""
        c = self.cfg
        feats = [torch.zeros(batch * -(-height // c.strides[i]) * -(-width // c.strides[i]), c.channels[i],
                             device=device) for i in c.levels]
        if self.image_table_width:
            feats.append(torch.zeros(batch * height * width, self.image_table_width, device=device))
        return {"feats": feats, "velocity": torch.zeros(batch, n_points, 2, device=device),
                "hidden": torch.zeros(batch, n_points, c.hidden, device=device),
                "anchor": torch.zeros(batch, n_points, c.anchor_dim, device=device)}


def pass_strides(cfg: StudentConfig) -> list[int]:
    """Stride of each refinement pass, coarse to fine: one per level down to `finest_stride`, then
    `fine_iterations` more at the finest stride."""
    return [s for s in reversed(cfg.strides) if s >= cfg.finest_stride] + [cfg.strides[0]] * cfg.fine_iterations


def check_passes(cfg: StudentConfig) -> None:
    """ValueError (one line) for a pass layout the model cannot run."""
    if cfg.finest_stride not in cfg.strides:
        raise ValueError(f"finest_stride {cfg.finest_stride} is not one of the pyramid's strides "
                         f"{', '.join(map(str, cfg.strides))}")
    if cfg.finest_stride != cfg.strides[0]:
        if cfg.fine_iterations:
            raise ValueError(f"fine_iterations {cfg.fine_iterations} needs the stride-{cfg.strides[0]} level, which "
                             f"finest_stride {cfg.finest_stride} leaves out; use fine_iterations 0")
        if cfg.subpixel_on != "image":
            raise ValueError(f"the sub-pixel stage on 'features' reads the stride-{cfg.strides[0]} map, which "
                             f"finest_stride {cfg.finest_stride} leaves out; match the image instead")


def trim_passes(model: StudentTracker, fine_iterations: int | None = None, finest_stride: int | None = None
                ) -> StudentTracker:
    """Run `model` with fewer of its trained refinement passes (in place; returns it): only the first
    `fine_iterations` of the extra stride-1 passes, and none finer than `finest_stride` (then the
    finer levels' maps, templates and anchor parts leave the graph too). Passes run coarse to fine,
    so the ones kept are a prefix and their refiners are removed from the module: the export
    neither computes nor counts them. No weight changes, no retraining.

    Why: the weight-free sub-pixel stage after the network does the fine work. On VALIDATION seeds
    500-501 the trained default tracked as well without its extra stride-1 pass (bundle version
    5) and without its stride-1 passes altogether (version 6) once the keep rule was re-chosen,
    and each costs ONNX Runtime CPU time (edge/shipped_models/README.md). Raises ValueError for passes
    that were not trained (they would have no weights) or a layout `check_passes` refuses."""
    c = model.cfg
    new = StudentConfig.from_dict(c.to_dict())
    if fine_iterations is not None:
        if not 0 <= fine_iterations <= c.fine_iterations:
            raise ValueError(f"fine_iterations {fine_iterations} is out of range: this model was trained with "
                             f"{c.fine_iterations}, so 0..{c.fine_iterations} of them can run")
        new.fine_iterations = int(fine_iterations)
    if finest_stride is not None:
        if finest_stride not in c.strides or finest_stride < c.finest_stride:
            raise ValueError(f"finest_stride {finest_stride} is out of range: this model's passes reach stride "
                             f"{c.finest_stride}, so one of {', '.join(str(s) for s in c.strides if s >= c.finest_stride)}")
        new.finest_stride = int(finest_stride)
        if fine_iterations is None and new.finest_stride != new.strides[0]:
            new.fine_iterations = 0  # the extra passes run at the stride just left out
    check_passes(new)
    model.cfg = new
    model.refiners = nn.ModuleList(list(model.refiners)[:len(pass_strides(new))])
    return model


class StudentExport(nn.Module):
    """Batch-1 wrapper with flat tensors, the layout of the exported graph
    (`edge.tracking.onnx_student.input_names`): image (1, 1, H, W), the previous call's maps as
    flat tables (h * w, C) (`flatten_map`), points/velocity (N, 2), hidden (N, H), anchor (N, A),
    fresh (N, 1); outputs the same, this call's maps after them, and with a sub-pixel stage its
    match residual (N,) last (`edge.tracking.onnx_student.output_names`).
    """

    def __init__(self, model: StudentTracker) -> None:
        super().__init__()
        self.model = model
        self.n_maps = model.n_maps

    def forward(self, image, *args):
        maps = list(args[:self.n_maps])
        points, velocity, hidden, anchor, fresh = args[self.n_maps:]
        out = self.model(image, maps, points[None], velocity[None], hidden[None], anchor[None], fresh[None])
        residual = () if out["match_residual"] is None else (out["match_residual"][0],)
        return (out["points"][0], out["velocity"][0], out["hidden"][0], out["anchor"][0],
                out["visibility_logit"][0], *out["maps"], *residual)


def count_parameters(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def flops_per_frame(cfg: StudentConfig, width: int, height: int, n_points: int) -> dict[str, int]:
    """Multiply-accumulates x 2 per tracker step, counted analytically (convolutions, bilinear
    samples at 4 MAC-pairs per channel, correlations, MLPs); element-wise ops are ignored.
    Returns {"pyramid": ..., "tracking": ..., "total": ...} in FLOPs."""
    c0, c1, c2, c3 = cfg.channels
    hw = [(-(-height // s)) * (-(-width // s)) for s in cfg.strides]
    conv = (hw[0] * (9 * 1 * c0 + c0 * c0)
            + hw[1] * (9 * c0 * c1 + 9 * c1 * c1)
            + hw[2] * (9 * c1 * c2 + 9 * c2 * c2)
            + hw[3] * (9 * c2 * c3 + 9 * c3 * c3))
    k = cfg.lattice
    strides = pass_strides(cfg)
    chan = dict(zip(cfg.strides, cfg.channels))
    track = n_points * 4 * cfg.feature_anchor_dim  # frame-to-frame templates of the levels in use
    for s in strides:
        ch = chan[s]
        track += n_points * (k * ch * 4 + 2 * k * ch + k * 2)  # lattice samples, 2 score maps, soft-argmax
        track += n_points * ((2 * k + cfg.hidden) * cfg.mlp + cfg.mlp * cfg.mlp + cfg.mlp * (2 + cfg.hidden))
    track += n_points * ((2 * k + cfg.hidden + 2) * cfg.mlp + cfg.mlp)
    if cfg.subpixel_iterations:
        ch = 1 if cfg.subpixel_on == "image" else cfg.channels[0]
        side = 2 * cfg.subpixel_radius + 1
        patch = side * side
        its = cfg.subpixel_iterations
        if cfg.subpixel_on == "image" and cfg.subpixel_blur > 0:
            conv += 2 * 5 * height * width  # the separable 5-tap blur of the frame
        # Template: separable bilinear sample (2 MACs per cell), gradients, the 2x2 solve folded
        # into a (2, P) matrix; then `its` patch samples (the first at the network's estimate) and
        # residuals, and per iteration that matrix times the residual.
        track += n_points * ch * (2 * (side + 3) ** 2 + 2 * patch + 7 * patch)
        track += n_points * ch * its * (2 * (side + 1) ** 2 + patch + 2 * patch)
        if cfg.subpixel_moving_radius:
            track += n_points * ch * 2 * patch  # the window mask on the gradients
        if cfg.anchor_patch_dim:
            # The drift correction: its patch samples and residuals (it reuses the solve).
            track += n_points * cfg.subpixel_anchor_iterations * (2 * (side + 1) ** 2 + patch + 2 * patch)
    return {"pyramid": 2 * conv, "tracking": 2 * track, "total": 2 * (conv + track)}
