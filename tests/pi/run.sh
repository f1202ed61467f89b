#!/usr/bin/env bash
# The Raspberry Pi's software stack on this machine: a Debian arm64 root (Raspberry Pi OS's
# base) run under qemu-user with an explicit Pi cpu model and the Pi's cpu files.
#
#   sudo tests/pi/run.sh RELEASE CPU [--break numpy2|cpuinfo|cpu-max] [--build-only]
#   tests/pi/run.sh --host-check
#     RELEASE  bookworm (Pi OS 12, Python 3.11) | trixie (Pi OS 13, Python 3.13)
#     CPU      cortex-a72 (Pi 4) | cortex-a76 (Pi 5)
#
# In the root it runs systemd/install.sh --emulated (and on Bookworm the tflite-runtime
# install), pi-inspect doctor, pi-inspect demo (event recall and precision must be 1.0), a set
# of edge tests, and compares the demo bundle's scores on rendered stills with this host's
# (x86) scores within 0.02; on Bookworm also under the legacy tflite-runtime backend.
# --break makes a known-bad setup on purpose, to show the check fails on it:
#   numpy2   pip installs numpy 2 into the Bookworm venv past the numpy<2 constraint
#   cpuinfo  leaves the x86 host's /proc/cpuinfo and /sys/devices/system/cpu in the root
#   cpu-max  leaves qemu's default 'max' cpu (no QEMU_CPU)
#
# Needs root (mmdebstrap, chroot, mounts), mmdebstrap, qemu-user-static and binfmt_misc.
# Roots are cached in $PI_INSPECT_PI_CACHE (default /var/cache/pi-inspect/pi-roots, see
# tests/pi/roots.sh); the first run per release builds them (about 10 minutes each).
# --build-only builds (or finds) the cached roots and stops.
# --host-check only says whether this machine can run the check: exit status 0, or 3 and one
# line why not (not root, a missing tool, no binfmt_misc). Every run exits 3 for those.
# PI_INSPECT_PI_ROWS=FILE appends this combination's "Tested on" row to FILE.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHECKOUT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=tests/pi/roots.sh
source "$HERE/roots.sh"

die() { echo "pi check: error: $*" >&2; exit 2; }
cannot() { echo "pi check: this host cannot run it: $*" >&2; exit 3; }

# Copy this checkout (tracked and untracked, not ignored files) into the folder $1.
copy_checkout() {
    git -C "$CHECKOUT" ls-files -z -co --exclude-standard \
        | (cd "$CHECKOUT" && while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) \
        | tar -C "$CHECKOUT" --null -T - -cf - | tar -C "$1" -xf -
}

# ---- inside a private mount namespace: mount, chroot, run (re-invoked by enter_root) -------
if [ "${1:-}" = --in-namespace ]; then
    shift
    root="$1" cpu_dir="$2" qemu_cpu="$3" lower="$4" work="$5"
    shift 5
    if [ -n "$lower" ]; then  # the cached layer stays read-only: writes go to $work/upper
        mkdir -p "$work/upper" "$work/ovl" "$root"
        mount -t overlay overlay -o "lowerdir=$lower,upperdir=$work/upper,workdir=$work/ovl" "$root"
    fi
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    if [ -n "$cpu_dir" ]; then
        mount --bind "$cpu_dir/cpuinfo" "$root/proc/cpuinfo"
        mount --bind "$cpu_dir/cpu" "$root/sys/devices/system/cpu"
    fi
    cat /etc/resolv.conf > "$root/etc/resolv.conf"  # pip and apt reach their archives
    rm -rf "$root/src/pi-inspect" && mkdir -p "$root/src/pi-inspect"
    copy_checkout "$root/src/pi-inspect"
    for dir in stills wheel; do
        if [ -d "$work/$dir" ]; then
            mkdir -p "$root/var/tmp/pi-check" && cp -a "$work/$dir" "$root/var/tmp/pi-check/"
        fi
    done
    env_vars=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
        LANG=C.UTF-8 TERM=dumb PI_RELEASE="$PI_RELEASE" PI_CPU="$PI_CPU"
        PI_CPU_PART="$PI_CPU_PART" PI_BREAK="$PI_BREAK" PI_TESTS="${PI_TESTS:-}"
        PI_FAIL_FAST="${PI_FAIL_FAST:-0}" PI_TEST_TOOLS="${PI_TEST_TOOLS[*]}")
    [ -n "$qemu_cpu" ] && env_vars+=(QEMU_CPU="$qemu_cpu")  # qemu-user reads it at every exec
    # The host's way out to PyPI: proxies, index, and a CA bundle (a TLS-inspecting network
    # needs its own CA, which pip's built-in bundle lacks) are handed into the root.
    for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL \
        PIP_DEFAULT_TIMEOUT; do
        [ -n "${!var:-}" ] && env_vars+=("$var=${!var}")
    done
    ca="${PIP_CERT:-${SSL_CERT_FILE:-${REQUESTS_CA_BUNDLE:-}}}"
    if [ -n "$ca" ] && [ -f "$ca" ]; then
        cp "$ca" "$root/etc/host-ca-bundle.crt"
        env_vars+=(PIP_CERT=/etc/host-ca-bundle.crt SSL_CERT_FILE=/etc/host-ca-bundle.crt)
    fi
    exec env -i "${env_vars[@]}" chroot "$root" "$@"
