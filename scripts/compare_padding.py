"""Whole-photo colour of the shipped model with level-by-level padding against padding the input
to a multiple of 2^depth (the behaviour before), at the model's own settings.

The protocol scores square centre crops, where the two are the same computation; this scores
whole photos (`colorize.evaluate --whole`: short side --size, aspect kept), where they differ.
Decide on a training folder of photos that are not square (bsds500/train; imagenette/val's are
all square); the unseen sets may be scored to report, not to choose.

    python scripts/compare_padding.py --data ../shared/data/bsds500/train --sample 200 --out results/padding
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from colorize import Colorizer
from colorize.evaluate import evaluate, scored_images
from colorize.metrics import FALSE_COLOUR_IMAGE_LIMIT


def _aspect(path: Path) -> float:
    with Image.open(path) as image:
        return image.width / image.height


KEYS = ("psnr", "ciede2000", "false_colour", "colorfulness", "real_colorfulness")


def score(colorizer: Colorizer | None, paths: list[Path], size: int, per_level: bool = True) -> dict[str, float]:
    """Whole-photo scores of the model (None: the gray input's own), `colorize.evaluate --whole`."""
    if colorizer is not None:
        colorizer.generator.pads_per_level = per_level  # fp32: the eager generator, no folded copy traced before
    rows = evaluate(colorizer, paths, size=size, whole=True)
    summary = {key: float(np.mean([row[key] for row in rows])) for key in KEYS}
    real = np.mean([r["real_colorfulness"] for r in rows])
    summary["colourfulness_ratio"] = float(np.mean([r["colorfulness"] for r in rows]) / real) if real > 0 else float("nan")
    summary["images_over_limit"] = int(sum(r["false_colour"] > FALSE_COLOUR_IMAGE_LIMIT for r in rows))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--exclude", type=Path)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--size", type=int, default=256, help="short side of the scored photos")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/padding"))
    args = parser.parse_args()
    paths, _ = scored_images(args.data, args.exclude)
    paths = sorted(paths)
    random.Random(args.seed).shuffle(paths)
    paths = paths[: args.sample]
    non_square = sum(_aspect(path) != 1.0 for path in paths)
    colorizer = Colorizer.from_pretrained(precision="fp32")
    results = {
        "level by level (now)": score(colorizer, paths, args.size, True),
        "input padded whole (before)": score(colorizer, paths, args.size, False),
        "gray input": score(None, paths, args.size),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    # a split's name says little alone: bsds500/val -> bsds500-val, imagenet_sample -> imagenet_sample
    name = args.data.name if args.data.name not in ("train", "val", "test") else f"{args.data.parent.name}-{args.data.name}"
    lines = [
        f"# Padding: {args.data} ({len(paths)} photos, {non_square} not square, short side {args.size})",
        "",
        "Command: `python scripts/compare_padding.py --data {} {}--sample {} --size {} --out {}`".format(
            args.data, f"--exclude {args.exclude} " if args.exclude else "", args.sample, args.size, args.out
        ),
        "",
        "| padding | PSNR (dB) | CIEDE2000 | false colour | images > 10% | colourfulness ratio |",
        "|---|---|---|---|---|---|",
    ]
    for label, s in results.items():
        lines.append(
            f"| {label} | {s['psnr']:.2f} | {s['ciede2000']:.3f} | {100 * s['false_colour']:.2f}% | {s['images_over_limit']} | {s['colourfulness_ratio']:.3f} |"
        )
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
