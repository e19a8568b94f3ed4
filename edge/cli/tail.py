"""`laps-edge tail`: subscribe to what a device publishes and print it readably.

For an integrator checking a new installation: is the device online, are segments arriving,
what do its metrics say. Reads the broker settings from the device config (or flags), and
subscribes to `laps/v1/<site>/<device>/#` (`+` for every site/device) with a throw-away
session, so it never disturbs the device or the central ingest.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tail",
        help="print what a device publishes on MQTT (segments, state, metrics, batches)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Examples:\n"
            "  laps-edge tail --config /etc/laps-edge/edge.toml          # this device\n"
            "  laps-edge tail --host broker --site plant-a --device +    # every device of a site\n"
            "  laps-edge tail --config edge.toml --kind state --count 1  # is it online?"
        ),
    )
    p.add_argument("--config", help="device TOML: broker, TLS, credentials, site and device id")
    p.add_argument("--host", help="broker host (default: from --config, else localhost)")
    p.add_argument("--port", type=int, help="broker port (default: from --config, else 1883)")
    p.add_argument("--site", help="site id, or + for all (default: from --config, else +)")
    p.add_argument("--device", help="device id, or + for all (default: from --config, else +)")
    p.add_argument("--kind", action="append",
                   choices=("segments", "state", "metrics", "batches", "ota/desired", "ota/status"),
                   help="only these message kinds (repeatable; default: all)")
    p.add_argument("--count", type=int, default=0, help="exit after this many messages (default: run until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="exit after this many seconds (status 1 if --count was not reached)")
    p.add_argument("--json", action="store_true", help="print each message as one JSON line instead")
    p.add_argument("--tls-ca", help="CA file for a TLS broker (default: from --config)")
    p.add_argument("--username", help="broker user (default: from --config)")
    p.add_argument("--password-file", help="file holding the broker password")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import os
    import ssl
    import threading
    from dataclasses import replace

    from edge.broker import BrokerConfig, Credentials, new_client
    from edge.config import load_config
    from edge.errors import LapsError
    from edge.messages import subscription

    broker, site, device, creds = BrokerConfig(), "+", "+", Credentials("", "")
    if args.config:
        cfg = load_config(args.config)
        broker, site, device = cfg.mqtt, cfg.device.site, cfg.device.id
        creds = cfg.mqtt.credentials(cfg.origin)
    if args.host:
        broker = replace(broker, host=args.host)
    if args.tls_ca:
        broker = replace(broker, tls=replace(broker.tls, enabled=True, ca=args.tls_ca))
    if args.port:
        broker = replace(broker, port=args.port)
    host, port = broker.host, broker.effective_port
    site = args.site or site
    device = args.device or device
    if args.username:
        creds = Credentials(args.username, creds.password)
    if args.password_file:
        try:
            password = open(args.password_file, encoding="utf-8").read().splitlines()[0]
        except (OSError, IndexError) as err:
            raise LapsError(f"--password-file {args.password_file} cannot be read ({err}); give a file "
                            "whose first line is the password") from None
        creds = Credentials(creds.username, password)

    client = new_client(broker, f"laps-edge-tail-{os.getpid()}", credentials=creds)
    kinds = set(args.kind or [])
    seen = 0
    done = threading.Event()
    failure: list[str] = []

    def on_connect(c, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            failure.append(f"broker {host}:{port} refused the connection: {reason}; check the user "
                           "name/password (--config, --username, --password-file)")
            done.set()
            return
        c.subscribe(subscription(site, device, "#"), qos=1)
        print(f"# listening on {host}:{port} to {subscription(site, device, '#')}", file=sys.stderr, flush=True)

    def on_message(c, userdata, msg) -> None:
        nonlocal seen
        line = format_message(msg.topic, bytes(msg.payload), bool(msg.retain), as_json=args.json)
        if line is None or (kinds and _kind(msg.topic) not in kinds):
            return
        print(line, flush=True)
        seen += 1
        if args.count and seen >= args.count:
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30, clean_start=True)
    except ssl.SSLError as err:
        raise LapsError(f"TLS handshake with {host}:{port} failed ({err.reason or err}); pass the broker's CA "
                        "with --tls-ca or mqtt.tls.ca") from None
    except OSError as err:
        raise LapsError(f"cannot reach the MQTT broker {host}:{port} ({err.strerror or err}); check --host/--port "
                        "or mqtt.host/mqtt.port and that the broker runs") from None
    client.loop_start()
    try:
        done.wait(args.timeout if args.timeout > 0 else None)
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()
    if failure:
        raise LapsError(failure[0])
    if args.count and seen < args.count:
        print(f"# timed out after {args.timeout:g} s with {seen} of {args.count} messages", file=sys.stderr)
        return 1
    return 0


def _kind(topic: str) -> str:
    parts = topic.split("/")
    return "/".join(parts[4:]) if len(parts) >= 5 else ""


def format_message(topic: str, payload: bytes, retained: bool = False, as_json: bool = False,
                   now: float | None = None) -> str | None:
    """One readable line for a message on `laps/v1/...` (None for an empty retained clear)."""
    from edge.messages import (AckMessage, BatchManifest, MessageError, MetricsMessage, SegmentMessage, StateMessage,
                               decode, parse_topic)

    if not payload:
        return None
    stamp = datetime.fromtimestamp(time.time() if now is None else now).strftime("%H:%M:%S.%f")[:-3]
    try:
        site, device, kind = parse_topic(topic)
    except MessageError:
        return f"{stamp} {topic}: {payload[:200]!r}"
    who = f"{site}/{device}"
    try:
        msg = decode(payload)
    except MessageError as err:
        return f"{stamp} {who} {kind} INVALID: {err}"
    if as_json:
        return json.dumps({"topic": topic, "retained": retained, "payload": msg}, separators=(",", ":"))
    try:
        if kind == "segments":
            sm = SegmentMessage.from_dict(msg)
            s, e, fps = sm.start_frame, sm.end_frame, sm.fps
            return (f"{stamp} {who} segment {sm.segment_id[:13]} seq {sm.seq}  frames {s}-{e} "
                    f"({(e - s) / fps:.1f} s at {fps:g} fps)  ended {sm.end_utc}  codes {len(sm.codes)}  "
                    f"energy mean {sm.energy_mean:.3g} max {sm.energy_max:.3g}  "
                    f"keyframes {len(sm.keyframes)}  model {sm.model_version}"
                    + (f"  primitive {sm.primitive.cluster} (distance {sm.primitive.distance:.3f}, library "
                       f"{sm.primitive.library[:13]})" if sm.primitive is not None else ""))
        if kind == "state":
            st = StateMessage.from_dict(msg)
            detail = f"  {st.detail}" if st.detail else ""
            return (f"{stamp} {who} state {st.state.upper()}{' (retained)' if retained else ''}{detail}  "
                    f"since {st.time}  boot {st.boot_id[:8]}")
        if kind == "metrics":
            mm = MetricsMessage.from_dict(msg)
            lat = mm.stage_latency_ms
            stages = ", ".join(f"{k} {v:.1f}" for k, v in lat.items() if k != "total")
            ob = mm.outbox
            link = "connected" if mm.mqtt.get("connected") else "?"
            return (f"{stamp} {who} metrics {mm.fps:.1f} fps  latency {lat.get('total', 0.0):.1f} ms"
                    f"{' (' + stages + ')' if stages else ''}  outbox {ob['depth']} (evicted {ob['evicted_total']})"
                    f"  mqtt {link}  source {mm.source_state}  model {mm.model_version}  "
                    f"providers {','.join(mm.providers) or '-'}")
        if kind == "acks":
            ack = AckMessage.from_dict(msg)
            refused = "".join(f"  QUARANTINED {q.segment_id[:13]}: {q.reason}" for q in ack.quarantined)
            return f"{stamp} {who} ack from central: {len(ack.segment_ids)} segment(s) committed{refused}"
        if kind == "batches":
            bm = BatchManifest.from_dict(msg)
            files = sum(len(seg.files) for seg in bm.segments)
            arch = bm.archive
            return (f"{stamp} {who} batch {arch.sha256[:12] if arch else '?'}  {len(bm.segments)} segments, "
                    f"{files} files, {(arch.size if arch else 0) / 1024:.1f} KiB  at {arch.path if arch else '?'}")
    except MessageError as err:
        return f"{stamp} {who} {kind} INVALID: {err}"
    return f"{stamp} {who} {kind}{' (retained)' if retained else ''} {json.dumps(msg, separators=(',', ':'))}"
