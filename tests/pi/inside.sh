#!/usr/bin/env bash
# Runs INSIDE the emulated arm64 root (tests/pi/run.sh chroots into it with QEMU_CPU set and
# the Pi's cpu files bound in). The checkout is at /src/pi-inspect, the stills and the x86
# reference scores at /var/tmp/pi-check/stills.
#
#   inside.sh install   the first install into a fresh root (cached as the "installed" layer)
#   inside.sh check     re-run the installer (the upgrade path: current code; in the legacy
#                       venv only the project's wheel, --no-deps), then check
#
# Environment: PI_RELEASE, PI_CPU, PI_CPU_PART (0xd08 / 0xd0b), PI_BREAK (numpy2, or empty),
# PI_FAIL_FAST=1 (stop at the first failed step), PI_TESTS (the edge tests to run).
# Each step prints "== step"; a failed step prints "FAIL step: why" and the check goes on, so
# one run lists every problem; the exit status is 1 when any step failed.
set -uo pipefail
cd /src/pi-inspect
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
VENV=/opt/pi-inspect/venv
LEGACY_ROOT=/opt/legacy            # the tflite-runtime install: ROOT=$LEGACY_ROOT install.sh
LEGACY_VENV=$LEGACY_ROOT/opt/pi-inspect/venv
OUT=/var/tmp/pi-check
FAILED=()

step() { echo; echo "== [${SECONDS} s] $*"; }  # seconds since inside.sh began
fail() {
    echo "FAIL $1: $2" >&2
    FAILED+=("$1")
    if [ "${PI_FAIL_FAST:-0}" = 1 ]; then echo "FAILED step: $1 (stopped at the first failure)" >&2; exit 1; fi
}

# Run "$@" as step $1; on failure say which step, its exit status (and signal) and why.
check() {
    local name="$1" rc
    shift
    "$@"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        local why="exit status $rc"
        [ "$rc" -gt 128 ] && why="killed by signal $((rc - 128))$([ "$rc" -eq 139 ] && echo ' (SIGSEGV)')"
        fail "$name" "$why: $*"
    fi
    return "$rc"
}

install_all() {  # $1: first (the cached layer) or again (the check)
    step "install.sh --emulated (Raspberry Pi OS $PI_RELEASE: venv, pi-inspect[edge])"
    check install bash systemd/install.sh --emulated || return 1
    if [ "$PI_RELEASE" = bookworm ] && [ "$1" = again ]; then
        # Its dependencies are the cached layer's (keyed on the dependency set): reinstalling
        # the project alone saves a second apt-get update and build under qemu.
        step "legacy tflite-runtime venv: this project only (its wheel, pip --no-deps)"
        check install-tflite-runtime "$LEGACY_VENV/bin/pip" install -q --no-deps \
            --force-reinstall "$OUT"/wheel/pi_inspect-*.whl || return 1
    elif [ "$PI_RELEASE" = bookworm ]; then
        step "ROOT=$LEGACY_ROOT install.sh --emulated --tflite-runtime (the legacy runtime)"
        check install-tflite-runtime env ROOT="$LEGACY_ROOT" \
            bash systemd/install.sh --emulated --tflite-runtime || return 1
    fi
}

test_tools() {
    step "test tools in the service venv ($PI_TEST_TOOLS)"
    # shellcheck disable=SC2086  # a list of names
    check test-tools "$VENV/bin/pip" install -q $PI_TEST_TOOLS
}

