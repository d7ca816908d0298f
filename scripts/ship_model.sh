#!/usr/bin/env bash
# Turns a training run into the shipped model and regenerates its figures in results/.
#   bash scripts/ship_model.sh runs/shipped [../shared/data]
# 1. fp16 copy of the weights + config.json into colorize/weights/ (what the app, infer and evaluate load by default)
# 2. evaluation on imagenette/val without its near-gray images, beside the gray baseline
# 3. the colourfulness / hue-cast figure and the last validation sample grid
set -euo pipefail
run=${1:?usage: scripts/ship_model.sh RUN_DIR [DATA_ROOT]}
data=${2:-../shared/data}
py=${PYTHON:-.venv/bin/python}
$py -m colorize.train --export-half "$run" colorize/weights
$py -m colorize.evaluate --data "$data/imagenette/val" --exclude "$data/imagenette/near_gray.txt" \
    --out results/shipped-eval
$py -m colorize.plots results/shipped-eval/per_image.csv --out results/shipped_colour.png \
    --title "shipped model on imagenette/val (near-gray images excluded)"
cp "$(ls "$run"/samples/*.png | sort | tail -n 1)" results/shipped_samples.png
cp "$run/metrics.csv" results/shipped_training_metrics.csv
echo "shipped: $(du -h colorize/weights/model.safetensors | cut -f1) of weights; results in results/shipped-eval/"
