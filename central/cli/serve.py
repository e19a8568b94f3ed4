"""`laps-central serve`: the fleet dashboard in a browser (central.dashboard)."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Serves read-only web pages about the fleet, from the store the ingest writes (it works while
the ingest is down too):

  /                  devices: online/offline from the retained state each device publishes,
                     when central last heard from it, when its last segment ended, segments
                     per minute over [dashboard] rate_window_s; the primitive library of the
                     newest clustering run: every cluster with its size, durations and a
                     montage of its members' keyframes; the OTA rollout: stage, per-device state
  /clusters/...      a cluster's members, most central first, each linked to its own page
  /segments/<id>     a segment: device, times, codes, cluster, keyframes, an animation

Pages are HTML made on the server: no JavaScript, nothing to build, any browser. Nothing in
them changes the fleet (GET and HEAD only).

Access: it binds 127.0.0.1 by default ([dashboard] host/port, or --host/--port). Set
[dashboard] password_file (one line: the password; user name [dashboard] username, default
"operator") and every page asks for that login (HTTP Basic). Without a password only a
loopback address is allowed. Basic sends the password readable by anyone on the path: beyond
a trusted network, serve it behind a TLS proxy.

Runs until SIGTERM or Ctrl-C."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the fleet dashboard: devices, primitive library, OTA rollout in a browser",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central serve --config central.toml   (then open http://127.0.0.1:8480/)")
    p.add_argument("--config", required=True, help="central TOML configuration (its [dashboard] section)")
    p.add_argument("--host", help="address to bind (default: [dashboard] host, 127.0.0.1); beyond loopback "
                                  "only with [dashboard] password_file set")
    p.add_argument("--port", type=int, help="TCP port (default: [dashboard] port, 8480; 0 = any free port)")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    import signal
    import threading

    from central.config import LOOPBACK_HOSTS, load_central_config
    from central.dashboard import Dashboard
    from edge.errors import ConfigError

    config = load_central_config(args.config)
    settings = config.dashboard
    if args.host is not None and args.host not in LOOPBACK_HOSTS and not settings.password_file:
        raise ConfigError(f"--host {args.host} would serve the dashboard beyond this machine without a login; set "
                          f"[dashboard] password_file in {args.config} or bind 127.0.0.1")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port} is not a TCP port; give 1-65535 (or 0 for any free port)")
    host = args.host or settings.host
    try:
        dashboard = Dashboard(config, host=host, port=args.port)
    except OSError as err:
        port = settings.port if args.port is None else args.port
        raise ConfigError(f"cannot serve the dashboard on {host}:{port} ({err.strerror or err}); pick another "
                          "--port or stop what uses it") from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    dashboard.start()
    login = f"login {settings.username} required" if dashboard.requires_login else "no login, loopback only"
    print(f"dashboard on {dashboard.url}/ (read-only; {login}); stop with Ctrl-C", flush=True)
    try:
        stop.wait()
    finally:
        dashboard.stop()
        for sig, old in previous.items():
            signal.signal(sig, old)
    return 0
