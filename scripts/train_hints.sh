#!/usr/bin/env bash
# The user-guided colorizer's two training stages (configs/hints.toml), each resumable:
#   bash scripts/train_hints.sh                 # stage 1 (L1 with simulated hints), then stage 2 (L1 + cGAN)
#   STAGE1_LIMIT=2h STAGE2_LIMIT=1h bash scripts/train_hints.sh   # bound each session; run again to continue
# Stage 1 starts from the shipped automatic model (colorize/weights) with zero hint weights;
# stage 2 starts from stage 1's weights with a new conditional PatchGAN that sees L and the hints.
set -euo pipefail
py=${PYTHON:-.venv/bin/python}
stage1=${STAGE1:-runs/hints-l1}
stage2=${STAGE2:-runs/hints-gan}
resume_or_start() {  # out, then the flags of a fresh start
    local out=$1; shift
    if [ -f "$out/training_state.pt" ]; then
        "$py" -m colorize.train --out "$out" --resume --time-limit "${LIMIT:-0}"
    else
        "$py" -m colorize.train --config configs/hints.toml --out "$out" --time-limit "${LIMIT:-0}" "$@"
    fi
}
LIMIT=${STAGE1_LIMIT:-0} resume_or_start "$stage1"
# a PatchGAN half as wide as pix2pix's (32 filters): at 128 px its 512-filter layer alone cost more than the
# generator, so the adversarial step ran 4x the L1 step on this CPU; half width is 2x faster overall
LIMIT=${STAGE2_LIMIT:-0} resume_or_start "$stage2" --init-from "$stage1" --gan-mode vanilla --epochs-l1 0 --epochs-gan "${GAN_EPOCHS:-2}" \
    --discriminator-channels 32
