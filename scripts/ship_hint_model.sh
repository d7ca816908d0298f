#!/usr/bin/env bash
# Pairs the shipped automatic model with a hint model and regenerates the hint figures in results/.
#   bash scripts/ship_hint_model.sh HINT_RUN_DIR [DATA_ROOT] [MAX_IMAGES]
# 1. fp16 copy of the hint run's weights + config.json into colorize/weights/hints/, and
#    "hint_model": "hints" in colorize/weights/config.json: with no hints the shipped model's
#    colours stay exactly what they were; with hints the hint network colours the hints' regions
#    (colorize.infer.Colorizer.hint_network says why a pair)
# 2. hint snap and hint locality calibrated on imagenette/val (never the unseen sets), the shipped
#    chroma settings held as they are: the most accurate with 1-20 simulated hints among the
#    settings that keep hints where placed and whose single click fills its object
# 3. the hint protocol (colorize.protocol --hints) on the three sets, beside Levin et al. 2004,
#    into results/protocol-hints/ (contact sheets with 0, 2 and 10 hints to runs/, never committed),
#    and the README's before/after picture (scripts/hints_example.py)
set -euo pipefail
run=${1:?usage: scripts/ship_hint_model.sh HINT_RUN_DIR [DATA_ROOT] [MAX_IMAGES]}
data=${2:-../shared/data}
max_images=${3:-150}
py=${PYTHON:-.venv/bin/python}
rm -rf colorize/weights/hints
$py -m colorize.train --export-half "$run" colorize/weights/hints
$py - <<'PY'
import json
from pathlib import Path
path = Path("colorize/weights/config.json")
config = json.loads(path.read_text())
config["hint_model"] = "hints"
path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
PY
chroma=$($py -c 'import json; s = json.load(open("colorize/weights/config.json"))["inference"]; print(s["chroma_scale"], s.get("chroma_knee", 0), s.get("chroma_gamma", 1), s.get("samples", 1))')
read -r scale knee gamma samples <<< "$chroma"
$py -m colorize.calibrate --model colorize/weights --data "$data/imagenette/val" --exclude "$data/imagenette/near_gray.txt" \
    --sample 200 --samples "$samples" --gammas "$gamma" --scales "$scale" --knees "$knee" \
    --hint-snaps 0.5,1 --hint-localities 0,1 --hint-sample 60 --out results/shipped-calibration-hints --write
$py -m colorize.protocol --hints 0,1,2,5,10,20,50 --model shipped=colorize/weights --data-root "$data" \
    --max-images "$max_images" --out results/protocol-hints --sheets runs/contact-sheets-hints
$py scripts/hints_example.py --out results/hints_example.png
echo "shipped hint model: $(du -h colorize/weights/hints/model.safetensors | cut -f1); results in results/protocol-hints/"
