"""The README's hint picture: a photo gray, coloured automatically, and coloured with a few hints
(the points drawn on it), from scikit-image's public-domain photos.

    python scripts/hints_example.py --out results/hints_example.png [--model colorize/weights]

The hints are in scripts/hints_example.json (x, y in the photo's pixels, the colour a person
would pick), so anyone can re-run it and load them into the app.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorize import Colorizer  # noqa: E402
from colorize.hints import hints_from_json  # noqa: E402
from colorize.pixels import gray_image  # noqa: E402
from colorize.protocol import skimage_photos, SKIMAGE_SHEET_PHOTOS  # noqa: E402

HINTS_FILE = Path(__file__).with_name("hints_example.json")
CELL = 256


def draw_points(image: Image.Image, hints, scale: float) -> Image.Image:
    marked = image.copy()
    draw = ImageDraw.Draw(marked)
    for hint in hints:
        x, y = hint.x * scale, hint.y * scale
        draw.ellipse((x - 6, y - 6, x + 6, y + 6), fill=hint.color, outline="white", width=2)
    return marked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/hints_example.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: the shipped model)")
    args = parser.parse_args(argv)
    colorizer = Colorizer.from_pretrained(args.model)
    examples = json.loads(HINTS_FILE.read_text(encoding="utf-8"))
    photos = dict(zip(SKIMAGE_SHEET_PHOTOS, skimage_photos()))
    rows = []
    for name, hints_json in examples.items():
        photo = photos[name]
        hints = hints_from_json(json.dumps(hints_json))
        gray = gray_image(photo)
        scale = CELL / photo.height
        size = (round(photo.width * scale), CELL)
        cells = [gray, colorizer.colorize(gray), colorizer.colorize(gray, hints=hints), photo]
        cells = [cell.resize(size, Image.Resampling.LANCZOS) for cell in cells]
        cells[2] = draw_points(cells[2], hints, scale)
        rows.append(cells)
    width = max(sum(cell.width for cell in row) + 6 * (len(row) - 1) for row in rows)
    sheet = Image.new("RGB", (width, len(rows) * (CELL + 22) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for row in rows:
        x = 0
        for cell, caption in zip(row, ("gray input", "automatic", "with the hints shown", "real photo")):
            sheet.paste(cell, (x, y))
            draw.text((x + 4, y + CELL + 4), caption, fill="black")
            x += cell.width + 6
        y += CELL + 22
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
