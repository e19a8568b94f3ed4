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
  each level (stride 8 -> 1, then once more at stride 1) the current features are sampled on a
  (2r+1)^2 lattice of `stride`-spaced offsets around the estimate; a soft-argmax over the
  frame-to-frame scores moves the estimate (a strong prior, gated to 0 at initialisation so random
  features do not throw points around) and a small per-level MLP over both score maps and the
  point's hidden state adds a correction. Stride 8 with r = 3
  reaches +-24 px before the velocity prior, stride 1 resolves sub-pixel motion.
- **Sub-pixel stage** (no weights): inverse-compositional Gauss-Newton, i.e. Lucas-Kanade, on
  the standardised frame around the network's estimate (15x15 Gaussian-weighted patch, 2
  iterations, kept only where the patch lies in the frame and it matches the template better).
  The learnt part finds the point robustly (blur, fast motion, low texture); this stage makes it
  as precise as LK where the image allows it. It runs inside the graph (Gather + arithmetic),
  so TensorRT runs it too.
- **Visibility head**: an MLP over the finest score maps and the hidden state; its logit says
  whether this step's estimate is reliable (trained to predict "scene-visible and within 2 px").
- **Stateless graph**: everything that persists between frames is an input and an output —
  the previous frame's four feature maps and standardised frame, points (N, 2), velocity (N, 2),
  hidden (N, H) and the anchors (N, sum C). A `fresh` (N, 1) input flags points seeded or re-seeded on the previous
  frame: their anchor is taken now and their hidden state and velocity restart at zero.

174,829 parameters (far under the ~2 M budget: a wider pyramid costs CPU time, and the speed
target is <= 3x LK on ORT CPU) and 0.47 GFLOPs per frame at N = 400, 320x240 (`flops_per_frame`:
0.33 in the pyramid, 0.14 in tracking).

Coordinates: (x, y) pixels of the frame given to the tracker, origin at the top-left pixel's
centre (edge.tracking.base). The feature map of stride s has pixel j at image pixel s * j.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class StudentConfig:
    """Architecture of the student (all recorded in checkpoints and in the ONNX metadata).

    channels: feature channels per level (strides 1, 2, 4, 8). radius: correlation lattice
    half-width in cells of each level. hidden: per-point state size. mlp: width of the per-level
    refinement MLPs. fine_iterations: extra refinement passes at stride 1 after the pyramid.
    subpixel_iterations, subpixel_radius, subpixel_on: the weight-free Gauss-Newton (LK) stage
    after the network (`subpixel_refine`): iterations (0 = off), half-width of its patch, and
    what it matches: "image" (the standardised frame, carried as a 5th state map) or "features"
    (the stride-1 features). Chosen on VALIDATION seed 502 (EPE median 0.32 -> 0.20 px, p90 0.84
    -> 0.67 px) against its CPU cost (+~8 ms per frame at N = 400): 2 iterations, r = 7, image.
    """

    channels: tuple[int, ...] = (8, 16, 32, 32)
    radius: int = 3
    hidden: int = 32
    mlp: int = 96
    fine_iterations: int = 1
    subpixel_iterations: int = 2
    subpixel_radius: int = 7
    subpixel_on: str = "image"
    strides: tuple[int, ...] = field(default=(1, 2, 4, 8))

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
    def anchor_dim(self) -> int:
        return int(sum(self.channels))

    @property
    def lattice(self) -> int:
        return (2 * self.radius + 1) ** 2


class FeaturePyramid(nn.Module):
    """Grey frame (B, 1, H, W) float 0..255 -> 4 L2-normalised maps at strides 1, 2, 4, 8, and with
    `with_image` a 5th: the standardised frame itself (for the sub-pixel refinement)."""

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

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        # Per-frame standardisation: a global gain/offset (flicker, drift) cancels here.
        mean = image.mean(dim=(2, 3), keepdim=True)
        std = (image - mean).pow(2).mean(dim=(2, 3), keepdim=True).add(1e-2).sqrt()
        x = (image - mean) / std
        f0 = self.level0(x)
        f1 = self.level1(f0)
        f2 = self.level2(f1)
        f3 = self.level3(f2)
        maps = [F.normalize(f, dim=1, eps=1e-6) for f in (f0, f1, f2, f3)]
        return maps + [x] if self.with_image else maps