if [ "${1:-}" = install ]; then
    install_all first && test_tools
    [ ${#FAILED[@]} -eq 0 ]
    exit
fi

step "cpu: $PI_CPU under qemu (QEMU_CPU=${QEMU_CPU:-unset})"
grep -E '^(CPU part|Model)' /proc/cpuinfo | sort -u
if ! grep -q "^CPU part.*: $PI_CPU_PART\$" /proc/cpuinfo \
    || [ ! -e /sys/devices/system/cpu/cpu0/regs/identification/midr_el1 ]; then
    fail cpu-files "/proc/cpuinfo or /sys/devices/system/cpu is not a Raspberry Pi's ($PI_CPU, CPU part $PI_CPU_PART): the x86 host's files make LiteRT crash in Interpreter()"
fi
[ "${QEMU_CPU:-}" = "$PI_CPU" ] || fail cpu-model "QEMU_CPU is '${QEMU_CPU:-}', not $PI_CPU: qemu's default 'max' cpu gives the int8 model wrong scores"

install_all again

if [ "$PI_BREAK" = numpy2 ]; then
    step "BREAK numpy2: pip install 'numpy>=2' into the venv, past constraints-bookworm.txt"
    "$VENV/bin/pip" install -q 'numpy>=2,<3'
fi

step "stack: what the venv imports, and Debian's numpy extensions beside it"
check stack "$VENV/bin/python" tests/pi/stack.py --release "$PI_RELEASE" --out "$OUT/stack.json"
if [ "$PI_RELEASE" = bookworm ]; then
    check stack-tflite-runtime "$LEGACY_VENV/bin/python" tests/pi/stack.py --release bookworm \
        --out "$OUT/stack-tflite-runtime.json"
fi

step "deploy the demo bundle and point the config at a video file and mock pins"
BUNDLE="$("$VENV/bin/python" -c 'from pi_inspect.edge.bundle import default_bundle_dir; print(default_bundle_dir())')"
check deploy "$VENV/bin/pi-inspect" deploy --no-reload "$BUNDLE" /var/lib/pi-inspect/models
"$VENV/bin/python" - <<'PY'
# The Pi's camera and GPIO chip do not exist here: a rendered seam video and gpiozero's mock
# pins stand in; everything else is the installed config.
import re, pathlib
p = pathlib.Path("/etc/pi-inspect/config.toml")
text = p.read_text()
text = re.sub(r'(?m)^kind = .*$', 'kind = "file"', text, count=1)
text = re.sub(r'(?m)^uri = .*$', 'uri = "/var/tmp/pi-check/seam.mp4"', text, count=1)
text = re.sub(r'(?m)^pin_factory = .*$', 'pin_factory = "mock"', text, count=1)
p.write_text(text)
PY
"$VENV/bin/python" -c 'from pi_inspect.edge.synth import render_video; render_video("/var/tmp/pi-check/seam.mp4", frames=30, seed=3)' >/dev/null

step "pi-inspect doctor (service check skipped: no systemd runs here)"
check doctor "$VENV/bin/pi-inspect" doctor --skip service

run_demo() {  # $1: venv, $2: name of the step, then demo's own options
    local venv="$1" name="$2" log="$OUT/$2.log"
    shift 2
    step "pi-inspect demo ($name${*:+ $*})"
    check "$name" "$venv/bin/pi-inspect" demo --out "$OUT/$name" "$@" > >(tee "$log") || return 1
    sleep 0.2
    if ! grep -Eq '^  recall +1\.000 ' "$log" || ! grep -Eq '^  precision +1\.000 ' "$log"; then
        fail "$name" "event recall and precision must both be 1.000: $(grep -E '^  (recall|precision)' "$log" | tr -s ' ' | tr '\n' ';')"
        return 1
    fi
}
run_demo "$VENV" demo

step "score parity with x86 (LiteRT)"
check parity "$VENV/bin/python" tests/pi/scores.py compare "$OUT/stills" --backend litert \
    > >(tee "$OUT/parity.txt")

if [ "$PI_RELEASE" = bookworm ]; then
    step "legacy tflite-runtime: doctor, score parity, demo"
    check doctor-tflite-runtime "$LEGACY_VENV/bin/pi-inspect" doctor --skip service
    check parity-tflite-runtime "$LEGACY_VENV/bin/python" tests/pi/scores.py compare \
        "$OUT/stills" --backend tflite_runtime > >(tee "$OUT/parity-tflite-runtime.txt")
    # The first 300 frames hold 5 defects of all three kinds: the legacy runtime's scores are
    # compared still by still above, so its demo proves the pipeline without the full 900
    # frames (minutes under qemu).
    run_demo "$LEGACY_VENV" demo-tflite-runtime --frames 300
fi

step "edge tests (no TensorFlow here)"
check edge-tests "$VENV/bin/python" -m pytest -q -p no:cacheprovider ${PI_TESTS:-tests/test_signals.py tests/test_sources.py tests/test_config.py tests/test_daemon_pipeline.py tests/test_sdnotify.py tests/test_parts.py tests/test_reject.py}

# Functional only (no timing under qemu): GPIO-triggered parts through the real daemon and the
# demo model. The PLC servers' libraries are the [plc] extra, not in the Pi's [edge] install.
step "trigger bench, functional check (GPIO parts, each with its one result)"
check trigger-bench "$VENV/bin/python" bench/trigger_latency.py --check --kinds gpio

# Two stations in one daemon: each inspects its own video on its own mock pins and raises only
# its own video's defect, under its own name.
step "two stations in one daemon (each its own video, pins and defects)"
check stations "$VENV/bin/python" tests/pi/stations.py --out "$OUT/stations"

echo
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED steps: ${FAILED[*]}" >&2
    exit 1
fi
echo "all steps passed"
