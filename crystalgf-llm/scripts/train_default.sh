#!/usr/bin/env bash
# Reproduces the shipped adapter crystalgf-llm/src/crystalgf_llm/adapters/smollm2-crystalgf:
# SmolLM2-135M-Instruct + LoRA (q/k/v, r=16) on the training split of the method's constraint
# data (both tasks, one random input mode per crystal and epoch, 3 retrieved neighbours).
# 2 epochs at 2e-4 (fewer steps than the method's runs, hence twice its learning rate); ~90 min on 2 CPU cores.
set -euo pipefail
DATA=${DATA:-../shared/data/crystalgf_constraints/constraints.csv}
OUT=${OUT:-crystalgf-llm/src/crystalgf_llm/adapters/smollm2-crystalgf}
crystalgf train g --data "$DATA" --epochs 2 --batch-size 16 --learning-rate 2e-4 --seed 0 -o "$OUT" "$@"
rm -f "$OUT/train_state.pt" "$OUT/README.md"
