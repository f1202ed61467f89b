#!/usr/bin/env bash
# Install pi-inspect as a systemd service on Raspberry Pi OS Bookworm (Python 3.11) or
# Trixie (Python 3.13). Idempotent: run it again to upgrade; config and models are kept.
#
#   sudo systemd/install.sh [--dry-run] [--os bookworm|trixie] [--tflite-runtime]
#                           [--source PATH | --version X] [--emulated]
#   sudo systemd/install.sh --uninstall [--purge] [--dry-run]
#
# --dry-run prints every step (prefixed "DRY-RUN:") and changes nothing.
# ROOT=/some/dir installs below that directory instead of / (image building, tests).
# --emulated (or PI_INSPECT_EMULATED=1): a plain Debian arm64 root under qemu, as in the CI's
#   Pi check (tests/pi/run.sh). Skips, and says so, only what cannot exist there: apt
#   packages Debian lacks (python3-picamera2 is in the Raspberry Pi archive only) and
#   systemctl (no systemd runs in the root). Everything else runs as on a Pi.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHECKOUT="$(cd "$HERE/.." && pwd)"
ROOT="${ROOT:-}"
OS_RELEASE="${OS_RELEASE:-/etc/os-release}"
SERVICE=pi-inspect
SERVICE_USER=pi-inspect
SERVICE_GROUPS=(video gpio)
PREFIX="$ROOT/opt/pi-inspect"
VENV="$PREFIX/venv"
CONF_DIR="$ROOT/etc/pi-inspect"
STATE_DIR="$ROOT/var/lib/pi-inspect"
MODELS_DIR="$STATE_DIR/models"
UNIT_DEST="$ROOT/etc/systemd/system/$SERVICE.service"
APT_PACKAGES=(python3-venv python3-picamera2 python3-lgpio)

DRY_RUN=0
EMULATED=0
[ "${PI_INSPECT_EMULATED:-0}" = 1 ] && EMULATED=1
OS=""
TFLITE=0
SOURCE=""
VERSION=""
UNINSTALL=0
PURGE=0

die() { echo "install.sh: error: $*" >&2; exit 2; }
note() { echo "== $*"; }

# One word, single-quoted only when it needs it (so the printed line can be pasted).
quote() {
    if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}

# Print a command; run it unless --dry-run.
run() {
    local prefix="+" word
    [ "$DRY_RUN" -eq 1 ] && prefix="DRY-RUN:"
    printf '%s' "$prefix"
    for word in "$@"; do printf ' '; quote "$word"; done
    printf '\n'
    [ "$DRY_RUN" -eq 1 ] || "$@"
}

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --dry-run) DRY_RUN=1 ;;
            --os) [ $# -ge 2 ] || die "--os needs bookworm or trixie"; OS="$2"; shift ;;
            --os=*) OS="${1#--os=}" ;;
            --tflite-runtime) TFLITE=1 ;;
            --emulated) EMULATED=1 ;;
            --source) [ $# -ge 2 ] || die "--source needs a path"; SOURCE="$2"; shift ;;
            --version) [ $# -ge 2 ] || die "--version needs a version"; VERSION="$2"; shift ;;
            --uninstall) UNINSTALL=1 ;;
            --purge) PURGE=1 ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option $1 (see --help)" ;;
        esac
        shift
    done
    [ -z "$SOURCE" ] || [ -z "$VERSION" ] || die "give --source or --version, not both"
    [ "$PURGE" -eq 0 ] || [ "$UNINSTALL" -eq 1 ] || die "--purge only goes with --uninstall"
}

detect_os() {
    if [ -z "$OS" ]; then
        [ -r "$OS_RELEASE" ] || die "cannot read $OS_RELEASE; pass --os bookworm|trixie"
        OS="$(. "$OS_RELEASE" && echo "${VERSION_CODENAME:-}")"
    fi
    case "$OS" in
        bookworm) PYTHON_VERSION=3.11 ;;
        trixie) PYTHON_VERSION=3.13 ;;
        *) die "unsupported OS '$OS': Raspberry Pi OS bookworm or trixie (pass --os)" ;;
    esac
    if [ "$TFLITE" -eq 1 ] && [ "$OS" != bookworm ]; then
        die "--tflite-runtime needs Bookworm: tflite-runtime has no wheel for Python $PYTHON_VERSION"
    fi
}

# What pip installs: a source tree, a released version, or this checkout when run from one.
pip_target() {
    local extra=edge
    [ "$TFLITE" -eq 1 ] && extra=tflite
    if [ -n "$SOURCE" ]; then
        echo "$SOURCE[$extra]"
    elif [ -n "$VERSION" ]; then
        echo "pi-inspect[$extra]==$VERSION"
    elif [ -f "$CHECKOUT/pyproject.toml" ]; then
        echo "$CHECKOUT[$extra]"
    else
        echo "pi-inspect[$extra]"
    fi
}

exists_user() { getent passwd "$1" >/dev/null 2>&1; }
exists_group() { getent group "$1" >/dev/null 2>&1; }

# The commands a real install runs, and the Debian package that brings each (Raspberry Pi OS
# has them all; a minimal Debian root may lack passwd). Checked before anything is changed.
declare -A TOOL_PACKAGE=([apt-get]=apt [getent]=libc-bin [groupadd]=passwd [useradd]=passwd
    [usermod]=passwd [chown]=coreutils [install]=coreutils [python3]=python3)

