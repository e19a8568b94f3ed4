"""`laps-central demo`: a broker, the ingest and a few devices on this machine, end to end."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Runs a whole fleet on this machine and leaves its results in --workdir:

  1. Mosquitto on a free loopback port (mosquitto must be installed)
  2. laps-central ingest (segments over MQTT, keyframes and clips over HTTP)
  3. --devices devices (laps-edge run --config), each on its own synthetic workstation
     recording of --minutes, replayed as fast as the CPU allows
  4. waits until every device has finished and central acknowledged all it sent
  5. clusters the segments, writes the report and exports the dataset

Every process it started is stopped again, by its pid, also on an error or Ctrl-C. The work
folder keeps the configuration files (the same the README's "A fleet on one machine" walks
through by hand), the logs of every process, the store, report/report.html and dataset/.
Afterwards: laps-central status --config WORKDIR/central.toml (and runs, cluster, ...)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a broker, the ingest and devices on this machine; cluster, report, dataset",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central demo --devices 3 --minutes 0.5 --workdir laps-demo")
    p.add_argument("--workdir", default="laps-demo",
                   help="folder for configs, logs, store, report and dataset; must be new, empty, or an earlier "
                        "demo's (cleared) (default: %(default)s)")
    p.add_argument("--devices", type=int, default=3, help="simulated workstations, 1-8 (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=0.5,
                   help="length of each device's synthetic recording (default: %(default)s)")
    p.add_argument("--model", default="default",
                   help="the devices' model directory; 'default' = the shipped model (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="give up when the devices have not finished after this long (default: %(default)s)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from central.demo import run_demo

    result = run_demo(args.workdir, devices=args.devices, minutes=args.minutes, model=args.model,
                      timeout_s=args.timeout)
    width = max(len(n) for n in result.segments)
    print("\nper device:")
    for name, n in result.segments.items():
        print(f"  {name.ljust(width)}  {n} segments, {result.batches.get(name, 0)} keyframe batch(es)")
    print(f"\nreport:  {result.report}")
    print(f"dataset: {result.dataset} (segments.parquet, segments.jsonl, dataset.json)")
    print(f"configs and logs: {result.workdir}")
    print(f"next:    laps-central status --config {result.workdir / 'central.toml'}")
    return 0
