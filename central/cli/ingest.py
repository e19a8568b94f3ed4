"""`laps-central ingest`: receive the fleet's segments (MQTT) and batches (HTTP) into the store."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Subscribe to every device's segment topic with an MQTT v5 shared subscription
($share/<group>/laps/v1/+/+/segments): several ingest workers (processes or machines with the
same [mqtt] group) split the messages between them. Each message is validated against the
laps.segment/2 schema (or /1) and its caps (a bad one goes to the quarantine table with the reason, the
worker keeps going; so does one the store refuses at commit), de-duplicated by its canonical
segment_id, committed to the store (SQLite, or PostgreSQL shared by several ingest hosts:
[store] url), and only then acknowledged to the broker and, with a
laps.ack/1 on laps/v1/<site>/<device>/acks, to the device, which keeps each segment until
then. Broker restarts are survived (persistent session, reconnect, the devices' re-sends).
Once `laps-central devices add` has registered devices, only they are accepted, each on its
registered site.

Also serves the batch endpoint the devices upload keyframes and clips to,
PUT /v1/batches/<device>/<sha256> (idempotent, hash-checked, per-device token or mutual TLS;
files are linked to their segments), unless [http] enabled = false or --no-http.

It also keeps each device's newest retained state (online/offline) for `laps-central status`,
and registers the model this installation ships in [paths] models_dir.

Runs until SIGTERM or Ctrl-C. Totals are logged every --stats-interval seconds."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="store the fleet's segments (MQTT) and keyframe batches (HTTP)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central ingest --config /etc/laps-central/central.toml --workers 2\n"
                              "Print a commented config: laps-central ingest --example-config")
    p.add_argument("--config", help="central TOML configuration ([paths], [store], [mqtt], [http])")
    p.add_argument("--workers", type=int, default=1,
                   help="MQTT workers in this process, each its own client in the shared group (default: %(default)s)")
    p.add_argument("--no-http", action="store_true", help="do not serve the batch endpoint from this process")
    p.add_argument("--stats-interval", type=float, default=60.0, metavar="S",
                   help="seconds between counter log lines, at least 0.1; 0 = none (default: %(default)s)")
    p.add_argument("--example-config", action="store_true", help="print a commented example configuration and exit")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from central.config import central_config_example, load_central_config
    from edge.errors import ConfigError

    if args.example_config:
        print(central_config_example(), end="")
        return 0
    if not args.config:
        raise ConfigError("laps-central ingest needs --config FILE (print an example with --example-config)")
    if not 1 <= args.workers <= 64:
        raise ConfigError(f"--workers {args.workers} is not allowed; use 1 to 64 (more machines scale further)")
    if not (args.stats_interval == 0 or 0.1 <= args.stats_interval <= 86400):
        raise ConfigError(f"--stats-interval {args.stats_interval:g} is not allowed; give seconds from 0.1 to "
                          "86400, or 0 for no counter lines")
    from central.ingest import run_ingest

    config = load_central_config(args.config)
    return run_ingest(config, workers=args.workers, http=False if args.no_http else None,
                      stats_interval_s=args.stats_interval)
