#!/usr/bin/env bash
# The demo model and the checked-in demo bundle, end to end: synthetic training data (seed 1),
# a small BatchNorm conv net at 96 px (16 000 images, 14 cosine epochs), its evaluation on a
# held-out set rendered with another seed (seed 2), Grad-CAM, and the verified int8 conversion
# into edge/assets/demo_bundle. Results and timings: docs/results.md.
# Usage: train/demo.sh [OUT_ROOT]   (default: the repo root; writes data/ and runs/ under it)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
ROOT=${1:-$REPO}
DATA=$ROOT/data/seam
TEST=$ROOT/data/seam_test
RUN=$ROOT/runs/demo
EPOCHS=${EPOCHS:-14}

[ -f "$DATA/labels.csv" ] || pi-inspect synth --out "$DATA" --count 16000 --seed 1
[ -f "$TEST/labels.csv" ] || pi-inspect synth --out "$TEST" --count 1000 --seed 2

time pi-inspect train --data "$DATA" --arch cnn --size 96 --epochs "$EPOCHS" --out "$RUN" \
    --augment brightness,hflip,vflip --schedule cosine --patience 15 --seed 0
pi-inspect evaluate "$RUN" --data "$TEST" --robustness
pi-inspect gradcam "$RUN" "$TEST" --out "$RUN/gradcam" --limit 48
pi-inspect convert "$RUN" --out "$REPO/edge/assets/demo_bundle" --calib "$DATA" --test "$TEST" \
    --name seam-demo --version 1.0.0 --force
