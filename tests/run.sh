#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, lint, and run the whole test suite.
# This is the README's second set-up command, and .ci/run calls it unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use for real: a mosquitto broker and its clients. The Pi check
# (last step) builds Debian arm64 roots with mmdebstrap and runs them with qemu-user-static
# through binfmt_misc (binfmt-support registers the handler).
apt_packages=(mosquitto mosquitto-clients systemd chromium)
PI_CHECK="${PI_INSPECT_PI:-run}"
if [ "$PI_CHECK" != skip ]; then
    apt_packages+=(mmdebstrap qemu-user-static binfmt-support)
fi
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

# The Raspberry Pi's software stack: Raspberry Pi OS's Debian base (arm64 Bookworm and Trixie)
# under qemu as a Cortex-A72 (Pi 4) and a Cortex-A76 (Pi 5); see tests/pi/run.sh. Roots are
# cached in /var/cache/pi-inspect/pi-roots. Needs root. PI_INSPECT_PI_MATRIX=all runs all four
# combinations (default: two); PI_INSPECT_PI=skip skips the check, and says so.
if [ "$PI_CHECK" = skip ]; then
    echo "== Pi check SKIPPED (PI_INSPECT_PI=skip): the arm64 Raspberry Pi stack was not tested"
else
    echo "== Pi check (tests/pi/matrix.sh, ${PI_INSPECT_PI_MATRIX:-ci})"
    bash tests/pi/matrix.sh
fi
