#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, lint, and run the whole test suite.
# This is the README's second set-up command, and .ci/run calls it unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use for real: a mosquitto broker and its clients.
apt_packages=(mosquitto mosquitto-clients systemd chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
echo "== pip install -e .[dev]"
$PY -m pip install -q --disable-pip-version-check -e '.[dev]'

# The legacy runtime's own venv: tflite-runtime 2.14 needs numpy<2 and has no wheel past
# Python 3.11. The bundle tests compare its scores with LiteRT's through this interpreter.
TFLITE_PY=${TFLITE_PYTHON:-python3.11}
if command -v "$TFLITE_PY" >/dev/null 2>&1 && [ ! -x .venv-tflite/bin/python ]; then
    echo "== venv .venv-tflite (tflite-runtime 2.14, numpy<2)"
    "$TFLITE_PY" -m venv .venv-tflite
    .venv-tflite/bin/python -m pip install -q --disable-pip-version-check 'numpy<2' 'tflite-runtime==2.14.0'
fi

echo "== ruff"
$PY -m ruff check .

echo "== pytest"
$PY -m pytest -q "$@"
