#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, lint, and run the whole test suite.
# This is the README's second set-up command, and .ci/run calls it unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

# What this script installs system-wide, and why -- said before anything is installed. Python
# packages go into the active venv, or .venv where the system Python refuses pip (PEP 668).
apt_packages=(mosquitto mosquitto-clients systemd chromium)
declare -A apt_why=(
    [mosquitto]="a real MQTT broker the MQTT tests start"
    [mosquitto-clients]="mosquitto_sub/pub, the subscriber side of the MQTT tests"
    [systemd]="systemd-analyze verify and the watchdog tests of the service unit"
    [chromium]="the labelling tool's browser test (Playwright drives it)"
    [mmdebstrap]="the Pi check (PI_INSPECT_PI=run): builds Debian arm64 roots"
    [qemu-user-static]="the Pi check: runs the arm64 roots as a Cortex-A72 / A76"
    [binfmt-support]="the Pi check: registers qemu's arm64 handler in binfmt_misc"
)
# The Raspberry Pi check (tests/pi/matrix.sh, last): PI_INSPECT_PI=auto (the default) runs it
# when this host can (root, binfmt_misc), run requires it (a host that cannot is an error),
# skip leaves it out. A skipped check is said loudly, at the start and at the end.
PI_CHECK="${PI_INSPECT_PI:-auto}"
PI_SKIPPED=""
case "$PI_CHECK" in
    auto|run) ;;
    skip) PI_SKIPPED="PI_INSPECT_PI=skip" ;;
    *) echo "tests/run.sh: error: PI_INSPECT_PI must be auto, run or skip, not '$PI_CHECK'" >&2; exit 2 ;;
esac
if [ "$PI_CHECK" = auto ] && [ "$(id -u)" -ne 0 ]; then
    PI_SKIPPED="not root (mmdebstrap, chroot and mounts need root)"
fi
pi_skipped_line() {
    echo "== Pi check SKIPPED: $PI_SKIPPED: the Raspberry Pi's software stack is NOT tested by this run"
}
# A machine without the cached roots would spend well over an hour building them before the
# first check (docs/benchmarks.md): more than a CI run may take. In auto mode that is decided
# here, first, so nothing for the check is installed that will not run; `sudo
# tests/pi/matrix.sh --build-only` (or PI_INSPECT_PI=run) builds them once, and every later run
# checks. A dependency change rebuilds only the installed layers (about an hour), which auto
# mode also leaves to a run that asks for it.
if [ -z "$PI_SKIPPED" ] && [ "$PI_CHECK" = auto ] && [ -z "${PI_INSPECT_PI_MATRIX:-}" ] \
    && ! (source tests/pi/roots.sh && pi_roots_cached "$PWD" bookworm trixie) 2>/dev/null; then
    PI_SKIPPED="the arm64 roots for this dependency set are not cached (building them takes over an hour; run sudo tests/pi/matrix.sh --build-only once, or PI_INSPECT_PI=run)"
fi
if [ -n "$PI_SKIPPED" ]; then
    pi_skipped_line  # said first, and again at the end
fi
[ -n "$PI_SKIPPED" ] || apt_packages+=(mmdebstrap qemu-user-static binfmt-support)
missing=()
echo "== system-wide (apt): ${apt_packages[*]}"
for pkg in "${apt_packages[@]}"; do
    if command -v dpkg >/dev/null 2>&1 && dpkg -s "$pkg" >/dev/null 2>&1; then
        state="installed"
    else
        state="missing"; missing+=("$pkg")
    fi
    printf '   %-18s %-9s %s\n' "$pkg" "$state" "${apt_why[$pkg]}"
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo"
    fi
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
        echo "== apt-get install ${missing[*]} (Chromium pulls in a few hundred packages)"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "== skipped: apt-get install ${missing[*]} (no root, passwordless sudo or apt-get);"
        echo "   everything else runs, and the tests that need them skip and say so"
    fi
fi
if [ -n "$PI_SKIPPED" ]; then
    pi_skipped_line
else
    echo "== Pi check (arm64 Raspberry Pi OS under qemu) runs after pytest: PI_INSPECT_PI=$PI_CHECK"
fi
[ "${RUN_SH_ONLY:-}" = "system" ] && exit 0  # tests/test_run_sh.py checks the part above

PY=${PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ -z "${VIRTUAL_ENV:-}" ] && $PY -c 'import os, sysconfig, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'
then
    echo "== venv .venv (this Python refuses system-wide pip installs, PEP 668)"
    [ -x .venv/bin/python ] || $PY -m venv .venv
    PY=.venv/bin/python
fi
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

# The Raspberry Pi's software stack: Raspberry Pi OS's Debian base (arm64 Bookworm, Trixie)
# under qemu as a Cortex-A72 (Pi 4) / Cortex-A76 (Pi 5); see tests/pi/run.sh. The roots are
# cached in /var/cache/pi-inspect/pi-roots (times: docs/benchmarks.md). PI_INSPECT_PI_MATRIX
# picks the combinations (default: bookworm:cortex-a72 and trixie:cortex-a76).
if [ -z "$PI_SKIPPED" ]; then
    set +e
    why="$(bash tests/pi/run.sh --host-check 2>&1)"
    status=$?
    set -e
    if [ "$status" -eq 3 ] && [ "$PI_CHECK" = auto ]; then
        PI_SKIPPED="${why#pi check: }"
    elif [ "$status" -ne 0 ]; then
        echo "$why" >&2
        exit 1
    fi
fi
if [ -n "$PI_SKIPPED" ]; then
    pi_skipped_line
else
    echo "== Pi check (tests/pi/matrix.sh, ${PI_INSPECT_PI_MATRIX:-ci})"
    bash tests/pi/matrix.sh
fi
