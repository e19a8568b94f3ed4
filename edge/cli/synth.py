"""`laps-edge synth`: write a generated workstation recording as MP4 + ground-truth JSON."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="write a generated workstation video with its ground truth",
        description=(
            "Render the synthetic workstation (hands performing assembly cycles of reach, grasp, "
            "transport, insert, screw, inspect and put_aside over a textured bench) to "
            "DIR/synthetic-seed<SEED>.mp4 and its ground truth (per-frame labels, primitive "
            "segments) to DIR/synthetic-seed<SEED>.json. With --tracks, also the exact "
            "trajectories of a 20x20 grid (re-seeded every 16 frames) to ...-tracks.npz with keys "
            "positions (T,N,2) float32 px (x, y), visible (T,N) bool, fps."
        ),
    )
    p.add_argument("--seed", type=int, default=7, help="scenario seed (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=2.0, help="length in minutes (default: %(default)s)")
    p.add_argument("--nuisances", default="all",
                   help="'all', 'none' or a comma list of noise, flicker, drift, shake, blur, "
                        "compression, distractor (default: %(default)s)")
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default: %(default)s)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default: %(default)s)")
    p.add_argument("--hands", type=int, choices=(1, 2), help="number of hands (default: from the seed)")
    p.add_argument("--rests", type=float, default=0.5,
                   help="probability of a rest after a primitive, else a direct transition (default: %(default)s)")
    p.add_argument("--tracks", action="store_true", help="also write the exact grid trajectories (.npz)")
    p.add_argument("--out", default="out/synthetic", help="output directory (default: %(default)s)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from edge.sources.synthetic import _size
    from edge.errors import ConfigError
    from edge.synthetic import Nuisances, SyntheticWorkstation, write_video
    from edge.tracking.base import grid_points

    try:
        size = _size(args.size)
    except ValueError:
        raise ConfigError(f"--size {args.size!r} is not WIDTHxHEIGHT; use e.g. 640x480") from None
    ws = SyntheticWorkstation(seed=args.seed, minutes=args.minutes, fps=args.fps, size=size,
                              nuisances=Nuisances.parse(args.nuisances), hands=args.hands,
                              rest_fraction=args.rests)
    out = Path(args.out)
    stem = f"synthetic-seed{args.seed}"
    mp4, js = out / f"{stem}.mp4", out / f"{stem}.json"
    write_video(ws, mp4, js, progress=True)
    gt = ws.ground_truth
    print(f"{ws.n_frames} frames ({ws.minutes:g} min at {ws.fps:g} fps, {size[0]}x{size[1]}), "
          f"{len(gt.segments)} primitive segments of {len({s[2] for s in gt.segments})} kinds, "
          f"nuisances: {ws.nuisances.spec()}")
    print(f"video:        {mp4}\nground truth: {js}")
    if args.tracks:
        window = 16
        grid = grid_points(size[0], size[1], 20)
        positions, visible = [], []
        for start in range(0, ws.n_frames, window):
            frames = np.arange(start, min(start + window, ws.n_frames))
            pos, vis = ws.trajectories(grid, start, frames)
            positions.append(pos)
            visible.append(vis)
        tracks = out / f"{stem}-tracks.npz"
        np.savez_compressed(tracks, positions=np.concatenate(positions), visible=np.concatenate(visible),
                            fps=ws.fps, reseed_every=window)
        print(f"tracks:       {tracks}")
    return 0
