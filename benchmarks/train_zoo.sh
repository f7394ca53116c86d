#!/bin/bash
# Train one model of the zoo (docs/pretrained.md): phantoms -> autoencoder -> latent diffusion prior.
# usage: benchmarks/train_zoo.sh SYSTEM SIZE WORK [AE_STEPS] [PRIOR_STEPS]
# Re-running continues an interrupted stage with --resume; a finished stage (its metrics.json / weights) is kept.
set -euo pipefail
SYSTEM=$1; SIZE=$2; WORK=$3; AE_STEPS=${4:-800}; PRIOR_STEPS=${5:-2500}
A=${ANATOMICA:-anatomica}
T="--threads 1"
mkdir -p "$WORK"
stamp() { echo "[$(date -u +%FT%TZ)] $*" >> "$WORK/commands.log"; }
run() { stamp "start: $*"; local t0=$SECONDS; "$@"; stamp "done in $((SECONDS - t0)) s: $*"; }
[ -f "$WORK/data/dataset.json" ] || run $A phantoms --system "$SYSTEM" --n 200 --size "$SIZE" --seed 0 --out "$WORK/data"
[ -f "$WORK/test/dataset.json" ] || run $A phantoms --system "$SYSTEM" --n 100 --size "$SIZE" --seed 1 --out "$WORK/test"
if [ ! -f "$WORK/ae/metrics.json" ]; then
  if [ -f "$WORK/ae/checkpoints/last.safetensors" ]; then run $A train autoencoder --resume "$WORK/ae" --steps "$AE_STEPS" $T
  else run $A train autoencoder --data "$WORK/data" --out "$WORK/ae" --steps "$AE_STEPS" --batch-size 4 --lr 1e-3 \
      --channels 16,32,32 --field-features 32 --boundary-fraction 0.25 --checkpoint-every 200 --seed 0 $T; fi
fi
if [ ! -f "$WORK/ldm/model.safetensors" ]; then
  if [ -f "$WORK/ldm/checkpoints/last.safetensors" ]; then run $A train diffusion --resume "$WORK/ldm" --steps "$PRIOR_STEPS" $T
  else run $A train diffusion --autoencoder "$WORK/ae" --out "$WORK/ldm" --steps "$PRIOR_STEPS" --batch-size 16 --lr 4e-4 \
      --checkpoint-every 250 --seed 0 $T; fi
fi
