#!/usr/bin/env bash
# Turns a training run into the shipped model and regenerates its figures in results/.
#   bash scripts/ship_model.sh RUN_DIR [DATA_ROOT] [PREVIOUS_MODEL_DIR]
#   CALIBRATED=DIR bash scripts/ship_model.sh MODEL_DIR ...   (MODEL_DIR calibrated already, table in DIR)
# 1. fp16 copy of the weights + config.json into colorize/weights/ (what the app, infer, the
#    survey and evaluate load by default)
# 2. its inference settings calibrated on 200 imagenette/val photos (the set where calibration and
#    checkpoint choice are allowed; never the unseen sets): chroma scale, knee and curve, the
#    bins head's temperature, and how many noise draws fade the colour where they disagree, by
#    calibrate's rule (false colour within
#    2.5% on average and 2.5% of images over 10%, then the most accurate keeping 0.85 of real
#    colourfulness)
# 3. the evaluation protocol (colorize.protocol): imagenette/val and the two unseen sets, for the
#    new model at its defaults, the same model's single pass and uncalibrated network, and the
#    previously shipped model at its own defaults; contact sheets of the unseen sets go to
#    runs/contact-sheets (research-only photos: never committed), the scikit-image sheet to results/;
#    then the shipped model alone on whole photos (--whole) into results/protocol-whole/
# 4. the colourfulness / hue-cast figure on the unseen sets and a sample grid (gray | ours | real)
set -euo pipefail
run=${1:?usage: scripts/ship_model.sh RUN_DIR [DATA_ROOT] [PREVIOUS_MODEL_DIR]}
data=${2:-../shared/data}
previous=${3:-}
py=${PYTHON:-.venv/bin/python}
$py -m colorize.train --export-half "$run" colorize/weights
# The grid (override with CALIBRATION_GRID="--scales ... --knees ..."): a bins-head model's colours
# are near real strength and its temperature sets how boldly it picks; a regression (L1) model's
# colours are muted and need a larger chroma scale, held in by a soft ceiling (knee).
head=$($py -c 'import json, sys; print(json.load(open(sys.argv[1]))["model"].get("colour_head", "regression"))' colorize/weights/config.json)
if [ "$head" = bins ]; then
    default_grid="--temperatures 0.2,0.3,0.38 --samples 1,4 --gammas 1 --scales 1.25,1.5,1.75 --knees 0,40"
else
    default_grid="--samples 1,4 --gammas 1 --scales 1.25,1.5,1.75,2 --knees 0,20,30"
fi
if [ -n "${CALIBRATED:-}" ]; then
    # RUN_DIR was already calibrated by exactly this command (a candidate compared with others on
    # imagenette/val before one was shipped): its config.json carries the choice; CALIBRATED is
    # the folder calibrate wrote its table to
    mkdir -p results/shipped-calibration
    cp "$CALIBRATED/calibration.md" "$CALIBRATED/calibration.json" results/shipped-calibration/
else
    # shellcheck disable=SC2086  # the grid is a list of options
    $py -m colorize.calibrate --model colorize/weights --data "$data/imagenette/val" \
        --exclude "$data/imagenette/near_gray.txt" --sample 200 ${CALIBRATION_GRID:-$default_grid} \
        --out results/shipped-calibration --write
fi
samples=$($py -c 'import json, sys; print(json.load(open(sys.argv[1])).get("inference", {}).get("samples", 1))' colorize/weights/config.json)
models=(--model "shipped=colorize/weights")
if [ "$samples" != 1 ]; then models+=(--model "shipped, single pass=colorize/weights@samples=1"); fi
models+=(--model "shipped, network as trained=colorize/weights@samples=1,chroma_scale=1,chroma_gamma=1,chroma_knee=0")
if [ -n "$previous" ]; then models+=(--model "previous=$previous"); fi
$py -m colorize.protocol "${models[@]}" --data-root "$data" --out results/protocol \
    --sheets runs/contact-sheets --skimage-sheet results/protocol/skimage_sheet.png
# the same protocol on whole photos (short side 256, aspect kept): what a visitor uploads
$py -m colorize.protocol --whole --model "shipped=colorize/weights" --data-root "$data" --out results/protocol-whole \
    --diversity-samples 0
cat results/protocol/shipped/imagenet_sample/per_image.csv > results/protocol/shipped_unseen_per_image.csv
tail -n +2 results/protocol/shipped/bsds500-val/per_image.csv >> results/protocol/shipped_unseen_per_image.csv
$py -m colorize.plots results/protocol/shipped_unseen_per_image.csv --out results/shipped_colour.png \
    --title "shipped model on the unseen sets (imagenet_sample, bsds500/val)"
# The data sets' terms keep their photos out of the repository: the committed grid uses
# scikit-image's public-domain photos; the run's own samples/ show validation photos.
$py - <<'PY'
from colorize import Colorizer
from colorize.ablation import sample_grid
from colorize.protocol import skimage_photos
colorizer = Colorizer.from_pretrained()
sample_grid(colorizer, skimage_photos(), size=192, render_size=None).save("results/shipped_samples.png")
PY
if [ -f "$run/metrics.csv" ]; then cp "$run/metrics.csv" results/shipped_training_metrics.csv; fi
echo "shipped: $(du -h colorize/weights/model.safetensors | cut -f1) of weights; results in results/protocol/"
