"""`laps-central devices add|revoke|list`: per-device credentials and the broker files made from them."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

DESCRIPTION = """\
Every device authenticates as itself: on MQTT with user name = its device id and its own
password, on the batch endpoint with its own token (or a client certificate whose common name
is its id). This command keeps the registry of devices (and of the central services' own MQTT
users) in [devices] dir (default <data_dir>/devices) and writes from it:

  mosquitto.passwd   Mosquitto password_file (PBKDF2-SHA512; mosquitto_passwd -U when installed)
  mosquitto.acl      Mosquitto acl_file: a device may write only laps/v1/+/<its id>/{segments,
                     state,batches,metrics,ota/status} and read only its own acks and ota/desired

  add NAME --site S       a device: new MQTT password and batch token, written (0600) to
                          --out as NAME.mqtt.cred (mqtt.credentials_file) and NAME.upload.token
                          (upload.token_file); shown nowhere else and stored only as hashes
  add NAME --role central the ingest/rollout's own MQTT user (reads segments, writes acks)
  add NAME --role viewer  read-only MQTT user (laps-edge tail)
  revoke NAME             the name leaves the password file, its token stops working
  list                    every name, its role, site and state

Once any device is registered, laps-central ingest accepts segments only from registered
devices on their registered site, and the batch endpoint only each device's own token under
its own path (it re-reads the registry by itself). Mosquitto must re-read its files after add
and revoke: kill -HUP <mosquitto pid> (systemctl reload mosquitto)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("devices", help="per-device MQTT and batch credentials; Mosquitto password and ACL files",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central devices add ws-07 --site plant-a --config central.toml "
                              "--out /secure/ws-07/")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser("add", help="register a device (or a central/viewer MQTT user) and issue its secrets",
                             description="Register NAME and write its new MQTT password and batch token to --out.")
    add.add_argument("name", help="the device id ([device] id of its edge.toml), or the service's user name")
    add.add_argument("--config", required=True, help="central TOML configuration ([devices] dir)")
    add.add_argument("--site", default="", help="the device's site ([device] site); required for --role device")
    add.add_argument("--role", default="device", choices=("device", "central", "viewer"),
                     help="device (default), central (ingest and rollout) or viewer (read-only)")
    add.add_argument("--out", default=".", help="folder for NAME.mqtt.cred and NAME.upload.token (default: .)")
    add.add_argument("--hasher", default="auto", choices=("auto", "mosquitto_passwd", "builtin"),
                     help="password hashing: mosquitto_passwd -U when installed (auto), or built in "
                          "(the same PBKDF2-SHA512 format)")
    add.set_defaults(func=handle_add)
    rev = actions.add_parser("revoke", help="revoke a name: no MQTT login, no batch uploads",
                             description="Revoke NAME: it leaves the password file and its token stops working.")
    rev.add_argument("name")
    rev.add_argument("--config", required=True, help="central TOML configuration ([devices] dir)")
    rev.set_defaults(func=handle_revoke)
    lst = actions.add_parser("list", help="every registered name, its role, site and state",
                             description="List the registry: name, role, site, added, revoked.")
    lst.add_argument("--config", required=True, help="central TOML configuration ([devices] dir)")
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    lst.set_defaults(func=handle_list)
    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def handle_add(args: argparse.Namespace) -> int:
    from central.config import load_central_config
    from central.devices import DeviceRegistry
    from edge.errors import ConfigError

    config = load_central_config(args.config)
    out = Path(args.out)
    cred, token = out / f"{args.name}.mqtt.cred", out / f"{args.name}.upload.token"
    for path in (cred, token):
        if path.exists():
            raise ConfigError(f"{path} already exists; move it away or choose another --out (secrets are never "
                              "overwritten)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out} cannot be created ({err.strerror}); choose a writable folder") from None
    registry = DeviceRegistry(config.devices_dir)
    issued = registry.add(args.name, role=args.role, site=args.site, hasher=args.hasher)
    _write_secret(cred, f"{issued.name}:{issued.mqtt_password}\n")
    if args.role == "device":
        _write_secret(token, issued.token + "\n")
    print(f"added {args.role} {args.name}" + (f" at site {args.site}" if args.site else ""))
    print(f"  MQTT credentials: {cred}  (device: [mqtt] credentials_file; central: [mqtt] credentials_file)")
    if args.role == "device":
        print(f"  batch token:      {token}  (device: [upload] token_file)")
    _print_broker_hint(registry)
    return 0


def handle_revoke(args: argparse.Namespace) -> int:
    from central.config import load_central_config
    from central.devices import DeviceRegistry

    config = load_central_config(args.config)
    registry = DeviceRegistry(config.devices_dir)
    entry = registry.revoke(args.name)
    print(f"revoked {entry.role} {entry.name} at {entry.revoked}; central refuses its batches now")
    _print_broker_hint(registry)
    return 0


def handle_list(args: argparse.Namespace) -> int:
    from central.config import load_central_config
    from central.devices import read_registry

    config = load_central_config(args.config)
    entries = list(read_registry(config.devices_dir / "registry.json").values())
    if args.json:
        for e in entries:
            print(json.dumps({"name": e.name, "role": e.role, "site": e.site, "added": e.added,
                              "revoked": e.revoked or None}))
        return 0
    if not entries:
        print(f"no devices registered in {config.devices_dir} (central accepts any device on its own topic)")
        return 0
    rows = [("NAME", "ROLE", "SITE", "ADDED", "STATE")]
    rows += [(e.name, e.role, e.site or "-", e.added, f"revoked {e.revoked}" if e.revoked else "active")
             for e in entries]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[4])
    return 0


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def _print_broker_hint(registry) -> None:
    print(f"  Mosquitto: password_file {registry.passwd_path}")
    print(f"             acl_file {registry.acl_path}")
    print("             allow_anonymous false")
    print("  then make the broker re-read them: kill -HUP <mosquitto pid> (systemctl reload mosquitto)")
