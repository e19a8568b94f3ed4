"""`laps-edge roi`: draw a region of interest and the grid points it keeps over a frame of a source.

So an installer can check, before the device runs, that the polygon(s) cover the workstation
and leave out what moves beside it (a conveyor, an aisle). The picture shows the frame at the
source's own resolution, the polygons (yellow outline, tinted inside), the grid points that
will be tracked (green dots) and those that will not (red crosses).

The region comes from --config (the device configuration's [roi] table) or --roi (inline
polygons "x,y x,y x,y ..." in fractions of the width and height, 0..1 with y down, several
separated by ';', or a TOML file with a [roi] table). The grid is the model's (--model, or the
config's model.dir): its points per side and border margin.

Example: laps-edge roi --source 'synthetic://assembly?seed=7&minutes=0.1' \\
             --roi '0,0.16 1,0.16 1,1 0,1' --out roi.png
"""

from __future__ import annotations

import argparse

import numpy as np

#: drawing colours (BGR): outline, inside tint, tracked points, points left out
OUTLINE = (0, 255, 255)
TINT = (0, 200, 0)
KEPT = (0, 220, 0)
LEFT_OUT = (0, 0, 255)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "roi", help="draw the region of interest and the grid points it keeps over a frame of a source",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", required=True, help="what to read (as `laps-edge run --source`)")
    p.add_argument("--out", required=True, help="the picture to write (.png or .jpg)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--config", help="device configuration TOML: its [roi] table and model.dir")
    which.add_argument("--roi", help="inline polygons 'x,y x,y x,y ...' (0..1, ';' between polygons) "
                                     "or a TOML file with a [roi] table")
    p.add_argument("--model", default=None,
                   help="model directory whose grid to draw; 'default' = the shipped model, 'none' = the "
                        "velocity proxy's 20x20 grid (default: the config's model.dir, else 'default')")
    p.add_argument("--frame", type=int, default=0, help="which frame of the source to draw on (default: 0)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    import cv2

    from edge.config import load_config, load_roi
    from edge.errors import ConfigError

    if args.frame < 0:
        raise ConfigError(f"--frame {args.frame} is not allowed; give a frame number >= 0")
    out = Path(args.out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ConfigError(f"--out {out} must end in .png or .jpg (the picture's format)")
    if args.config:
        config = load_config(args.config)
        roi = config.roi.region
        if roi is None:
            raise ConfigError(f"config {args.config}: [roi] has no polygons, so the whole frame is tracked; add "
                              "e.g. polygons = [\"0,0.2 1,0.2 1,1 0,1\"] under [roi]")
        model_spec = args.model or config.model.dir
    else:
        roi = load_roi(args.roi)
        model_spec = args.model
    grid, margin = model_grid(model_spec)
    frame = read_frame(args.source, args.frame)
    picture, kept = draw_roi(frame, roi, grid, margin)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), picture):
        raise ConfigError(f"cannot write {out}; check that its folder is writable")
    print(f"{kept} of {grid * grid} grid points inside the region ({len(roi.polygons)} polygon(s)); "
          f"frame {args.frame} at {frame.shape[1]}x{frame.shape[0]}")
    print(f"picture: {out}")
    return 0


def draw_roi(frame: np.ndarray, roi, grid: int, margin: float) -> tuple[np.ndarray, int]:
    """The frame ((H, W, 3) uint8 BGR) with the region's polygons and the grid points drawn on it
    (a new array), and how many grid points lie inside. Points are placed as the tracker seeds
    them (`grid_points` at this frame's size: the same normalised places at any resolution)."""
    import cv2

    from edge.tracking.base import grid_points

    h, w = frame.shape[:2]
    polys = [np.round(p).astype(np.int32).reshape(-1, 1, 2) for p in roi.pixel_polygons(w, h)]
    tint = frame.copy()
    cv2.fillPoly(tint, polys, TINT)
    picture = cv2.addWeighted(frame, 0.75, tint, 0.25, 0.0)
    thickness = max(2, round(min(w, h) / 240))
    cv2.polylines(picture, polys, isClosed=True, color=OUTLINE, thickness=thickness, lineType=cv2.LINE_8)
    points = grid_points(w, h, grid, margin)
    inside = roi.mask(points, w, h)
    r = max(2, round(min(w, h) / 160))
    for (x, y), keep in zip(np.round(points).astype(int), inside):
        if keep:
            cv2.circle(picture, (int(x), int(y)), r, KEPT, -1, lineType=cv2.LINE_8)
        else:
            cv2.drawMarker(picture, (int(x), int(y)), LEFT_OUT, cv2.MARKER_TILTED_CROSS, 2 * r + 2, max(1, r // 2))
    return picture, int(inside.sum())


def model_grid(model_spec: str | None) -> tuple[int, float]:
    """(points per side, normalised margin) of the model's seed grid; the proxy's without a model."""
    from edge.model import load_model_directory, resolve_model_spec
    from edge.pipeline import DEFAULT_GRID

    model_dir = resolve_model_spec(model_spec)
    if model_dir is None:
        return DEFAULT_GRID, 1.0 / DEFAULT_GRID
    meta = load_model_directory(model_dir).metadata
    return int(meta.grid), float(meta.grid_margin)


def read_frame(spec: str, index: int) -> np.ndarray:
    """Frame `index` of the source at its own resolution, (H, W, 3) uint8 BGR."""
    from edge.errors import ConfigError
    from edge.sources.factory import open_source

    with open_source(spec) as source:
        for k, frame in enumerate(source):
            if k == index:
                image = frame.image
                return image if image.ndim == 3 else np.dstack([image] * 3)
    raise ConfigError(f"source {spec} ended before frame {index}; give a smaller --frame")
