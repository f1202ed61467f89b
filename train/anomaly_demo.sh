#!/usr/bin/env bash
# The demo anomaly bundle end to end: good seams only (seed 1), the anomaly model trained on
# them, its evaluation on a labelled held-out set rendered with another seed (seed 2), and the
# verified int8 conversion into edge/assets/anomaly_bundle. Results: docs/results.md.
# Usage: train/anomaly_demo.sh [OUT_ROOT]   (default: the repo root; writes data/ and runs/)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${1:-$REPO}
GOOD=$ROOT/data/seam_good
TEST=$ROOT/data/seam_test
RUN=$ROOT/runs/anomaly
EPOCHS=${EPOCHS:-50}

[ -f "$GOOD/labels.csv" ] || pi-inspect synth --out "$GOOD" --count 2011 --seed 1 --good-only
[ -f "$TEST/labels.csv" ] || pi-inspect synth --out "$TEST" --count 1000 --seed 2

time pi-inspect train --task anomaly --data "$GOOD" --epochs "$EPOCHS" --out "$RUN" --seed 0
pi-inspect evaluate "$RUN" --data "$TEST" --robustness
pi-inspect convert "$RUN" --out "$REPO/edge/assets/anomaly_bundle" --test "$TEST" \
    --name seam-anomaly --version 1.1.0 --force
# the figures that count: int8, on a seed nothing was tuned on
[ -f "$ROOT/data/seam_seed3/labels.csv" ] || pi-inspect synth --out "$ROOT/data/seam_seed3" --count 2000 --seed 3
pi-inspect evaluate "$RUN" --data "$ROOT/data/seam_seed3" --bundle "$REPO/edge/assets/anomaly_bundle" --robustness
pi-inspect demo --anomaly
