"""Which colours photos show at each lightness: the table behind the app's suggested colours.

    python scripts/colour_prior.py ../shared/data/imagenette/train ../shared/data/flickr8k \
        ../shared/data/bsds500/train ../shared/data/tf_flowers --out colorize/colour_prior.json

Reads an evenly spread sample of photos from training folders (never the unseen evaluation sets),
at 64 px on the short side, and for every band of `BAND` L units keeps the `KEEP` most common ab
cells of a `CELL`-unit grid among clearly coloured pixels (chroma >= `MIN_CHROMA`), each as its
mean ab and its share of the band's coloured pixels. `colorize.suggest` reads the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorize.imageio import ImageLoadError, find_images, load_image  # noqa: E402
from colorize.pixels import lab  # noqa: E402
from colorize.suggest import BAND, CELL, MIN_CHROMA  # noqa: E402

KEEP = 16


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python scripts/colour_prior.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="training photo folders")
    parser.add_argument("--out", type=Path, required=True, help="the JSON table to write")
    parser.add_argument("--photos", type=int, default=3000, help="photos read, spread evenly over the folders' files")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = [path for folder in args.folders for path in find_images(folder)]
    if not paths:
        print("error: no photos under the given folders.", file=sys.stderr)
        return 2
    chosen = [paths[(i * len(paths)) // args.photos] for i in range(min(args.photos, len(paths)))]
    pixels = []
    for path in chosen:
        try:
            image = load_image(path)
        except ImageLoadError:
            continue
        image.thumbnail((96, 96), Image.Resampling.BILINEAR)
        values = lab(np.asarray(image)).reshape(-1, 3)
        pixels.append(values[np.hypot(values[:, 1], values[:, 2]) >= MIN_CHROMA])
    values = np.concatenate(pixels)
    bands = np.minimum(values[:, 0] // BAND, 100 // BAND - 1).astype(int)
    cells = np.floor(values[:, 1:] / CELL).astype(int)
    keys, inverse = np.unique(np.column_stack((bands, cells)), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, minlength=len(keys)).astype(float)
    sum_a = np.bincount(inverse, weights=values[:, 1], minlength=len(keys))
    sum_b = np.bincount(inverse, weights=values[:, 2], minlength=len(keys))
    table = []
    for band in range(100 // BAND):
        entries = [(counts[i], sum_a[i] / counts[i], sum_b[i] / counts[i]) for i in np.flatnonzero(keys[:, 0] == band)]
        total = sum(count for count, _, _ in entries) or 1.0
        entries.sort(reverse=True)
        table.append([{"a": round(a, 1), "b": round(b, 1), "share": round(count / total, 4)} for count, a, b in entries[:KEEP]])
    record = {"band": BAND, "cell": CELL, "min_chroma": MIN_CHROMA, "photos": len(chosen),
              "folders": [str(folder) for folder in args.folders], "bands": table}
    args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"Wrote {args.out}: {len(chosen)} photos, {sum(len(b) for b in table)} colours in {len(table)} lightness bands.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
