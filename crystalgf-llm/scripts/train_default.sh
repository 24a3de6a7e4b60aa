#!/usr/bin/env bash
# Reproduces the shipped adapter crystalgf-llm/src/crystalgf_llm/adapters/smollm2-crystalgf:
# SmolLM2-135M-Instruct + LoRA (q/k/v, r=16) on the training split of the method's constraint
# data (both tasks, one random input mode per crystal and epoch, 3 retrieved neighbours), then the
# fusion weights tuned on the validation split (the candidate G also counts the MP-20 sample).
# The shipped adapter is epoch 1 of a 2-epoch cosine
# schedule at 2e-4 (CPU budget; finish the schedule with `crystalgf train g ... --epochs 2 --resume`).
# About 50 min on 2 CPU cores (training) + 10 min (tuning, all four input modes).
set -euo pipefail
DATA=${DATA:-../shared/data/crystalgf_constraints/constraints.csv}
OUT=${OUT:-crystalgf-llm/src/crystalgf_llm/adapters/smollm2-crystalgf}
MP20=${MP20:-../shared/data/mp_20_sample}
crystalgf train g --data "$DATA" --epochs 2 --stop-after 1 --batch-size 16 --learning-rate 2e-4 --seed 0 -o "$OUT" "$@"
python crystalgf-llm/scripts/tune_fusion.py --data "$DATA" --adapter "$OUT" --candidates forest \
    --structures "$MP20"/train.csv "$MP20"/val.csv "$MP20"/test.csv
rm -f "$OUT/train_state.pt" "$OUT/README.md"
