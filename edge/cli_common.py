"""The one command-line driver shared by `laps-edge`, `laps-export`, `laps-calibrate`, `laps-central`.

Discovers sub-command modules in a package (each with `register(subparsers)`), parses, runs
the handler, and turns every `LapsError` into a one-line `error: ...` with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from typing import Callable, Sequence

from edge.errors import LapsError


def build_main(prog: str, package: str, description: str) -> Callable[[Sequence[str] | None], int]:
    """Return a `main(argv)` for a console script whose sub-commands live in `package`."""

    def main(argv: Sequence[str] | None = None) -> int:
        parser = argparse.ArgumentParser(
            prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        pkg = importlib.import_module(package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if info.name.startswith("_"):
                continue
            module = importlib.import_module(f"{package}.{info.name}")
            register = getattr(module, "register", None)
            if register is not None:
                register(sub)
        args = parser.parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        try:
            return int(args.func(args) or 0)
        except LapsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return main


def add_pipeline_options(parser: argparse.ArgumentParser, model_help: str) -> None:
    """The options that choose how the device pipeline is built (--model, --tracker, --providers,
    --energy-mode), shared by `laps-edge run` and `laps-calibrate run` so that calibration runs
    exactly what the device will run. `model_help` says what --model means for that command."""
    from edge.tracking import TRACKER_BACKENDS

    parser.add_argument("--model", default="default", help=model_help + " (default: %(default)s)")
    # No argparse `choices`: the pipeline validates the name and says how to fix it (one place).
    parser.add_argument("--tracker", default="lk",
                        help=f"point tracker backend, as on the device: {', '.join(TRACKER_BACKENDS)} "
                             "(default: %(default)s)")
    parser.add_argument("--providers", default="auto",
                        help="ONNX Runtime providers for the models: auto, cpu, cuda, tensorrt (default: %(default)s)")
    parser.add_argument("--energy-mode", default="newest", choices=("newest", "window_mean"),
                        help="LAPS per-frame energy from the newest token, or the paper code's window mean "
                             "(default: %(default)s)")
