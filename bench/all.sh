#!/usr/bin/env bash
# Every benchmark in one run on the GPU machine (after `source .gpu/setup.sh`), PyTorch beside us where a
# benchmark has a PyTorch twin. Usage: bash bench/all.sh [outdir]   (each benchmark's output is also saved)
set -uo pipefail
out=${1:-bench-out}; mkdir -p "$out"
export WEBGPU_DEVICE=${WEBGPU_DEVICE:-gpu}
status=0
for b in subgroup_matrix matmul attention layernorm adaln activation optim; do
  [ -f "dist/bench/$b.mjs" ] || continue
  echo "=== $b"
  extra=(); [ "$b" = matmul ] && extra=(--f16x3) # the f32-from-f16x3 forms beside the f32 kernel
  node "dist/bench/$b.mjs" "${extra[@]}" 2>&1 | tee "$out/$b.txt" || status=1
done
exit $status
