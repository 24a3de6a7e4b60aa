#!/usr/bin/env bash
# The GPU runs of the diffusion H (benchmarks/README.md, row 2b), on a machine with torch
# and a GPU but no structure libraries. Inputs come from `python benchmarks/diffusion_gpu.py prepare`.
# Trains the full (6 x 512) and the small preset on Perov-5 val for MINUTES each (both at once on the one
# GPU), samples the Perov-5 test set with each in one batch, and times the shipped general-small on the
# MP-20 sample test, then samples Perov-5 test with 1,000 steps (full model). Takes MINUTES + about 4.5 minutes
# on an H100 (the 1,000-step run about 2 of them). Usage, from the repository root:
#   bash benchmarks/diffusion_gpu.sh INPUTS OUT [MINUTES [BATCH]]
set -uo pipefail
inputs=$1 out=$2 minutes=${3:-6} batch=${4:-256}
export PYTHONPATH=crystalgf-core/src:crystalgf-diffusion/src PYTHONUNBUFFERED=1
gpu() { timeout "$1" python3 benchmarks/diffusion_gpu.py "${@:2}"; }
mkdir -p "$out"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/gpu.txt" 2>&1
budget=$(python3 -c "print(int($minutes * 60 + 90))")
for preset in full small; do
    gpu "$budget" train "$inputs/perov_5_val.pt" -o "$out/perov5-$preset" --preset $preset --minutes "$minutes" --batch-size "$batch" \
        > "$out/train-$preset.log" 2>&1 &
done
wait
for preset in full small; do
    for mode in "" --unconditioned; do
        gpu 120 sample "$out/perov5-$preset" "$inputs/perov_5_test.pt" $mode \
            -o "$out/samples/perov5-${preset}${mode:+-unconditioned}-100.pt"
    done
done
gpu 120 sample crystalgf-diffusion/src/crystalgf_diffusion/weights/general-small "$inputs/mp_20_sample_test.pt" \
    -o "$out/samples/general-small-mp20-100.pt"
gpu 150 sample "$out/perov5-full" "$inputs/perov_5_test.pt" --steps 1000 -o "$out/samples/perov5-full-1000.pt"