require_tools() {
    local tools=("${!TOOL_PACKAGE[@]}") tool missing=() packages=()
    [ "$EMULATED" -eq 1 ] && tools+=(apt-cache) && TOOL_PACKAGE[apt-cache]=apt
    [ "$EMULATED" -eq 1 ] || { tools+=(systemctl) && TOOL_PACKAGE[systemctl]=systemd; }
    for tool in "${tools[@]}"; do
        command -v "$tool" >/dev/null 2>&1 && continue
        missing+=("$tool")
        [[ " ${packages[*]} " == *" ${TOOL_PACKAGE[$tool]} "* ]] || packages+=("${TOOL_PACKAGE[$tool]}")
    done
    [ ${#missing[@]} -eq 0 ] || die "missing command(s): $(printf '%s\n' "${missing[@]}" | sort | tr '\n' ' ')(apt-get install ${packages[*]}); nothing was changed"
}

# True when apt knows an installable version of package $1.
apt_has() { apt-cache policy "$1" 2>/dev/null | grep -q '^ *Candidate: [^(]'; }

install_packages() {
    note "apt packages: ${APT_PACKAGES[*]}"
    run apt-get update
    local packages=("${APT_PACKAGES[@]}") pkg
    if [ "$EMULATED" -eq 1 ]; then
        packages=()
        for pkg in "${APT_PACKAGES[@]}"; do
            if apt_has "$pkg"; then
                packages+=("$pkg")
            else
                echo "emulated: skipping apt package $pkg (not in this root's archives;" \
                    "the Raspberry Pi archive has it)"
            fi
        done
    fi
    # --no-install-recommends keeps picamera2's GUI preview stack off a headless Pi.
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${packages[@]}"
}

create_user() {
    note "system user $SERVICE_USER (groups ${SERVICE_GROUPS[*]})"
    local g
    for g in "${SERVICE_GROUPS[@]}"; do
        if exists_group "$g"; then
            echo "group $g exists"
        else
            run groupadd --system "$g"
        fi
    done
    local groups
    groups="$(IFS=,; echo "${SERVICE_GROUPS[*]}")"
    if exists_user "$SERVICE_USER"; then
        echo "user $SERVICE_USER exists"
        run usermod --append --groups "$groups" "$SERVICE_USER"
    else
        run useradd --system --user-group --groups "$groups" --home-dir /var/lib/pi-inspect \
            --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    fi
}

create_venv() {
    note "venv $VENV (Python $PYTHON_VERSION, --system-site-packages for picamera2 and lgpio)"
    if [ -x "$VENV/bin/python" ]; then
        echo "venv exists"
    else
        run install -d -m 0755 "$PREFIX"
        run python3 -m venv --system-site-packages "$VENV"
    fi
    local target
    target="$(pip_target)"
    note "pip install $target"
    if [ "$OS" = bookworm ]; then
        # numpy<2: Debian's picamera2/simplejpeg are built against numpy 1.24 (see the file).
        run "$VENV/bin/pip" install --upgrade --constraint "$HERE/constraints-bookworm.txt" "$target"
    else
        run "$VENV/bin/pip" install --upgrade "$target"
    fi
    if [ -f "$CHECKOUT/docs/service.md" ]; then
        run install -D -m 0644 "$CHECKOUT/docs/service.md" "$PREFIX/docs/service.md"
    fi
}

install_config() {
    note "config $CONF_DIR/config.toml and models $MODELS_DIR"
    run install -d -m 0755 "$CONF_DIR"
    if [ -e "$CONF_DIR/config.toml" ]; then
        echo "keeping existing $CONF_DIR/config.toml"
    else
        run install -m 0640 "$HERE/config.example.toml" "$CONF_DIR/config.toml"
        run chown "root:$SERVICE_USER" "$CONF_DIR/config.toml"
    fi
    run install -d -m 0750 "$STATE_DIR" "$MODELS_DIR"
    run chown "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR" "$MODELS_DIR"
}

install_unit() {
    note "systemd unit $UNIT_DEST"
    run install -D -m 0644 "$HERE/$SERVICE.service" "$UNIT_DEST"
    if [ "$EMULATED" -eq 1 ]; then
        echo "emulated: skipping systemctl daemon-reload, enable and restart (no systemd runs here)"
        return
    fi
    run systemctl daemon-reload
    run systemctl enable "$SERVICE"
    # restart, not start: a re-run (upgrade) must load the new code and unit.
    run systemctl restart "$SERVICE"
    echo "logs: journalctl -u $SERVICE -f    health: $VENV/bin/pi-inspect doctor"
}

uninstall() {
    note "uninstall $SERVICE$([ "$PURGE" -eq 1 ] && echo ' (purge config, models, user)')"
    run systemctl disable --now "$SERVICE"
    run rm -f "$UNIT_DEST"
    run systemctl daemon-reload
    run rm -rf "$PREFIX"
    if [ "$PURGE" -eq 1 ]; then
        run rm -rf "$CONF_DIR" "$STATE_DIR" "$ROOT/var/log/pi-inspect"
        if exists_user "$SERVICE_USER"; then
            run userdel "$SERVICE_USER"
        fi
    else
        echo "kept $CONF_DIR, $STATE_DIR and user $SERVICE_USER (--purge removes them)"
    fi
    echo "apt packages are left installed: ${APT_PACKAGES[*]}"
}

main() {
    parse_args "$@"
    if [ "$DRY_RUN" -eq 0 ] && [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
        die "run as root (sudo), or with --dry-run to see the steps"
    fi
    if [ "$UNINSTALL" -eq 1 ]; then
        uninstall
        return
    fi
    detect_os
    [ "$DRY_RUN" -eq 1 ] || require_tools
    note "installing $SERVICE on $OS (Python $PYTHON_VERSION)$([ "$TFLITE" -eq 1 ] && echo ', tflite-runtime')$([ "$EMULATED" -eq 1 ] && echo ', emulated root')"
    install_packages
    create_user
    create_venv
    install_config
    install_unit
}

main "$@"
