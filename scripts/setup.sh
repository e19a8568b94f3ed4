#!/usr/bin/env bash
# Set up a development machine: system packages, a virtual environment in .venv, the package
# with its laptop/test extras. Idempotent; safe to run again. Debian/Ubuntu, Python >= 3.10.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.10 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
[ -n "$PYTHON" ] || { echo "error: no python3 found; install python3 (>= 3.10) and python3-venv" >&2; exit 2; }

# Mosquitto: the tests start their own broker on a free loopback port (never the system one).
if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "installing mosquitto (MQTT broker for the tests) with apt-get" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv || { echo "error: '$PYTHON -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2; exit 2; }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# torch==2.13.0 (in [train]) is the CPU build; a looser pin would pull a multi-GB CUDA build.
# [spark]: `laps-central cluster --engine spark` and its tests. pyspark is a ~430 MB source
# package; pip caches the wheel it builds (~/.cache/pip/wheels), so a re-install takes seconds.
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[train,dev,central,postgres,spark]'
# Spark runs on a JVM: the --engine spark tests need Java 17 (.ci/run installs it).
command -v java >/dev/null 2>&1 || [ -n "${JAVA_HOME:-}" ] \
  || echo "note: no java found; --engine spark and its tests need Java 17: apt-get install openjdk-17-jre-headless" >&2
echo "set up: $(.venv/bin/python --version) in .venv" >&2
