"""`laps-central rollout start|status|abort`: staged OTA rollout of a signed model bundle."""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Roll a signed bundle (laps-export bundle build + sign) out to devices in stages.

  start   serve the bundle over HTTP(S) from this process, publish the retained
          laps/v1/<site>/<device>/ota/desired to the canary devices, then to growing
          percentages of the rest, then to all; follow .../ota/status. A device counts as
          failed when it rolls back or refuses the bundle, or has not committed within
          --device-timeout. Once --min-devices devices finished, a failure rate above
          --max-failure-rate aborts: every device that was sent the bundle gets the baseline
          desired back (--baseline), or its retained desired is cleared. Exit 0 when every
          device committed, 1 when aborted. Runs in the foreground.
  status  where each device stands (from <data_dir>/rollout/state.json; no broker needed)
  abort   stop the running rollout (it resets desired itself), or, if no rollout process is
          alive, clear the retained desired of every device that was sent the bundle"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rollout", help="staged OTA rollout of a signed bundle (start, status, abort)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Example: laps-central rollout start --config central.toml --bundle bundles/42 "
                              "--baseline bundles/41 --devices-file fleet.txt --canary plant-a/cell-07 "
                              "--stages 10,50,100 --serve 0.0.0.0:8471 --public-url http://central:8471")
    verbs = p.add_subparsers(dest="rollout_command", metavar="VERB", required=True)

    s = verbs.add_parser("start", help="serve the bundle and roll it out in stages")
    s.add_argument("--config", required=True, help="central TOML configuration ([mqtt], [paths] data_dir)")
    s.add_argument("--bundle", required=True, help="signed bundle folder to roll out")
    s.add_argument("--baseline", help="signed bundle the devices run now: on abort, desired is set back to it")
    s.add_argument("--devices", help="comma-separated site/device names")
    s.add_argument("--devices-file", help="file with one site/device per line")
    s.add_argument("--canary", default="", help="comma-separated site/device names updated first")
    s.add_argument("--stages", default="10,50,100",
                   help="cumulative percentages of the other devices per stage (default: %(default)s)")
    s.add_argument("--max-failure-rate", type=float, default=0.2,
                   help="abort above this failed/finished fraction (default: %(default)s)")
    s.add_argument("--min-devices", type=int, default=3,
                   help="finished devices needed before the failure rate is judged (default: %(default)s)")
    s.add_argument("--device-timeout", type=float, default=1800.0, metavar="S",
                   help="seconds a device may take to commit before it counts as failed (default: %(default)s)")
    s.add_argument("--serve", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where to serve bundles (default: %(default)s, any free port)")
    s.add_argument("--public-url", default="",
                   help="base URL devices use to reach --serve (default: http://HOST:PORT as bound)")
    s.add_argument("--cert", default="", help="serve HTTPS with this certificate (PEM) ...")
    s.add_argument("--key", default="", help="... and this key")
    s.set_defaults(func=handle_start)

    st = verbs.add_parser("status", help="where each device of the current rollout stands")
    st.add_argument("--config", required=True, help="central TOML configuration")
    st.add_argument("--json", action="store_true", help="print the state file as JSON")
    st.set_defaults(func=handle_status)

    a = verbs.add_parser("abort", help="abort the current rollout and set desired back")
    a.add_argument("--config", required=True, help="central TOML configuration")
    a.add_argument("--reason", default="operator request", help="recorded with the abort")
    a.add_argument("--wait", type=float, default=30.0, metavar="S",
                   help="seconds to wait for a running rollout to confirm (default: %(default)s)")
    a.set_defaults(func=handle_abort)


def handle_start(args: argparse.Namespace) -> int:
    import signal

    from central.config import load_central_config
    from central.registry import register_model
    from central.rollout import (Bundle, BundleServer, Rollout, RolloutPlan, RolloutState, format_status,
                                 load_devices, state_path)
    from edge.errors import ConfigError

    config = load_central_config(args.config)
    try:
        stages = [float(x) for x in args.stages.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--stages {args.stages!r} is not a comma-separated list of percentages, e.g. 10,50,100") from None
    host, _, port = args.serve.rpartition(":")
    if not port.isdigit():
        raise ConfigError(f"--serve {args.serve!r} is not HOST:PORT")
    bundle = Bundle.open(args.bundle)
    baseline = Bundle.open(args.baseline) if args.baseline else None
    plan = RolloutPlan(bundle=bundle, baseline=baseline, devices=load_devices(args.devices, args.devices_file),
                       canary=load_devices(args.canary, None), stages=stages,
                       max_failure_rate=args.max_failure_rate, min_devices=args.min_devices,
                       device_timeout_s=args.device_timeout)
    # Every model the fleet may run must be readable centrally: register what is rolled out.
    for b in (bundle, baseline):
        if b is not None:
            version, added = register_model(config.paths.models_dir, b.path)
            if added is not None:
                print(f"model registry: added model version {version} from bundle {b.path}")
    served = {bundle.version: bundle.path} | ({baseline.version: baseline.path} if baseline else {})
    server = BundleServer(served, host=host or "127.0.0.1", port=int(port), cert=args.cert, key=args.key,
                          public_url=args.public_url).start()
    rollout = Rollout(plan, config.mqtt, server, RolloutState(state_path(config.paths.data_dir)))
    signal.signal(signal.SIGTERM, lambda *_: rollout.stop_event.set())
    print(f"serving bundles at {server.url}; rollout {plan.rollout_id} of version {bundle.version} "
          f"to {len(plan.devices)} device(s) in {len(plan.cohorts())} stage(s)")
    try:
        outcome = rollout.run()
    finally:
        server.stop()
    print(format_status(rollout.data))
    return 0 if outcome == "completed" else 1


def handle_status(args: argparse.Namespace) -> int:
    import json

    from central.config import load_central_config
    from central.rollout import RolloutState, format_status, state_path

    config = load_central_config(args.config)
    data = RolloutState(state_path(config.paths.data_dir)).load()
    if data is None:
        print("no rollout recorded yet")
        return 0
    print(json.dumps(data, indent=1) if args.json else format_status(data))
    return 0


def handle_abort(args: argparse.Namespace) -> int:
    import time

    from central.config import load_central_config
    from central.rollout import RolloutState, abort_without_runner, format_status, process_alive, state_path

    config = load_central_config(args.config)
    state = RolloutState(state_path(config.paths.data_dir))
    data = state.request_abort(args.reason)
    if data.get("state") != "running":
        print(f"rollout {data.get('rollout_id')} is already {data.get('state')}; nothing to abort")
        return 0
    if process_alive(data.get("pid")):
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            data = state.load() or {}
            if data.get("state") != "running":
                print(format_status(data))
                return 0
            time.sleep(0.2)
        print(f"the rollout process {data.get('pid')} has not confirmed the abort yet; run `status` again")
        return 1
    data = abort_without_runner(data, config.mqtt)
    state.save(data)
    print(format_status(data))
    return 0
