#!/usr/bin/env bash
# NAS-Bench-201 at CPU scale (docs/nb201.md, "Evidence"): racl vs darts vs random searches in the NB201
# space, every found cell and the zoo's reference cells adversarially trained and attacked under one
# protocol (docs/claim.md's pgd2), so that DARTS's collapse and the effect of RACL's constraint show.
#
# Resumable and safe to run several times at once (one process per core), like benchmarks/claim.sh:
# searches are locked with flock, comparison runs are claimed by `racl compare` itself.
#
#   benchmarks/nb201.sh                                  all stages in order
#   STAGES="searches searched" benchmarks/nb201.sh &  STAGES="reference searches" benchmarks/nb201.sh &
#   SEEDS="0" benchmarks/nb201.sh                        training seed 0 only (the others later)
#   SEARCH_SEEDS="0" benchmarks/nb201.sh                 search seed 0 only
#
# Stages:
#   reference  the zoo's NB201 cells: the best CIFAR-10 cell, the ResNet cell, all-conv3x3 and the
#              all-skip cell DARTS collapses to (the control: it must come out clearly below the best)
#   searches   racl, darts and random, search seeds 0 1 2 (quick preset, the NB201 supernet at C = 8, N = 1)
#   nonone     racl and darts with supernet.keep_none=false (a discrete edge may not keep `none`), seeds 0 1 2
#   searched   each finished search's cell trained with SEEDS
#   table      benchmarks/nb201_table.py -> ROOT/PROTOCOL/nb201.md
set -euo pipefail
ROOT=${ROOT:-runs/nb201}
ZIP=${ZIP:-../shared/data/cifar10-train-jpg.zip}
RACL=${RACL:-.venv/bin/racl}
PY=${PY:-.venv/bin/python}
STAGES=${STAGES:-reference searches nonone searched table}
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"  # training seeds
read -r -a SEARCH_SEEDS <<< "${SEARCH_SEEDS:-0 1 2}"  # search seeds
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# the claim experiment's data: 500 images per class at 32x32, stratified, data seed 0: train 4,000 / val 500 / test 500
DATA=(--dataset imagefolder --data-dir "$ZIP" --limit 500 --data-seed 0)
PROTOCOL=pgd2
# docs/claim.md's pgd2 protocol; the NB201 network at C = 8 and one cell per stage (3 cells, 2 residual blocks)
BUDGET=(--epochs 10 --channels 8 --layers 1 --batch-size 64 --lr 0.05 --eps 8/255 --drop-path 0 --adv pgd --steps 2
        --alpha 4/255 --attack-mode eval --val-images 0)
EVAL=(--weights last --attacks pgd20,cw --n-images 0 --eval-seed 0)
SEARCH=(--preset quick --set space=nb201 --set supernet.channels=8 --set supernet.layers=1)
mkdir -p "$ROOT/search" "$ROOT/logs" "$ROOT/$PROTOCOL"

compare() {  # compare NAME ARCH...: one comparison folder; --resume both starts and continues it
  local name=$1; shift
  "$RACL" compare --genotypes "$@" --seeds "${SEEDS[@]}" "${DATA[@]}" "${BUDGET[@]}" "${EVAL[@]}" \
    --out "$ROOT/$PROTOCOL/$name" --resume >> "$ROOT/logs/${name//\//-}.$$.log" 2>&1 \
    || echo "comparison $name: failed runs (see its results.md and log); the others are kept"
}

search_done() {  # search_done DIR: all its epochs are in metrics.jsonl
  [ -f "$1/metrics.jsonl" ] && [ "$(wc -l < "$1/metrics.jsonl")" -ge 4 ]
}

search() {  # search STRATEGY SEED [NAME EXTRA...] (skipped while another worker holds it)
  local strategy=$1 seed=$2 name=${3:-$1}; shift 2; [ $# -gt 0 ] && shift
  local out="$ROOT/search/$name-seed$seed"
  search_done "$out" && return 0
  local flag=--overwrite; [ -f "$out/checkpoint.safetensors" ] && flag=--resume
  flock -n "$out.lock" "$RACL" search "${SEARCH[@]}" "$@" --strategy "$strategy" --seed "$seed" "${DATA[@]}" \
    --out "$out" $flag >> "$ROOT/logs/search-$name-seed$seed.log" 2>&1 || echo "search $name seed $seed: busy or failed"
}

main() {  # a function: bash reads it whole, so editing this file does not disturb running workers
for stage in $STAGES; do
  echo "== $stage ($(date -u +%H:%M:%S))"
  case $stage in
    reference)
      compare compare-reference NB201_BEST_CIFAR10 NB201_RESNET NB201_ALL_CONV3X3 NB201_ALL_SKIP ;;
    searches)
      for s in "${SEARCH_SEEDS[@]}"; do search darts "$s"; search racl "$s"; search random "$s"; done ;;
    nonone)
      for s in "${SEARCH_SEEDS[@]}"; do
        search racl "$s" racl-nonone --set supernet.keep_none=false
        search darts "$s" darts-nonone --set supernet.keep_none=false
      done ;;
    searched)
      for dir in "$ROOT"/search/{racl,darts,random,racl-nonone,darts-nonone}-seed*/; do
        [ -d "$dir" ] || continue
        dir=${dir%/}; name=$(basename "$dir")
        search_done "$dir" && compare "compare-searched/$name" "$name=$dir"
      done ;;
    table)
      "$PY" benchmarks/nb201_table.py "$ROOT" "$PROTOCOL" > "$ROOT/$PROTOCOL/nb201.md" && cat "$ROOT/$PROTOCOL/nb201.md" ;;
    *) echo "unknown stage $stage (known: reference searches nonone searched table)"; exit 2 ;;
  esac
done
}

main "$@"; exit
