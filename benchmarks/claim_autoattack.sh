#!/usr/bin/env bash
# Standard AutoAttack on the seed-0 checkpoint of each architecture of the claim comparison, on the
# same 100 test images (seed 0) as the comparison's PGD-20. Usage: benchmarks/claim_autoattack.sh LABEL...
set -euo pipefail
ROOT=${ROOT:-runs/claim}
for label in "$@"; do
  ckpt=$(ls -d "$ROOT"/compare-*/runs/"$label"/seed0/train/last.safetensors)
  out=$(dirname "$(dirname "$ckpt")")/eval-autoattack
  [ -f "$out/results.json" ] && { echo "done: $out"; continue; }
  OMP_NUM_THREADS=1 .venv/bin/racl evaluate --checkpoint "$ckpt" --attacks autoattack --eps 8/255 \
    --n-images 100 --seed 0 --batch-size 128 --out "$out"
done
