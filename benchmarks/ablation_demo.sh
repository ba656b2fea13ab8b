#!/usr/bin/env bash
# The paper's ablation at the demo's scale (digits 16x16, the demo's search and training settings):
# 5 search variants x search seed 0, each found cell PGD-5 trained (C = 16, 5 cells, 8 epochs, training
# seed 0) and attacked on the 179 test images at eps 8/255. Resumable: run it again to continue.
# Usage: bash benchmarks/ablation_demo.sh [OUT]   (default runs/ablation-demo)
set -euo pipefail
OUT=${1:-runs/ablation-demo}
mkdir -p "$OUT"
.venv/bin/python - "$OUT/search-config.yaml" <<'PY'
import sys
from racl.demo import search_config
from racl.search.config import save_search_config
save_search_config(sys.argv[1], search_config())
PY
.venv/bin/racl ablate --out "$OUT" --variants full point no_gradnorm eta0.5 eta0.99 \
  --search-preset paper --search-config "$OUT/search-config.yaml" --search-seeds 0 --seeds 0 \
  --dataset digits --image-size 16 \
  --epochs 8 --batch-size 64 --lr 0.05 --adv pgd --steps 5 --channels 16 --layers 5 --drop-path 0 \
  --set augmentation.crop_padding=2 --val-images 180 --set validation.val_steps=10 \
  --attacks pgd20,apgd-ce --n-images 0
