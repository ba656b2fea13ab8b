#!/usr/bin/env bash
# The comparison of the CPU-scale test of the paper's claim (after benchmarks/claim_search.sh).
# Two `racl compare` processes run side by side (one thread each, on the 2-core machine): the three
# searched genotypes + ResNet-18, and the three published cells. Identical budget, data, seeds and
# evaluation; rerun to resume. Usage: benchmarks/claim_compare.sh [OUT_ROOT]
set -euo pipefail
ROOT=${1:-runs/claim}
ZIP=${ZIP:-../shared/data/cifar10-train-jpg.zip}
COMMON=(--dataset imagefolder --data-dir "$ZIP" --limit 200 --image-size 16
        --seeds 0 1 2 --epochs 8 --channels 8 --layers 5 --batch-size 64 --lr 0.05 --steps 5
        --drop-path 0 --val-images 0 --checkpoint last --attacks pgd20,autoattack --eval-limit 100)
run() {  # run OUT ARCH...
  local out=$1; shift
  local flag=; [ -f "$out/plan.json" ] && flag=--resume
  OMP_NUM_THREADS=1 .venv/bin/racl compare --genotypes "$@" "${COMMON[@]}" --out "$out" $flag
}
run "$ROOT/compare-searched" racl="$ROOT/search-racl" darts="$ROOT/search-darts" \
    random="$ROOT/search-random" resnet18 > "$ROOT/compare-searched.log" 2>&1 &
run "$ROOT/compare-published" RACL ADVRUSH DARTS_V2 > "$ROOT/compare-published.log" 2>&1 &
wait
