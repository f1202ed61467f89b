#!/usr/bin/env bash
# Cached Debian arm64 roots for the Raspberry Pi check (sourced by tests/pi/run.sh).
#
# Two layers per release, each built into a temporary directory beside it and renamed into
# place only when complete, so a build that was killed half-way is never reused:
#   base-RELEASE-KEY       mmdebstrap: Debian arm64 with the Pi OS base's Python and the
#                          Debian-packaged part of picamera2's dependencies
#   installed-RELEASE-KEY  a copy of base after `tests/pi/inside.sh install`: the first run of
#                          systemd/install.sh --emulated (and the tflite-runtime install on
#                          Bookworm) plus the test tools
# KEY hashes what went into the layer: the package lists and PI_ROOT_FORMAT for base; for
# installed, base's key, the Pi's dependency set (tests/pi/depset.py: pyproject.toml's
# dependencies, [edge] and [tflite] extras, build requirements), the Bookworm constraints,
# install.sh's apt package list, the test tools and PI_INSTALLED_FORMAT. Changing any of them
# builds a new layer (cold: tens of minutes, see docs/benchmarks.md); a change to the project's
# code, or to the rest of install.sh, does not: every check re-runs install.sh (the upgrade
# path) in a throwaway overlay on the cached layer, which reinstalls only the project. Old
# layers stay until deleted (rm -rf the cache folder).

PI_CACHE="${PI_INSPECT_PI_CACHE:-/var/cache/pi-inspect/pi-roots}"
PI_ROOT_FORMAT=1  # bump when the way a base root is made changes
PI_INSTALLED_FORMAT=1  # bump when tests/pi/inside.sh's "install" steps change
PI_TEST_TOOLS=(pytest pytest-timeout hypothesis)  # pip installs them into the service venv

# Raspberry Pi OS 12 / 13 are Debian Bookworm / Trixie plus the Raspberry Pi archive. Debian
# has no python3-picamera2, python3-simplejpeg or python3-libcamera; it has the rest of
# picamera2's dependencies, and python3-bottleneck stands in for simplejpeg: a small C
# extension built against Debian's numpy, which a pip numpy of another major version breaks.
# No ca-certificates: pip brings its own CA bundle, apt uses signed http, and configuring it
# under qemu costs minutes.
PI_BASE_PACKAGES=(python3 python3-venv python3-numpy python3-bottleneck python3-pil
    python3-piexif python3-prctl)
# What Raspberry Pi OS Lite has that a release's minimal Debian set lacks. Trixie dropped
# passwd (groupadd, useradd, usermod: install.sh creates the service user) from "required";
# Bookworm's required set still has it.
PI_BASE_EXTRA_bookworm=()
PI_BASE_EXTRA_trixie=(passwd)

pi_base_packages() {  # $1 release: the packages its base root is built with
    local extra="PI_BASE_EXTRA_$1[@]"
    printf '%s\n' "${PI_BASE_PACKAGES[@]}" "${!extra}"
}

pi_hash() { sha256sum | cut -c1-12; }

pi_base_key() {
    { printf '%s\n' "format $PI_ROOT_FORMAT" "$1"; pi_base_packages "$1"; } | pi_hash
}

pi_roots_cached() {  # $1 checkout, then releases: whether each one's installed layer exists
    local checkout="$1" release key
    shift
    for release in "$@"; do
        key="$(pi_installed_key "$release" "$checkout")" || return 1
        [ -d "$PI_CACHE/installed-$release-$key" ] || return 1
    done
}

pi_installed_key() {  # $1 release, $2 checkout
    local deps
    deps="$("${PYTHON:-python3}" "$2/tests/pi/depset.py" "$2/pyproject.toml")" || return 1
    { pi_base_key "$1"
      echo "$deps"
      cat "$2/systemd/constraints-bookworm.txt"
      grep -E '^APT_PACKAGES=' "$2/systemd/install.sh"
      printf '%s\n' "installed format $PI_INSTALLED_FORMAT" "tools ${PI_TEST_TOOLS[*]}"
    } | pi_hash
}

# Hold an exclusive lock on the cache for release $1 while "$@" runs (one builder at a time).
pi_locked() {
    local release="$1"
    shift
    mkdir -p "$PI_CACHE"
    (
        flock 9
        "$@"
    ) 9>"$PI_CACHE/.lock-$release"
}

# Remove what killed builds left behind (only when no build holds the lock). Builds mount
# only in private mount namespaces, which die with them; should a mount still be there,
# --one-file-system keeps rm from descending into it (a bound /dev or /sys).
pi_clean_partial() {
    local dir
    for dir in "$PI_CACHE"/.building-*-"$1"-*; do
        [ -e "$dir" ] || continue
        echo "== removing a half-built root left by a killed build: $dir" >&2
        rm -rf --one-file-system "$dir"
    done
}

# Print the path of the base root for $1, building it when absent.
pi_base_root() {
    local release="$1" dest tmp packages t0=$SECONDS
    dest="$PI_CACHE/base-$release-$(pi_base_key "$release")"
    if [ ! -d "$dest" ]; then
        pi_clean_partial "$release"
        tmp="$PI_CACHE/.building-base-$release-$$"
        packages="$(pi_base_packages "$release" | paste -sd,)"
        echo "== building the $release arm64 root (mmdebstrap under qemu, minutes): $dest" >&2
        # In a private mount namespace: mmdebstrap's /proc, /sys and /dev mounts in the root
        # vanish with it, even when it is killed.
        if ! unshare --mount --propagation private mmdebstrap --quiet --variant=apt \
            --architectures=arm64 --include="$packages" "$release" "$tmp" >&2; then
            rm -rf --one-file-system "$tmp"
            echo "pi check: error: mmdebstrap could not build the $release arm64 root" >&2
            return 1
        fi
        mv -T "$tmp" "$dest"
        echo "== built the $release arm64 root in $((SECONDS - t0)) s" >&2
    fi
    echo "$dest"
}