fi

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }

PI_RELEASE="" PI_CPU="" PI_BREAK="" BUILD_ONLY=0 HOST_CHECK=0
while [ $# -gt 0 ]; do
    case "$1" in
        --build-only) BUILD_ONLY=1 ;;
        --host-check) HOST_CHECK=1 ;;
        --break) [ $# -ge 2 ] || die "--break needs numpy2, cpuinfo or cpu-max"; PI_BREAK="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) if [ -z "$PI_RELEASE" ]; then PI_RELEASE="$1"; elif [ -z "$PI_CPU" ]; then PI_CPU="$1"
           else die "unexpected argument $1"; fi ;;
    esac
    shift
done
if [ "$HOST_CHECK" -eq 0 ]; then
    case "$PI_RELEASE" in bookworm|trixie) ;; *) die "RELEASE must be bookworm or trixie (see --help)" ;; esac
fi
case "$PI_CPU" in
    cortex-a72) PI_CPU_PART=0xd08 BOARD="Pi 4" ;;
    cortex-a76) PI_CPU_PART=0xd0b BOARD="Pi 5" ;;
    *) [ "$HOST_CHECK" -eq 1 ] || die "CPU must be cortex-a72 (Pi 4) or cortex-a76 (Pi 5)" ;;
esac
case "$PI_BREAK" in
    ""|cpuinfo|cpu-max) ;;
    numpy2) [ "$PI_RELEASE" = bookworm ] || die "--break numpy2 is a Bookworm problem" ;;
    *) die "--break takes numpy2, cpuinfo or cpu-max" ;;
esac
export PI_RELEASE PI_CPU PI_CPU_PART PI_BREAK

# ---- the host: tools, binfmt_misc, x86 reference ----------------------------------------
[ "$(id -u)" -eq 0 ] || cannot "not root (mmdebstrap, chroot and mounts need root)"
for tool in mmdebstrap qemu-aarch64-static unshare chroot flock git; do
    command -v "$tool" >/dev/null \
        || cannot "$tool is missing (apt-get install mmdebstrap qemu-user-static binfmt-support)"
done
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/status" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" 2>/dev/null \
        || cannot "binfmt_misc is not mounted at $BINFMT and mounting it was refused (a container without privileges?)"
fi
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
    update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
fi
[ -e "$BINFMT/qemu-aarch64" ] \
    || cannot "no qemu-aarch64 handler in binfmt_misc (apt-get install qemu-user-static binfmt-support)"
grep -q '^flags:.*F' "$BINFMT/qemu-aarch64" \
    || cannot "the qemu-aarch64 binfmt handler lacks the F (fix binary) flag, so a chroot cannot find it"
HOST_PY="${PYTHON:-python3}"
PYTHONPATH="$CHECKOUT${PYTHONPATH:+:$PYTHONPATH}" "$HOST_PY" -c 'import ai_edge_litert, cv2' 2>/dev/null \
    || cannot "its Python lacks the edge extra for the x86 reference scores (pip install -e '.[edge]')"
if [ "$HOST_CHECK" -eq 1 ]; then
    echo "pi check: this host can run it (root, mmdebstrap, qemu-aarch64 in binfmt_misc)"
    exit 0
fi

started=$SECONDS
echo "== pi check: Raspberry Pi OS $PI_RELEASE on $PI_CPU ($BOARD)${PI_BREAK:+, BROKEN ON PURPOSE: $PI_BREAK}"

