"""`laps-edge synth`: write a generated workstation recording as MP4 + ground-truth JSON."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Render the synthetic workstation (an overhead view of a bench where one or two hands repeat
assembly cycles of reach, grasp, transport, insert, screw, inspect and put_aside) to
DIR/synthetic-seed<SEED>.mp4 (mp4v) and its ground truth to DIR/synthetic-seed<SEED>.json
(per-frame labels, primitive segments with start/end seconds; see edge/synthetic/groundtruth.py).

With --tracks, also DIR/synthetic-seed<SEED>-tracks.npz: the exact trajectories of a 20x20 grid
seeded at frame 0 and re-seeded every 16 frames. Keys: positions (T, N, 2) float32 (x, y) pixels
(origin at the top-left pixel's centre), visible (T, N) bool, fps, window (16), seed_frames (the
frame each grid was seeded at; row t belongs to the grid seeded at 16 * (t // 16)), size.

Seed policy: training 100-199, validation 500-599, held-out benchmark 900-999.

Example: laps-edge synth --seed 7 --minutes 2 --nuisances all --out out/synthetic
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth", help="write a generated workstation video with its exact ground truth",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--seed", type=int, default=7, help="scenario seed, an integer >= 0 (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=2.0, help="length in minutes (default: %(default)s)")
    p.add_argument("--nuisances", default="all",
                   help="'all', 'none' or a comma list of noise, flicker, drift, shake, blur, compression, "
                        "distractor (default: %(default)s)")
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT in pixels, even numbers (default: %(default)s)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default: %(default)s)")
    p.add_argument("--hands", type=int, choices=(1, 2), help="number of hands (default: drawn from the seed)")
    p.add_argument("--rests", type=float, default=0.5,
                   help="probability of a rest between two primitives, else a direct transition "
                        "(default: %(default)s)")
    p.add_argument("--distractor", choices=("conveyor", "passerby"),
                   help="what moves in the top strip (default: drawn from the seed)")
    p.add_argument("--tracks", action="store_true", help="also write the exact 20x20 grid trajectories (.npz)")
    p.add_argument("--out", default="out/synthetic", help="output directory (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge.errors import ConfigError
    from edge.sources.synthetic import parse_size
    from edge.synthetic import Nuisances, SyntheticWorkstation, write_tracks, write_video

    try:
        size = parse_size(args.size)
    except ValueError:
        raise ConfigError(f"--size {args.size!r} is not WIDTHxHEIGHT; use e.g. --size 640x480") from None
    ws = SyntheticWorkstation(seed=args.seed, minutes=args.minutes, fps=args.fps, size=size,
                              nuisances=Nuisances.parse(args.nuisances), hands=args.hands,
                              rest_fraction=args.rests, distractor=args.distractor)
    out = Path(args.out)
    stem = f"synthetic-seed{args.seed}"
    mp4, js = out / f"{stem}.mp4", out / f"{stem}.json"
    write_video(ws, mp4, js, progress=not args.no_progress)
    gt = ws.ground_truth
    kinds = sorted({lab for _, _, lab in gt.segments}, key=gt.label_names.index)
    direct = sum(1 for p in gt.preceded_by if p == "direct")
    print(f"{ws.n_frames} frames ({ws.duration_s:.1f} s at {ws.fps:g} fps, {size[0]}x{size[1]}); "
          f"{len(gt.segments)} primitive segments of {len(kinds)} kinds ({', '.join(kinds)}); "
          f"{direct} direct transitions; {ws.hands} hand(s), distractor {ws.layout.distractor}, "
          f"nuisances {ws.nuisances.spec()}")
    print(f"video:        {mp4}")
    print(f"ground truth: {js}")
    if args.tracks:
        tracks = write_tracks(ws, out / f"{stem}-tracks.npz")
        print(f"tracks:       {tracks}")
    return 0
