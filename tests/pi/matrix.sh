#!/usr/bin/env bash
# The Pi check over several release/cpu combinations (tests/run.sh's last step wherever the
# host can run it, see PI_INSPECT_PI there).
#
#   sudo tests/pi/matrix.sh [--write-docs]
#
# PI_INSPECT_PI_MATRIX picks the combinations:
#   ci (default)  bookworm/cortex-a72 and trixie/cortex-a76: both releases, both cpus
#   all           the four combinations
#   "bookworm:cortex-a76 trixie:cortex-a72 ..."   any list
# PI_INSPECT_PI_BREAK="numpy2 cpuinfo" (the default) also runs the Bookworm/A72 check with
# numpy 2 forced into the venv, and with the x86 host's cpu files left in the root, and
# requires each to FAIL at its own step (PI_FAIL_FAST: it stops at the first failed step): a
# check that cannot fail proves nothing. PI_INSPECT_PI_BREAK=none skips that.
# PI_INSPECT_PI_JOBS (default 2): how many of these run side by side.
# --write-docs puts the rows into the "Tested on" table of docs/service.md (between its
# pi-tested-on markers; rows of combinations not run are kept).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHECKOUT="$(cd "$HERE/../.." && pwd)"
WRITE_DOCS=0
[ "${1:-}" = --write-docs ] && WRITE_DOCS=1

case "${PI_INSPECT_PI_MATRIX:-ci}" in
    ci) combos=(bookworm:cortex-a72 trixie:cortex-a76) ;;
    all) combos=(bookworm:cortex-a72 bookworm:cortex-a76 trixie:cortex-a72 trixie:cortex-a76) ;;
    *) read -r -a combos <<< "$PI_INSPECT_PI_MATRIX" ;;
esac

# Build the releases' roots side by side first (a cold machine: mmdebstrap and pip under qemu
# are mostly single-threaded, so two builds use two cores); warm, this finds them at once.
releases=()
for combo in "${combos[@]}"; do
    [[ " ${releases[*]} " == *" ${combo%%:*} "* ]] || releases+=("${combo%%:*}")
done
pids=()
for release in "${releases[@]}"; do
    cpu=cortex-a72
    for combo in "${combos[@]}"; do [ "${combo%%:*}" = "$release" ] && cpu="${combo#*:}" && break; done
    bash "$HERE/run.sh" "$release" "$cpu" --build-only > >(sed "s/^/[$release build] /") 2>&1 &
    pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid" || true; done  # a failed build fails its checks below

# The checks, then the deliberate breakages, PI_INSPECT_PI_JOBS (default 2) at a time: each is
# mostly one busy qemu thread, so two side by side keep a 2-core machine's cores busy. A job's
# output is printed whole when it ends, so the log reads one check at a time.
# The step each breakage must fail at: failing elsewhere (the network, say) would prove
# nothing about the check.
declare -A break_step=([numpy2]=stack [cpuinfo]=cpu-files [cpu-max]=cpu-model)
read -r -a breakages <<< "${PI_INSPECT_PI_BREAK:-numpy2 cpuinfo}"
queue=()
for combo in "${combos[@]}"; do queue+=("check:$combo"); done
for breakage in "${breakages[@]}"; do [ "$breakage" = none ] || queue+=("break:$breakage"); done
jobs_max="${PI_INSPECT_PI_JOBS:-2}"
rows="$(mktemp)"
logs="$(mktemp -d)"
trap 'rm -rf "$rows" "$logs"' EXIT
failed=()
started=$SECONDS

launch() {  # $1: a queue entry; runs it in the background, leaves NAME.log and NAME.status
    local kind="${1%%:*}" what="${1#*:}" name="${1//:/-}"
    (
        start=$SECONDS rc=0
        if [ "$kind" = check ]; then
            PI_INSPECT_PI_ROWS="$rows" bash "$HERE/run.sh" "${what%%:*}" "${what#*:}" \
                > "$logs/$name.log" 2>&1 || rc=$?
        else
            PI_FAIL_FAST=1 bash "$HERE/run.sh" bookworm cortex-a72 --break "$what" \
                > "$logs/$name.log" 2>&1 || rc=$?
        fi
        # written whole, then renamed: report_finished reads a status file the moment it exists
        echo "$rc $((SECONDS - start))" > "$logs/$name.status.part"
        mv "$logs/$name.status.part" "$logs/$name.status"
    ) &
}

report() {  # $1: a finished queue entry: its output, then its verdict
    local kind="${1%%:*}" what="${1#*:}" name="${1//:/-}" rc took expected
    read -r rc took < "$logs/$name.status"
    echo
    echo "==== $kind $what ($took s) ===="
    cat "$logs/$name.log"
    if [ "$kind" = check ]; then
        [ "$rc" -eq 0 ] || failed+=("$what")
        echo "== $what took $took s"
        return
    fi
    expected="${break_step[$what]:-?}"
    if [ "$rc" -eq 0 ]; then
        echo "pi check: error: the deliberately broken install ($what) passed" >&2
        failed+=("break-$what")
    elif ! grep -q "^FAILED step: $expected " "$logs/$name.log"; then
        echo "pi check: error: the broken install ($what) failed, but not at step '$expected'" >&2
        failed+=("break-$what")
    else
        echo "== as required, the broken install ($what) failed at step '$expected' ($took s)"
    fi
}

reported=" "
report_finished() {
    local entry
    for entry in "${queue[@]}"; do
        [ -e "$logs/${entry//:/-}.status" ] || continue
        [[ "$reported" == *" $entry "* ]] && continue
        report "$entry"
        reported+="$entry "
    done
}

echo "== pi check: ${queue[*]}; $jobs_max at a time"
for entry in "${queue[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n || true
        report_finished
    done
    launch "$entry"
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do
    wait -n || true
    report_finished
done
report_finished
echo "== pi check: all jobs ended in $((SECONDS - started)) s"

echo
echo "Tested on:"
cat "$rows"
if [ "$WRITE_DOCS" -eq 1 ]; then
    python3 - "$CHECKOUT/docs/service.md" "$rows" <<'PY'
import sys
from pathlib import Path

doc, new = Path(sys.argv[1]), Path(sys.argv[2]).read_text().splitlines()
begin, end = "<!-- pi-tested-on:begin -->", "<!-- pi-tested-on:end -->"
text = doc.read_text()
head, rest = text.split(begin)
body, tail = rest.split(end)
lines = body.strip("\n").splitlines()
header, rows = lines[:2], lines[2:]
key = lambda row: tuple(c.strip() for c in row.strip("|").split("|"))[::5][:2]
merged = {key(r): r for r in rows}
merged.update({key(r): r for r in new if r.startswith("|")})
body = "\n".join(header + [merged[k] for k in sorted(merged)])
doc.write_text(f"{head}{begin}\n{body}\n{end}{tail}")
print(f"wrote {len(new)} row(s) into {doc}")
PY
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "pi check: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "pi check: all passed (${combos[*]})"
