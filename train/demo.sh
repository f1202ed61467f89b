#!/usr/bin/env bash
# The demo model, end to end: synthetic training data (seed 1), a small BatchNorm conv net at
# 96 px, and its evaluation on a held-out set rendered with another seed (seed 2).
# Usage: train/demo.sh [OUT_ROOT]   (default: the repo root; writes data/ and runs/ under it)
set -euo pipefail
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
DATA=$ROOT/data/seam
TEST=$ROOT/data/seam_test
RUN=$ROOT/runs/demo
EPOCHS=${EPOCHS:-12}

[ -f "$DATA/labels.csv" ] || pi-inspect synth --out "$DATA" --count 6000 --seed 1
[ -f "$TEST/labels.csv" ] || pi-inspect synth --out "$TEST" --count 1000 --seed 2

time pi-inspect train --data "$DATA" --arch cnn --size 96 --epochs "$EPOCHS" --out "$RUN" \
    --augment brightness,roll,blur --seed 0
pi-inspect evaluate "$RUN" --data "$TEST" --robustness
pi-inspect gradcam "$RUN" "$TEST" --out "$RUN/gradcam" --limit 48
