"""`laps-central export-dataset`: the clustered segments as Parquet/JSONL or as a LeRobotDataset
for VLA pre-training."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Write one record per segment of a clustering run's selection: cluster id, FSQ code sequence,
time span, site and device, model version, keyframe and clip paths (schema
laps.primitive-dataset/1, documented in the README and in central/dataset_export.py).
Output: <out>/segments.parquet, <out>/segments.jsonl and <out>/dataset.json (run, row count,
cluster sizes, media root). Paths are relative to the media folder unless --absolute-paths.

--format lerobot writes a LeRobotDataset (layout v3.0: meta/info.json, meta/tasks.parquet,
meta/episodes/, data/, videos/) into <out>, which must not hold one already: one episode per
segment the run assigned, one frame per model step at the model fps, the task "primitive <id>"
(task_index = cluster id), the FSQ code as the int64 feature latent_action, and the keyframes and
clip frames as the video observation.images.camera (steps without a picture repeat the nearest
one; the feature image_source says which). --video-codec picks the MP4 codec: mpeg4 (fast) or
vp9 (also plays in a browser). Needs a clustering run: `laps-central cluster` first."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-dataset", help="export clustered segments as Parquet/JSONL or a LeRobotDataset",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central export-dataset --config central.toml --out dataset/ --run latest")
    p.add_argument("--config", required=True, help="central TOML configuration")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--run", default="latest", help="clustering run id, or 'latest' (default: %(default)s)")
    p.add_argument("--format", default="parquet,jsonl",
                   help="comma-separated: parquet, jsonl, lerobot (default: %(default)s)")
    p.add_argument("--video-codec", default="mpeg4", choices=("mpeg4", "vp9"),
                   help="MP4 codec of the lerobot videos (default: %(default)s)")
    p.add_argument("--clustered-only", action="store_true",
                   help="leave out segments the run did not assign (no codes, or stored after the run)")
    p.add_argument("--absolute-paths", action="store_true", help="write absolute keyframe/clip paths")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from central.config import load_central_config
    from central.dataset_export import FORMATS, export_dataset
    from central.lerobot_export import export_lerobot
    from central.store_protocol import open_store
    from edge.errors import ConfigError

    formats = tuple(f.strip() for f in args.format.split(",") if f.strip())
    unknown = [f for f in formats if f not in (*FORMATS, "lerobot")]
    if unknown or not formats:
        raise ConfigError(f"--format {args.format!r}: {', '.join(unknown) or 'nothing'} is not a format; "
                          f"use parquet, jsonl and/or lerobot, comma-separated")
    config = load_central_config(args.config)
    tables = tuple(f for f in formats if f != "lerobot")
    with open_store(config.store) as store:
        if "lerobot" in formats:
            ds = export_lerobot(store, config.media_dir, args.out, run_id=args.run, codec=args.video_codec,
                                progress=not args.quiet)
            left = sum(ds["left_out"].values())
            video = ds["video"]
            print(f"exported {ds['episodes']} segments of run {ds['run_id']} (k = {ds['k']}, model "
                  f"{ds['model_version']}) as a LeRobotDataset v3.0 to {args.out}: {ds['frames']} frames at "
                  f"{ds['fps']} fps, " + (f"video {video['width']}x{video['height']} {video['codec']}" if video
                                          else "no video (no keyframes or clips were uploaded)")
                  + (f"; left out {left} segments the run did not assign" if left else ""))
        if tables:
            info = export_dataset(store, config.media_dir, args.out, run_id=args.run, formats=tables,
                                  clustered_only=args.clustered_only, absolute_paths=args.absolute_paths,
                                  progress=not args.quiet)
            print(f"exported {info['rows']} segments of run {info['run_id']} (k = {info['k']}, model "
                  f"{info['model_version']}) to {args.out}: {', '.join(info['files'])}")
    return 0
