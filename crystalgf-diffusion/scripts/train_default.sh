#!/usr/bin/env bash
# Re-creates the shipped checkpoint crystalgf_diffusion/weights/perov5-small from the shared data.
# Usage (from the repository root, next to ../shared): bash crystalgf-diffusion/scripts/train_default.sh
# 300 epochs take about 17 minutes on 2 CPU cores.
set -euo pipefail
out=${1:-/tmp/crystalgf-perov5-small}
crystalgf train h --data ../shared/data/perov_5/val.csv --property all --preset small \
    --epochs 300 --batch-size 256 --seed 0 -o "$out"
target=crystalgf-diffusion/src/crystalgf_diffusion/weights/perov5-small
mkdir -p "$target"
cp "$out/model.pt" "$out/config.json" "$out/history.json" "$target/"
sha256sum "$target/model.pt"
