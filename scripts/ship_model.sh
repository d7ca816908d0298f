#!/usr/bin/env bash
# Turns a training run into the shipped model and regenerates its figures in results/.
#   bash scripts/ship_model.sh runs/shipped [../shared/data]
# 1. fp16 copy of the weights + config.json into colorize/weights/ (what the app, infer and evaluate load by default)
# 2. colour strength (chroma curve and scale) calibrated on 200 imagenette/train photos (the
#    evaluation's domain, never its photos) with calibrate's default rule: the most accurate
#    setting keeping 0.85 of real colourfulness. The two earlier attempts (bsds500/val; a 0.8
#    minimum) and what they gave are in results/v2-calibrations/.
# 3. evaluation on imagenette/val without its near-gray images, beside the gray baseline
# 4. the colourfulness / hue-cast figure and a sample grid (gray | ours | real)
set -euo pipefail
run=${1:?usage: scripts/ship_model.sh RUN_DIR [DATA_ROOT]}
data=${2:-../shared/data}
py=${PYTHON:-.venv/bin/python}
$py -m colorize.train --export-half "$run" colorize/weights
$py -m colorize.calibrate --model colorize/weights --data "$data/imagenette/train" \
    --exclude "$data/imagenette/near_gray.txt" --sample 200 \
    --gammas 2,2.5 --scales 3.0,3.1,3.2,3.3,3.4 --out results/shipped-calibration --write
$py -m colorize.evaluate --data "$data/imagenette/val" --exclude "$data/imagenette/near_gray.txt" \
    --out results/shipped-eval
$py -m colorize.plots results/shipped-eval/per_image.csv --out results/shipped_colour.png \
    --title "shipped model on imagenette/val (near-gray images excluded)"
# The data sets' terms keep their photos out of the repository: the committed grid uses
# scikit-image's public-domain photos; the run's own samples/ show validation photos.
$py - <<'PY'
from PIL import Image
from skimage import data
from colorize import Colorizer
from colorize.ablation import SKIMAGE_PHOTOS, sample_grid
photos = [Image.fromarray(getattr(data, name)()) for name in SKIMAGE_PHOTOS]
sample_grid(Colorizer.from_pretrained(), photos, size=192, render_size=128).save("results/shipped_samples.png")
PY
cp "$run/metrics.csv" results/shipped_training_metrics.csv
echo "shipped: $(du -h colorize/weights/model.safetensors | cut -f1) of weights; results in results/shipped-eval/"
