"""How much of a bins-head model's colour error is its class rebalancing: decode with and without
dividing the rebalancing tilt out of its predicted distribution.

Trained with the loss weight w(q) on each bin (`colorize.losses.rebalancing_weights`), the head
predicts p'(q) ~ w(q) p(q); `logits - alpha * log w` undoes that (alpha = 1) or part of it. The
weights are rebuilt as training builds them: the bin prior of 1024 centre crops of the training
folders. Scores come from `colorize.evaluate` on imagenette/val (allowed for choices).

    python scripts/bins_prior_correction.py --model runs/cand-v5bins-e3 --data-root ../shared/data --alphas 0,0.5,1
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorize import Colorizer, color
from colorize.data import center_crop
from colorize.evaluate import evaluate, scored_images, summarize
from colorize.imageio import find_images
from colorize.losses import bin_prior, rebalancing_weights
from colorize.models import ColourBinsHead

TRAINING_FOLDERS = ("imagenette/train", "bsds500/train", "flickr8k", "tf_flowers")


def rebalancing_log_weights(root: Path, centres: torch.Tensor, crops: int = 1024, size: int = 128) -> torch.Tensor:
    paths = [path for folder in TRAINING_FOLDERS for path in find_images(root / folder)]
    random.Random(0).shuffle(paths)
    ab = []
    for path in paths[:crops]:
        rgb = np.asarray(center_crop(Image.open(path).convert("RGB"), size), dtype=np.float32) / 255.0
        ab.append(color.rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None])[:, 1:] / color.AB_SCALE)
    return torch.log(rebalancing_weights(bin_prior(F.avg_pool2d(torch.cat(ab), 2), centres)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--alphas", default="0,0.5,1")
    parser.add_argument("--scales", default="1,1.5")
    parser.add_argument("--sample", type=int, default=60)
    args = parser.parse_args()
    colorizer = Colorizer.from_pretrained(args.model, precision="fp32")
    log_w = rebalancing_log_weights(args.data_root, colorizer.generator.head.centres)
    val, _ = scored_images(args.data_root / "imagenette/val", args.data_root / "imagenette/near_gray.txt")
    val = sorted(val)
    random.Random(0).shuffle(val)
    plain = ColourBinsHead.logits
    print(f"{args.model}, {args.sample} imagenette/val photos, temperature {colorizer.settings.colour_temperature}")
    print("| alpha | chroma scale | CIEDE2000 | gray | false colour | colourfulness ratio |\n|---|---|---|---|---|---|")
    for alpha in (float(a) for a in args.alphas.split(",")):
        ColourBinsHead.logits = lambda self, features, a=alpha: plain(self, features) - a * log_w[None, :, None, None].to(features.dtype)
        for scale in (float(s) for s in args.scales.split(",")):
            colorizer.settings = dataclasses.replace(colorizer.settings, chroma_scale=scale, chroma_knee=0.0, samples=1)
            s = summarize(evaluate(colorizer, val[: args.sample]))
            print(f"| {alpha:g} | {scale:g} | {s['ciede2000']:.2f} | {s['gray_ciede2000']:.2f} | {100 * s['false_colour']:.2f}% | {s['colorfulness'] / s['real_colorfulness']:.3f} |", flush=True)
    ColourBinsHead.logits = plain


if __name__ == "__main__":
    main()
