#!/usr/bin/env bash
# README command (a): set everything up, then run the whole edge pipeline on a generated
# workstation video (no camera, no broker, no GPU) and print the segments it finds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/laps-edge run --source 'synthetic://assembly?seed=900&minutes=1' --out out/demo "$@"
