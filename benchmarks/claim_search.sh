#!/usr/bin/env bash
# The searches of the CPU-scale test of the paper's claim (README, "The paper's claim at CPU scale").
# Resumable: rerunning continues unfinished searches. Usage: benchmarks/claim_search.sh [OUT_ROOT]
set -euo pipefail
ROOT=${1:-runs/claim}
ZIP=${ZIP:-../shared/data/cifar10-train-jpg.zip}
DATA=(--dataset imagefolder --data-dir "$ZIP" --limit 200 --image-size 16)
for strategy in racl darts random; do
  out="$ROOT/search-$strategy"
  if [ -f "$out/metrics.jsonl" ] && [ "$(wc -l < "$out/metrics.jsonl")" -ge 6 ]; then echo "done: $out"; continue; fi
  flag=--overwrite; [ -f "$out/checkpoint.safetensors" ] && flag=--resume
  .venv/bin/racl search --preset quick --strategy "$strategy" --epochs 6 --set warmup_epochs=2 --seed 0 \
    "${DATA[@]}" --out "$out" $flag
done
