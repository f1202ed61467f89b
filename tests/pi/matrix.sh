#!/usr/bin/env bash
# The Pi check over several release/cpu combinations (tests/run.sh's last step with
# PI_INSPECT_PI=run).
#
#   sudo tests/pi/matrix.sh [--write-docs]
#
# PI_INSPECT_PI_MATRIX picks the combinations:
#   ci (default)  bookworm/cortex-a72 and trixie/cortex-a76: both releases, both cpus
#   all           the four combinations
#   "bookworm:cortex-a76 trixie:cortex-a72 ..."   any list
# PI_INSPECT_PI_BREAK="numpy2 cpuinfo" (the default) also runs the Bookworm/A72 check with
# numpy 2 forced into the venv, and with the x86 host's cpu files left in the root, and
# requires each to FAIL with its reason (PI_FAIL_FAST: it stops at the first failed step): a
# check that cannot fail proves nothing. PI_INSPECT_PI_BREAK=none skips that.
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

rows="$(mktemp)"
trap 'rm -f "$rows"' EXIT
failed=()
for combo in "${combos[@]}"; do
    start=$SECONDS
    PI_INSPECT_PI_ROWS="$rows" bash "$HERE/run.sh" "${combo%%:*}" "${combo#*:}" || failed+=("$combo")
    echo "== $combo took $((SECONDS - start)) s"
done

# The step each deliberate breakage must fail at: failing elsewhere (the network, say) would
# prove nothing about the check.
declare -A break_step=([numpy2]=stack [cpuinfo]=cpu-files [cpu-max]=cpu-model)
read -r -a breakages <<< "${PI_INSPECT_PI_BREAK:-numpy2 cpuinfo}"
for breakage in "${breakages[@]}"; do
    [ "$breakage" = none ] && continue
    start=$SECONDS
    expected="${break_step[$breakage]:-?}"
    echo "== the check must fail at step '$expected' on a broken install: bookworm cortex-a72 --break $breakage"
    log="$(mktemp)"
    if PI_FAIL_FAST=1 bash "$HERE/run.sh" bookworm cortex-a72 --break "$breakage" 2>&1 | tee "$log"; then
        echo "pi check: error: the deliberately broken install ($breakage) passed" >&2
        failed+=("break-$breakage")
    elif ! grep -q "^FAILED step: $expected " "$log"; then
        echo "pi check: error: the broken install ($breakage) failed, but not at step '$expected'" >&2
        failed+=("break-$breakage")
    else
        echo "== as required, the broken install ($breakage) failed at '$expected' ($((SECONDS - start)) s)"
    fi
    rm -f "$log"
done

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
