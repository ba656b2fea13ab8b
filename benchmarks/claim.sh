#!/usr/bin/env bash
# The paper's claim at 32x32 (docs/claim.md): does the RACL search buy robustness at equal cost?
#
# One script for the whole experiment. Resumable at any point (kill it; run it again) and safe to run
# several times at once, one process per core: searches are locked with flock, comparison runs are
# claimed by `racl compare` itself, so parallel workers share the work. Every run adds finished pieces.
#
#   benchmarks/claim.sh                      all stages in order
#   STAGES="reference searches" benchmarks/claim.sh    chosen stages, in that order
#   benchmarks/claim.sh &  STAGES="searches reference searched" benchmarks/claim.sh &   two workers
#
# Stages:
#   reference  controls and published cells: WEAK (skip/pool only), DARTS_V2, RACL, ADVRUSH, PC_DARTS,
#              ResNet-18 at a width matched to DARTS_V2's parameters, each trained with SEEDS
#   searches   racl and darts search seeds 0 1 2, random seed 0 (quick preset, the same training data)
#   rivals     pcdarts, advrush and gdas (RIVALS) search seeds 0 1 2 (the same preset, data and budget; docs/rivals.md)
#   searched   each finished search's cell trained with SEEDS (one comparison folder per search; racl first)
#   ablation   racl ablate: point (no confidence learning), no_gradnorm; search seed 0 (one search per
#              worker, trainings shared); the full variant is racl-seed0 of the searches and searched stages
#   robustness every checkpoint (the reference architectures' first, seed 0 first): PGD-100 and standard
#              AutoAttack on 100 test images, eps sweep (PGD-20); seed 0: global Lipschitz bound vs local
#              estimate (racl lipschitz)
#   table      benchmarks/claim_table.py -> ROOT/PROTOCOL/claim.md
# Searches live in ROOT/search (shared by protocols); trainings and evaluations in ROOT/PROTOCOL.
set -euo pipefail
ROOT=${ROOT:-runs/claim32}
ZIP=${ZIP:-../shared/data/cifar10-train-jpg.zip}
RACL=${RACL:-.venv/bin/racl}
STAGES=${STAGES:-reference searches rivals searched ablation robustness table}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# 500 images per class at 32x32, stratified split with data seed 0: train 4,000 / val 500 / test 500.
DATA=(--dataset imagefolder --data-dir "$ZIP" --limit 500 --data-seed 0)
# The training protocol (PROTOCOL; docs/claim.md says why each was left): common to all, eps 8/255,
# C = 8, 5 cells, 10 epochs, batch 64, SGD lr 0.05 cosine, no drop-path.
#   pgd2   (current) PGD-2 adversarial training, step 4/255 from a random start, crafted in eval mode
#          (racl's default), last epoch kept, no per-epoch validation: multi-step training does not
#          overfit catastrophically the way single-step does, at +12% of FGSM-RS's step time (measured)
#   es     FGSM-RS (Wong et al. 2020, step 10/255, train mode), the epoch with the best PGD-10 accuracy on
#          250 validation images kept: the choice among noisy validation figures doubled the seed std
#   pilot  FGSM-RS, last epoch kept: catastrophic overfitting in 3 of 14 runs
PROTOCOL=${PROTOCOL:-pgd2}
COMMON=(--epochs 10 --channels 8 --layers 5 --batch-size 64 --lr 0.05 --eps 8/255 --drop-path 0)
case $PROTOCOL in
  pgd2)  BUDGET=("${COMMON[@]}" --adv pgd --steps 2 --alpha 4/255 --attack-mode eval --val-images 0); CKPT=last ;;
  es)    BUDGET=("${COMMON[@]}" --adv fgsm_rs --val-images 250 --val-steps 10); CKPT=best ;;
  pilot) BUDGET=("${COMMON[@]}" --adv fgsm_rs --val-images 0); CKPT=last ;;
  *) echo "unknown PROTOCOL $PROTOCOL (known: pgd2 es pilot)"; exit 2 ;;
esac
EVAL=(--weights "$CKPT" --attacks pgd20,cw --n-images 0 --eval-seed 0)
read -r -a SEEDS <<< "${SEEDS:-0 1 2}"  # training seeds (SEEDS="0" trains seed 0 of everything first)
read -r -a SEARCH_SEEDS <<< "${SEARCH_SEEDS:-0 1 2}"  # search seeds of the searches and rivals stages
read -r -a RIVALS <<< "${RIVALS:-pcdarts advrush gdas}"  # the rivals stage's strategies, in this order
SEARCH=(--preset quick)  # supernet C = 8, 5 cells, 4 epochs (1 warm-up), batch 32
RESNET_WIDTH=${RESNET_WIDTH:-4}  # 44,622 params: closest to the published cells' mean (55,816) at C = 8, 5 cells
mkdir -p "$ROOT/search" "$ROOT/logs" "$ROOT/$PROTOCOL"

compare() {  # compare NAME ARCH...: one comparison folder; --resume both starts and continues it
  local name=$1; shift
  "$RACL" compare --genotypes "$@" --seeds "${SEEDS[@]}" "${DATA[@]}" "${BUDGET[@]}" "${EVAL[@]}" \
    --resnet-width "$RESNET_WIDTH" --out "$ROOT/$PROTOCOL/$name" --resume >> "$ROOT/logs/${name//\//-}.$$.log" 2>&1 \
    || echo "comparison $name: failed runs (see its results.md and log); the others are kept"
}

