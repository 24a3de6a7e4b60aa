#!/usr/bin/env bash
# The diffusion H held to DiffCSP++'s training budget on Perov-5 (434 s on one H100; benchmarks/README.md,
# row 2c), on a machine with torch and a GPU but no structure libraries. Trains the small preset alone on
# Perov-5 val until the epoch in which MINUTES of training have passed (default 7.15 = 429 s; with its
# setup the run of 2026-11-27 took 434.6 s, DiffCSP++'s whole training took 434 s), then
# samples the whole Perov-5 test set in one batch: conditioned at each GUIDANCE (default 1), unconditioned,
# and conditioned at the first GUIDANCE with 1,000 steps. Inputs come from
# `python benchmarks/diffusion_gpu.py prepare`; the checkpoint (without its training state) and the samples
# are packed into OUT/budget.tar for `diffusion_gpu.py evaluate` here. About MINUTES + 1.5 minutes on an H100.
#   bash benchmarks/diffusion_gpu_budget.sh INPUTS OUT [MINUTES [GUIDANCE ...]]
set -uo pipefail
inputs=$1 out=$2 minutes=${3:-7.15}
guidances=("${@:4}")
[ ${#guidances[@]} -gt 0 ] || guidances=(1.0)
export PYTHONPATH=crystalgf-core/src:crystalgf-diffusion/src PYTHONUNBUFFERED=1
work=$(mktemp -d)
run=$work/perov5-small-budget
gpu() { timeout "$1" python3 benchmarks/diffusion_gpu.py "${@:2}"; }
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$work/gpu.txt" 2>&1
gpu "$(python3 -c "print(int($minutes * 60 + 90))")" train "$inputs/perov_5_val.pt" -o "$run" --preset small \
    --minutes "$minutes"
test=$inputs/perov_5_test.pt
for guidance in "${guidances[@]}"; do
    gpu 120 sample "$run" "$test" --guidance "$guidance" -o "$work/samples/budget-g$guidance-100.pt"
done
gpu 120 sample "$run" "$test" --unconditioned -o "$work/samples/budget-unconditioned-100.pt"
gpu 150 sample "$run" "$test" --guidance "${guidances[0]}" --steps 1000 -o "$work/samples/budget-g${guidances[0]}-1000.pt"
rm -f "$run/train_state.pt"
tar -C "$work" -cf "$out/budget.tar" .