def flatten_map(feat: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B * h * w, C): one row per pixel, the layout `gather_bilinear` reads."""
    b, c, h, w = feat.shape
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
    gx = base[..., 0:1] + steps  # (B, N, size)
    gy = base[..., 1:2] + steps
    gx = gx.unsqueeze(2).expand(-1, -1, size, -1)  # (B, N, size_y, size_x)
    gy = gy.unsqueeze(3).expand(-1, -1, -1, size)
    inside = (gx >= 0) & (gx <= w - 1) & (gy >= 0) & (gy <= h - 1)
    ix = gx.clamp(0, w - 1).to(torch.int64)
    iy = gy.clamp(0, h - 1).to(torch.int64)
    batch = (torch.arange(b, device=xy.device, dtype=torch.int64) * (h * w)).view(b, 1, 1, 1)
    index = (batch + iy * w + ix).reshape(b, -1)
    vectors = flat[index].reshape(b, xy.shape[1], size * size, flat.shape[1])
    # Where, not a Cast to float: the FP16 converter leaves a Cast's target type at float32.
    one = torch.ones((), dtype=flat.dtype, device=flat.device)
    mask = torch.where(inside, one, torch.zeros_like(one)).reshape(b, xy.shape[1], size * size, 1)
    return vectors, mask, frac


def gather_patch(flat: torch.Tensor, shape: tuple[int, int, int], xy: torch.Tensor, size: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Like `gather_bilinear` but for large patches: the lattice is shifted as a whole to lie in
    the map (one index add per point instead of per-cell clamps, ~3x faster on ONNX Runtime CPU),
    and a per-point flag (B, N, 1) says whether it had to be (the patch then is not the point's)."""
    b, h, w = shape
    r = (size - 2) // 2
    base = torch.floor(xy)
    frac = xy - base
    x0, y0 = base[..., 0:1] - r, base[..., 1:2] - r
    inside = (x0 >= 0) & (x0 + size - 1 <= w - 1) & (y0 >= 0) & (y0 + size - 1 <= h - 1)
    x0 = x0.clamp(0, w - size).to(torch.int64)
    y0 = y0.clamp(0, h - size).to(torch.int64)
    steps = torch.arange(size, device=xy.device, dtype=torch.int64)
    table = (steps[:, None] * w + steps[None, :]).reshape(1, 1, size * size)
    batch = (torch.arange(b, device=xy.device, dtype=torch.int64) * (h * w)).view(b, 1, 1)
    index = (batch + y0 * w + x0 + table).reshape(b, -1)
    vectors = flat[index].reshape(b, xy.shape[1], size * size, flat.shape[1])
    return vectors, frac, inside