search_done() {  # search_done DIR: all its epochs are in metrics.jsonl
  [ -f "$1/metrics.jsonl" ] && [ "$(wc -l < "$1/metrics.jsonl")" -ge 4 ]
}

search() {  # search STRATEGY SEED (skipped while another worker holds it)
  local out="$ROOT/search/$1-seed$2"
  search_done "$out" && return 0
  local flag=--overwrite; [ -f "$out/checkpoint.safetensors" ] && flag=--resume
  flock -n "$out.lock" "$RACL" search "${SEARCH[@]}" --strategy "$1" --seed "$2" "${DATA[@]}" --out "$out" \
    $flag >> "$ROOT/logs/search-$1-seed$2.log" 2>&1 || echo "search $1 seed $2: busy elsewhere or failed"
}

ablate() {  # ablate VARIANT...: racl ablate on search seed 0 with the training protocol
  mkdir -p "$ROOT/$PROTOCOL/ablation"
  "$RACL" ablate --variants "$@" --search-preset quick --search-seeds 0 --seeds "${SEEDS[@]}" "${DATA[@]}" \
    "${BUDGET[@]}" --attacks pgd20,cw --n-images 0 --out "$ROOT/$PROTOCOL/ablation" \
    >> "$ROOT/logs/ablation.$$.log" 2>&1 || echo "ablation $*: failed runs or busy elsewhere (see the log)"
}

main() {  # a function: bash reads it whole, so editing this file does not disturb running workers
for stage in $STAGES; do
  echo "== $stage ($(date -u +%H:%M:%S))"
  case $stage in
    reference)
      compare compare-reference WEAK=benchmarks/genotypes/weak_skip_pool.json DARTS_V2 RACL ADVRUSH \
        PC_DARTS resnet18 ;;
    searches)
      for s in "${SEARCH_SEEDS[@]}"; do search darts "$s"; search racl "$s"; done
      search random 0 ;;
    rivals)
      for s in "${SEARCH_SEEDS[@]}"; do for r in "${RIVALS[@]}"; do search "$r" "$s"; done; done ;;
    searched)
      # strategy by strategy, racl first: a stopped stretch leaves whole strategies, not a bit of each
      for dir in "$ROOT"/search/{racl,darts,random,pcdarts,advrush,gdas}-seed*/; do
        [ -d "$dir" ] || continue
        dir=${dir%/}; name=$(basename "$dir")
        search_done "$dir" && compare "compare-searched/$name" "$name=$dir"
      done ;;
    ablation)
      # full RACL is the searches stage's racl seed 0 and its searched-stage trainings (the same
      # settings), so only the other two variants are searched and trained here; claim_table.py merges.
      # One worker per variant's search (flock); then any worker helps train the finished searches' cells
      # (comparison runs are claimed); the last one to finish writes the table of both variants.
      local abl="$ROOT/$PROTOCOL/ablation" v
      for v in point no_gradnorm; do
        if ! search_done "$abl/search/$v-s0"; then
          ( flock -n 9 || { echo "ablation $v: searching elsewhere"; exit 0; }; ablate "$v" ) 9> "$abl-$v.lock"
        fi
      done
      local finished=()
      for v in point no_gradnorm; do if search_done "$abl/search/$v-s0"; then finished+=("$v"); fi; done
      if [ ${#finished[@]} -gt 0 ]; then ablate "${finished[@]}"; fi ;;
    robustness)
      # the reference architectures' seeds first (their spread is the protocol's AutoAttack power)
      for group in "compare-reference" "compare-searched/*"; do
        for seed in "${SEEDS[@]}"; do
          for ckpt in "$ROOT/$PROTOCOL"/$group/runs/*/seed$seed/train/$CKPT.safetensors; do
            [ -f "$ckpt" ] || continue
            cell=$(dirname "$(dirname "$ckpt")")
            [ -f "$cell/eval-strong/results.json" ] || flock -n "$cell/eval-strong.lock" "$RACL" evaluate \
              --checkpoint "$ckpt" "${DATA[@]}" --attacks pgd100,autoattack --eps 8/255 --n-images 100 --seed 0 \
              --eps-sweep 0,2/255,4/255,8/255,12/255 --sweep-attacks pgd20 --out "$cell/eval-strong" --resume \
              >> "$ROOT/logs/robustness.log" 2>&1 || echo "evaluate $ckpt: busy elsewhere or failed"
            [ "$seed" = 0 ] && { [ -f "$cell/lipschitz/lipschitz.json" ] || flock -n "$cell/lipschitz.lock" \
              "$RACL" lipschitz --checkpoint "$ckpt" "${DATA[@]}" --n-images 64 --out "$cell/lipschitz" \
              >> "$ROOT/logs/robustness.log" 2>&1 || echo "lipschitz $ckpt: busy elsewhere or failed"; }
          done
        done
      done ;;
    table)
      .venv/bin/python benchmarks/claim_table.py "$ROOT" "$PROTOCOL" > "$ROOT/$PROTOCOL/claim.md" && cat "$ROOT/$PROTOCOL/claim.md" ;;
    *) echo "unknown stage $stage (known: reference searches rivals searched ablation robustness table)"; exit 2 ;;
  esac
done
}

main "$@"; exit