# enter_root ROOT LOWER WORK CMD...: run CMD in ROOT (an overlay on LOWER when LOWER is set).
enter_root() {
    local root="$1" lower="$2" work="$3"
    local cpu_dir="$work/cpu" qemu_cpu="$PI_CPU"
    shift 3
    [ "$PI_BREAK" = cpuinfo ] && cpu_dir=""
    [ "$PI_BREAK" = cpu-max ] && qemu_cpu=""
    unshare --mount --propagation private \
        bash "$HERE/run.sh" --in-namespace "$root" "$cpu_dir" "$qemu_cpu" "$lower" "$work" "$@"
}

WORK="$(mktemp -d /var/tmp/pi-inspect-pi.XXXXXX)"
trap 'rm -rf --one-file-system "$WORK"' EXIT
"$HOST_PY" "$HERE/cpufiles.py" "$PI_CPU" "$WORK/cpu"

# Copy stdin to stdout and FILE, each line prefixed with the seconds since it began.
timed() {
    local t0=$SECONDS line
    : > "$1"
    while IFS= read -r line; do printf '[%5d s] %s\n' $((SECONDS - t0)) "$line"; done | tee -a "$1"
}

build_installed() {
    local base="$1" dest="$2" tmp t0=$SECONDS
    [ -d "$dest" ] && return 0
    pi_clean_partial "$PI_RELEASE"
    tmp="$PI_CACHE/.building-installed-$PI_RELEASE-$$"
    echo "== first install into a copy of $base (pip under qemu, tens of minutes): $dest"
    echo "   (every line timed from the start, also in $dest.log)"
    cp -a --reflink=auto "$base" "$tmp"
    if ! enter_root "$tmp" "" "$WORK" bash /src/pi-inspect/tests/pi/inside.sh install 2>&1 \
        | timed "$dest.log"; then
        rm -rf --one-file-system "$tmp"
        echo "pi check: error: the first install into the $PI_RELEASE root failed (above)" >&2
        return 1
    fi
    rm -rf "$tmp/src/pi-inspect" "$tmp/root/.cache"
    mv -T "$tmp" "$dest"
    echo "== built the installed layer in $((SECONDS - t0)) s: $dest"
}

build_layers() {
    local base
    base="$(pi_base_root "$PI_RELEASE")" || return 1
    build_installed "$base" "$PI_CACHE/installed-$PI_RELEASE-$(pi_installed_key "$PI_RELEASE" "$CHECKOUT")"
}
pi_locked "$PI_RELEASE" build_layers || exit 1
INSTALLED="$PI_CACHE/installed-$PI_RELEASE-$(pi_installed_key "$PI_RELEASE" "$CHECKOUT")"
built=$((SECONDS - started))
if [ "$BUILD_ONLY" -eq 1 ]; then
    echo "== pi check: $PI_RELEASE roots ready in $built s (--build-only)"
    exit 0
fi

echo "== x86 reference scores on this host"
PYTHONPATH="$CHECKOUT${PYTHONPATH:+:$PYTHONPATH}" "$HOST_PY" "$HERE/scores.py" write "$WORK/stills" 2>/dev/null
# The project is pure Python: its wheel, built here in seconds, is what the check reinstalls
# (--no-deps) where it does not re-run install.sh (the legacy venv), instead of a build under
# qemu.
echo "== the project's wheel (pure Python, built on this host)"
mkdir -p "$WORK/src"
copy_checkout "$WORK/src"
"$HOST_PY" -m pip wheel -q --no-deps --no-build-isolation --disable-pip-version-check \
    -w "$WORK/wheel" "$WORK/src" >/dev/null || die "could not build the project's wheel"

rc=0
enter_root "$WORK/merged" "$INSTALLED" "$WORK" bash /src/pi-inspect/tests/pi/inside.sh check || rc=$?

row="$("$HOST_PY" "$HERE/row.py" "$WORK/upper/var/tmp/pi-check" "$PI_RELEASE" "$PI_CPU" "$rc" || true)"
echo
echo "$row"
[ -z "${PI_INSPECT_PI_ROWS:-}" ] || echo "$row" >> "$PI_INSPECT_PI_ROWS"
echo "== pi check: $PI_RELEASE/$PI_CPU $([ "$rc" -eq 0 ] && echo passed || echo FAILED) in $((SECONDS - started)) s (roots ready after ${built} s)"
exit "$rc"