def blend(values: torch.Tensor, frac: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear blend of values on a size x size integer lattice (B, N, size*size[, C]) to the
    (size-1)^2 lattice shifted by frac (B, N, 2) -> (B, N, (size-1)^2[, C])."""
    extra = values.shape[3:]
    v = values.reshape(values.shape[0], values.shape[1], size, size, *extra)
    fx = frac[..., 0].reshape(frac.shape[0], frac.shape[1], 1, 1, *([1] * len(extra)))
    fy = frac[..., 1].reshape(frac.shape[0], frac.shape[1], 1, 1, *([1] * len(extra)))
    top = v[:, :, :-1, :-1] * (1 - fx) + v[:, :, :-1, 1:] * fx
    bottom = v[:, :, 1:, :-1] * (1 - fx) + v[:, :, 1:, 1:] * fx
    out = top * (1 - fy) + bottom * fy
    return out.reshape(values.shape[0], values.shape[1], (size - 1) ** 2, *extra)


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


def subpixel_refine(prev_flat: torch.Tensor, flat: torch.Tensor, shape: tuple[int, int, int], p0: torch.Tensor,
                    est: torch.Tensor, radius: int, iterations: int, max_step_px: float = 1.0) -> torch.Tensor:
    """Inverse-compositional Gauss-Newton (Lucas-Kanade) on the finest feature map, no weights.

    The template is the previous map's (2r+1)^2 patch at p0 (B, N, 2); its central-difference
    gradients give the 2x2 normal matrix once; each iteration samples the current map at `est`,
    and moves est by -H^-1 J^T (I - T) (limited to `max_step_px` per iteration; no move where H
    is near singular, i.e. on a flat patch). Features are unit vectors per pixel, so a gain change
    does not bias the step. Returns the refined est (B, N, 2).
    """
    b, h, w = shape
    size = 2 * radius + 4  # lattice for a (2r+3)^2 patch: one extra ring for the gradients
    n = p0.shape[1]
    vec, frac, usable = gather_patch(prev_flat, (b, h, w), p0, size)
    tpl = blend(vec, frac, size).reshape(b, n, 2 * radius + 3, 2 * radius + 3, -1)
    gx = (tpl[:, :, 1:-1, 2:] - tpl[:, :, 1:-1, :-2]) * 0.5
    gy = (tpl[:, :, 2:, 1:-1] - tpl[:, :, :-2, 1:-1]) * 0.5
    core = tpl[:, :, 1:-1, 1:-1]
    # Centre-weighted window (Gaussian, sigma = r / 2): a patch that straddles an object border
    # pulls less towards the other side.
    r = torch.arange(-radius, radius + 1, dtype=p0.dtype, device=p0.device)
    g1 = torch.exp(-0.5 * (r / (0.5 * radius)) ** 2)
    weight = (g1[:, None] * g1[None, :]).reshape(1, 1, 2 * radius + 1, 2 * radius + 1, 1)
    gx, gy = gx * weight.sqrt(), gy * weight.sqrt()
    core_w = core * weight.sqrt()
    hxx = (gx * gx).sum(dim=(2, 3, 4))
    hxy = (gx * gy).sum(dim=(2, 3, 4))
    hyy = (gy * gy).sum(dim=(2, 3, 4))
    det = hxx * hyy - hxy * hxy
    trace = hxx + hyy
    # Well-conditioned patches only (smallest eigenvalue not tiny against the largest).
    ok = det > 1e-3 * trace * trace + 1e-9
    inv_det = torch.where(ok, 1.0 / torch.where(ok, det, torch.ones_like(det)), torch.zeros_like(det))
    inner = 2 * radius + 2

    def residual(at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cv, cf, ok_at = gather_patch(flat, (b, h, w), at, inner)
        cur = blend(cv, cf, inner).reshape(b, n, 2 * radius + 1, 2 * radius + 1, -1)
        return cur * weight.sqrt() - core_w, ok_at

    start = est
    diff, _ = residual(est)
    start_cost = (diff * diff).sum(dim=(2, 3, 4))
    for _ in range(iterations):
        bx = (gx * diff).sum(dim=(2, 3, 4))
        by = (gy * diff).sum(dim=(2, 3, 4))
        dx = (hyy * bx - hxy * by) * inv_det
        dy = (hxx * by - hxy * bx) * inv_det
        step = torch.stack([dx, dy], dim=-1).clamp(-max_step_px, max_step_px)
        est = est - step
        diff, ok_at = residual(est)
        usable = usable & ok_at
    # Keep the refinement only where every patch lay inside the frame and it matches the
    # template better than the network's estimate.
    better = ((diff * diff).sum(dim=(2, 3, 4)) < start_cost).unsqueeze(-1) & usable
    return torch.where(better, est, start)


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

    image (B, 1, H, W) float32 grey 0..255; prev_feats: 4 maps from the previous call (B, C_l,
    ceil(H/s), ceil(W/s)); points, velocity (B, N, 2) px; hidden (B, N, H_s); anchor (B, N, sum C);
    fresh (B, N, 1) 1.0 where the point was (re-)seeded on the previous frame.
    Returns dict: points, velocity, hidden, anchor, visibility_logit (B, N), feats (list of 4),
    and `estimates` (list of (B, N, 2), one per refinement pass, for the loss).
    """

    def __init__(self, cfg: StudentConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or StudentConfig()
        c = self.cfg
        if c.subpixel_on not in ("features", "image"):
            raise ValueError(f"subpixel_on must be 'features' or 'image', got {c.subpixel_on!r}")
        self.pyramid = FeaturePyramid(c.channels, with_image=c.subpixel_on == "image")
        passes = len(c.strides) + c.fine_iterations
        self.refiners = nn.ModuleList(Refiner(c.lattice, c.hidden, c.mlp) for _ in range(passes))
        self.visibility = nn.Sequential(nn.Linear(2 * c.lattice + c.hidden + 2, c.mlp), nn.ReLU(),
                                        nn.Linear(c.mlp, 1))
        r = torch.arange(-c.radius, c.radius + 1, dtype=torch.float32)
        gy, gx = torch.meshgrid(r, r, indexing="ij")
        self.register_buffer("unit_offsets", torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), persistent=False)

    @property
    def n_maps(self) -> int:
        """Maps the pyramid returns (and the exported graph carries as state)."""
        return len(self.cfg.strides) + (1 if self.cfg.subpixel_on == "image" else 0)

    def pass_strides(self) -> list[int]:
        """Stride of each refinement pass, coarse to fine."""
        return list(reversed(self.cfg.strides)) + [self.cfg.strides[0]] * self.cfg.fine_iterations

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        return self.pyramid(image)

    def forward(self, image, prev_feats, points, velocity, hidden, anchor, fresh) -> dict:
        feats = self.pyramid(image)
        return self.track(feats, prev_feats, points, velocity, hidden, anchor, fresh)

    def track(self, feats, prev_feats, points, velocity, hidden, anchor, fresh) -> dict:
        """The step given this frame's features (training computes them for a whole clip at once)."""
        c = self.cfg
        keep = 1.0 - fresh
        hidden = hidden * keep
        velocity = velocity * keep
        # Frame-to-frame templates: previous features at previous positions, one per level.
        t_f2f = [sample_points(f, points, s) for f, s in zip(prev_feats, c.strides)]
        flats = [flatten_map(f) for f in feats]  # once per level, shared by every pass
        anchor = fresh * torch.cat(t_f2f, dim=-1) + keep * anchor
        t_anchor = list(torch.split(anchor, list(c.channels), dim=-1))
        level_of = {s: i for i, s in enumerate(c.strides)}
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
            lv = len(c.strides) if c.subpixel_on == "image" else level_of[c.strides[0]]
            est = subpixel_refine(flatten_map(prev_feats[lv]), flats[lv], tuple(feats[lv].shape[:1]) + tuple(
                feats[lv].shape[2:]), points, est, c.subpixel_radius, c.subpixel_iterations)
            estimates.append(est)
        return {"points": est, "velocity": est - points, "hidden": hidden, "anchor": anchor,
                "visibility_logit": vis_logit, "feats": feats, "estimates": estimates}

    def initial_state(self, batch: int, n_points: int, height: int, width: int,
                      device: torch.device | None = None) -> dict:
        """Zero state tensors of the right shapes (features of a blank frame are zeros)."""
        c = self.cfg
        feats = [torch.zeros(batch, ch, -(-height // s), -(-width // s), device=device)
                 for ch, s in zip(c.channels, c.strides)]
        if c.subpixel_on == "image":
            feats.append(torch.zeros(batch, 1, height, width, device=device))
        return {"feats": feats, "velocity": torch.zeros(batch, n_points, 2, device=device),
                "hidden": torch.zeros(batch, n_points, c.hidden, device=device),
                "anchor": torch.zeros(batch, n_points, c.anchor_dim, device=device)}


class StudentExport(nn.Module):
    """Batch-1 wrapper with flat tensors, the layout of the exported graph
    (`edge.tracking.onnx_student.input_names`): image (1, 1, H, W), the previous call's maps,
    points/velocity (N, 2), hidden (N, H), anchor (N, A), fresh (N, 1).
    """

    def __init__(self, model: StudentTracker) -> None:
        super().__init__()
        self.model = model
        self.n_maps = model.n_maps

    def forward(self, image, *args):
        maps = list(args[:self.n_maps])
        points, velocity, hidden, anchor, fresh = args[self.n_maps:]
        out = self.model(image, maps, points[None], velocity[None], hidden[None], anchor[None], fresh[None])
        return (out["points"][0], out["velocity"][0], out["hidden"][0], out["anchor"][0],
                out["visibility_logit"][0], *out["feats"])


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
    strides = list(reversed(cfg.strides)) + [cfg.strides[0]] * cfg.fine_iterations
    chan = dict(zip(cfg.strides, cfg.channels))
    track = n_points * 4 * sum(cfg.channels)  # frame-to-frame templates
    for s in strides:
        ch = chan[s]
        track += n_points * (k * ch * 4 + 2 * k * ch + k * 2)  # lattice samples, 2 score maps, soft-argmax
        track += n_points * ((2 * k + cfg.hidden) * cfg.mlp + cfg.mlp * cfg.mlp + cfg.mlp * (2 + cfg.hidden))
    track += n_points * ((2 * k + cfg.hidden + 2) * cfg.mlp + cfg.mlp)
    if cfg.subpixel_iterations:
        ch = 1 if cfg.subpixel_on == "image" else cfg.channels[0]
        patch = (2 * cfg.subpixel_radius + 1) ** 2
        # template + gradients once, then per iteration a patch sample, residual and 2 dot products
        track += n_points * ch * ((2 * cfg.subpixel_radius + 3) ** 2 * 4 + 5 * patch)
        track += n_points * ch * (cfg.subpixel_iterations + 1) * (patch * 4 + 3 * patch)
    return {"pyramid": 2 * conv, "tracking": 2 * track, "total": 2 * (conv + track)}
