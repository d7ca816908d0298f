"""`python -m colorize.evaluate`: PSNR, SSIM, CIEDE2000 and colourfulness over a folder of photos.

For every image in --data:

- real: the photo resized so its short side is --size (bicubic) and center-cropped to
  size x size (`colorize.data.center_crop`, the validation transform of training). Cropping,
  rather than pix2pix's square squeeze, compares undistorted photos, and every method is
  scored on exactly the same pixels. `--whole` keeps the whole photo instead (short side
  --size, aspect kept): what a visitor of the app uploads, where the network sees the photo's
  own shape rather than a square.
- gray: real's lightness with a = b = 0 (float, not rounded to 8 bits). This is the gray
  baseline; its numbers are printed beside the model's in every run.
- output: `colorizer.colorize(gray as an 8-bit image, render_size=--render-size)` (default: the
  model's own settings, `colorize.defaults`, as for users of the app and the CLI), i.e. the
  model never sees the real colours, and its output is the 8-bit image a user would get.

Beside PSNR, SSIM, CIEDE2000 and colourfulness: the false-colour share (`metrics.false_colour_share`:
pixels clearly coloured and more than 30 ab units from the real colour; the summary also counts
the images where it passes 10%), and the diversity of the model's noise (`--diversity-samples`
draws per image, mean pairwise ab distance at the render size: about 0 when the noise is ignored).

Writes per_image.csv and summary.json into --out (default runs/eval-<model>-<data>/), prints a
table, or with --json one JSON line (the summary) on stdout and nothing else there.
--exclude takes a list in the format of imagenette's near_gray.txt (paths relative to the data
set's root, matched on their trailing parts; see `colorize.data.ExclusionMatcher`).
`--untrained` scores the untrained generator and `--baseline gray` the gray image itself, so
every row of the ablation table comes from this one command.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .checkpoint import CheckpointError, atomic_write_text, read_config
from .data import DatasetError, ExclusionMatcher, center_crop, read_exclusion_list, resize_short_side
from .devices import DeviceError
from .imageio import ImageLoadError, find_images, load_image
from .metrics import FALSE_COLOUR_IMAGE_LIMIT, image_metrics
from .models import ModelConfig
from .pixels import gray_version, to_8bit

DEFAULT_SIZE = 256
BATCH_SIZE = 16

# Columns of per_image.csv after "image": the method's numbers, the real image's, the gray baseline's.
METHOD_KEYS = ("psnr", "ssim", "ciede2000", "false_colour", "colorfulness", "mean_chroma", "mean_hue", "cast_chroma", "diversity")
REAL_KEYS = ("real_colorfulness", "real_mean_chroma", "real_mean_hue", "real_cast_chroma")
GRAY_KEYS = ("gray_psnr", "gray_ssim", "gray_ciede2000", "gray_colorfulness")
MEANED_KEYS = (
    "psnr", "ssim", "ciede2000", "false_colour", "colorfulness", "mean_chroma", "diversity",
    "real_colorfulness", "real_mean_chroma", *GRAY_KEYS,
)
DEFAULT_DIVERSITY_SAMPLES = 4


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "model"


def _colorizer(args):
    """The Colorizer to score (None for --baseline gray) and the method's name."""
    from .infer import Colorizer

    if args.baseline == "gray":
        return None, "gray"
    if args.untrained:
        model_config = None
        if args.model is not None:
            model_config = ModelConfig.from_dict(read_config(args.model)["model"])
        return Colorizer.untrained(seed=args.seed, model_config=model_config, device=args.device), "untrained"
    colorizer = Colorizer.from_pretrained(args.model, device=args.device)
    return colorizer, colorizer.name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m colorize.evaluate",
        description="Score a colorizer (or a baseline) on a folder of colour photos.",
    )
    parser.add_argument("--data", type=Path, required=True, help="folder of colour photos (searched recursively)")
    parser.add_argument("--model", type=Path, default=None, help="checkpoint folder (default: the shipped model)")
    method = parser.add_mutually_exclusive_group()
    method.add_argument("--untrained", action="store_true", help="score the untrained generator (architecture of --model if given)")
    method.add_argument("--baseline", choices=("gray",), default=None, help="score a baseline instead of a model")
    parser.add_argument("--exclude", type=Path, default=None, help="file listing images to skip (e.g. near_gray.txt)")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="side of the center square scored (short side with --whole)")
    parser.add_argument("--whole", action="store_true", help="score whole photos (short side --size, aspect kept), not centre squares")
    parser.add_argument(
        "--render-size", type=int, default=None, help="network render size (default: the model's training size)"
    )
    parser.add_argument(
        "--diversity-samples", type=int, default=DEFAULT_DIVERSITY_SAMPLES,
        help="noise samples per image for the diversity measure (0 = skip it)",
    )
    parser.add_argument("--max-images", type=int, default=None, help="score only the first N images (sorted order)")
    parser.add_argument("--out", type=Path, default=None, help="folder for per_image.csv and summary.json")
    parser.add_argument("--json", action="store_true", help="print only the summary as one JSON line on stdout")
    parser.add_argument("--seed", type=int, default=0, help="seed of the untrained generator's weights")
    parser.add_argument("--device", default="auto")
    return parser


def _table(summary: dict) -> str:
    rows = [
        ("PSNR (dB)", "psnr", "gray_psnr", "{:.2f}"),
        ("SSIM", "ssim", "gray_ssim", "{:.4f}"),
        ("CIEDE2000", "ciede2000", "gray_ciede2000", "{:.2f}"),
        ("colourfulness", "colorfulness", "gray_colorfulness", "{:.2f}"),
    ]
    name = summary["method"]
    lines = [f"{summary['images']} images from {summary['data']} at {summary['size']} px", f"{'':16}{name[:14]:>14}{'gray':>14}"]
    for label, key, gray_key, fmt in rows:
        lines.append(f"{label:16}{fmt.format(summary[key]):>14}{fmt.format(summary[gray_key]):>14}")
    lines.append(f"{'real colourfulness':24}{summary['real_colorfulness']:.2f}")
    lines.append(f"{'colourfulness ratio':24}{summary['colorfulness_ratio']:.3f} (output / real)")
    if summary.get("false_colour") is not None and not math.isnan(summary["false_colour"]):
        lines.append(
            f"{'false colour':24}{100 * summary['false_colour']:.2f}% of pixels; "
            f"{summary['false_colour_images']} images over {100 * FALSE_COLOUR_IMAGE_LIMIT:.0f}%"
        )
    if summary.get("diversity") is not None and not math.isnan(summary["diversity"]):
        lines.append(f"{'noise diversity':24}{summary['diversity']:.2f} ab units between samples")
    if summary["unreadable"] or summary["excluded"]:
        lines.append(f"skipped: {summary['unreadable']} unreadable, {summary['excluded']} excluded")
    return "\n".join(lines)


def evaluate(
    colorizer,
    paths: Sequence[Path],
    *,
    size: int = DEFAULT_SIZE,
    render_size: int | None = None,
    on_error=None,
    progress=None,
    gray_scores: dict | None = None,
    diversity_samples: int = 0,
    whole: bool = False,
) -> list[dict]:
    """Per-image rows (dicts) for `paths`; `colorizer=None` scores the gray baseline itself.

    `whole`: score each whole photo (short side `size`, aspect kept), not its centre square.

    `diversity_samples` >= 2 adds each image's noise diversity (`Colorizer.noise_diversity`).

    `gray_scores`: a dict kept between calls on the same images (a sweep), so each image's
    gray-baseline metrics are computed once.
    """
    rows: list[dict] = []
    pending: list[tuple[Path, np.ndarray, np.ndarray]] = []

    def flush() -> None:
        if not pending:
            return
        if colorizer is None:
            outputs = [gray for _, _, gray in pending]
        else:
            images = [Image.fromarray(to_8bit(gray)) for _, _, gray in pending]
            outputs = [np.asarray(o) for o in colorizer.colorize_batch(images, render_size=render_size)]
        for (path, real, gray), output in zip(pending, outputs):
            metrics = image_metrics(output, real)
            metrics["diversity"] = float("nan")
            if colorizer is not None and diversity_samples >= 2:
                metrics["diversity"] = colorizer.noise_diversity(
                    Image.fromarray(to_8bit(gray)), count=diversity_samples, render_size=render_size
                )
            if colorizer is None:
                baseline = metrics
            elif gray_scores is not None and path in gray_scores:
                baseline = gray_scores[path]
            else:
                baseline = image_metrics(gray, real)
                if gray_scores is not None:
                    gray_scores[path] = baseline
            row = {"image": str(path)}
            row.update({key: metrics[key] for key in METHOD_KEYS + REAL_KEYS})
            row.update({f"gray_{key}": baseline[key] for key in ("psnr", "ssim", "ciede2000", "colorfulness")})
            rows.append(row)
        if progress is not None:
            progress.update(len(pending))
        pending.clear()

    for path in paths:
        try:
            photo = load_image(path)
            real = np.asarray(resize_short_side(photo, size) if whole else center_crop(photo, size), dtype=np.float32) / 255.0
        except ImageLoadError as error:
            if on_error is not None:
                on_error(path, error)
            if progress is not None:
                progress.update(1)
            continue
        pending.append((path, real, gray_version(real)))
        if len(pending) >= BATCH_SIZE:
            flush()
    flush()
    return rows


def summarize(rows: list[dict]) -> dict:
    summary = {key: _mean([row[key] for row in rows]) for key in MEANED_KEYS}
    real = summary["real_colorfulness"]
    summary["colorfulness_ratio"] = summary["colorfulness"] / real if real > 0 else float("nan")
    spoiled = [row for row in rows if row["false_colour"] > FALSE_COLOUR_IMAGE_LIMIT]
    summary["false_colour_images"] = len(spoiled)
    summary["false_colour_images_share"] = len(spoiled) / len(rows) if rows else float("nan")
    return summary


def scored_images(data: Path, exclude: Path | None) -> tuple[list[Path], int]:
    """The images under `data` (sorted) minus those `exclude` lists, and how many were left out."""
    excluded = ExclusionMatcher(read_exclusion_list(exclude) if exclude is not None else ())
    candidates = find_images(data)
    paths = [p for p in candidates if not (excluded and excluded(p))]
    return paths, len(candidates) - len(paths)


def json_safe(value):
    """`value` with NaN and infinities (also inside dicts and lists) replaced by None, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_evaluation(out: Path, rows: list[dict], summary: dict) -> dict:
    """per_image.csv and summary.json into `out`; returns the summary as written (JSON-safe)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "per_image.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", *METHOD_KEYS, *REAL_KEYS, *GRAY_KEYS])
        writer.writeheader()
        writer.writerows(rows)
    safe = json_safe(summary)
    atomic_write_text(out / "summary.json", json.dumps(safe, indent=2) + "\n")
    return safe


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    args = build_parser().parse_args(argv)
    if not args.data.is_dir():
        print(f"error: there is no folder at {args.data}.", file=sys.stderr)
        return 2
    if args.size < 8:
        print("error: --size must be at least 8 pixels.", file=sys.stderr)
        return 2
    try:
        colorizer, method = _colorizer(args)
        paths, excluded_count = scored_images(args.data, args.exclude)
    except (CheckpointError, DatasetError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    data_root = args.data
    if args.max_images is not None:
        paths = paths[: args.max_images]
    out = args.out or Path("runs") / f"eval-{slug(method)}-{slug(data_root.resolve().name)}"

    unreadable: list[str] = []

    def report(path: Path, error: Exception) -> None:
        unreadable.append(str(path))
        tqdm.write(f"skipped {path}: {error}", file=sys.stderr)

    started = time.perf_counter()
    with tqdm(total=len(paths), desc=f"evaluating {method}", unit="image", file=sys.stderr) as progress:
        with torch.inference_mode():
            rows = evaluate(
                colorizer, paths, size=args.size, render_size=args.render_size, on_error=report, progress=progress,
                diversity_samples=args.diversity_samples, whole=args.whole,
            )
    if not rows:
        print(f"error: no readable images to evaluate in {data_root}.", file=sys.stderr)
        return 1

    summary = {
        "method": method,
        "model": str(args.model) if args.model else ("shipped" if method not in ("gray", "untrained") else None),
        "data": str(data_root),
        "size": args.size,
        "whole_photos": args.whole,
        "render_size": None if colorizer is None else args.render_size or colorizer.default_render_size,
        "chroma_scale": None if colorizer is None else colorizer.chroma_scale,
        "chroma_gamma": None if colorizer is None else colorizer.chroma_gamma,
        "inference_settings": None if colorizer is None else colorizer.settings.to_dict(),
        "diversity_samples": 0 if colorizer is None else args.diversity_samples,
        "images": len(rows),
        "unreadable": len(unreadable),
        "excluded": excluded_count,
        **summarize(rows),
        "seconds": round(time.perf_counter() - started, 2),
        "out": str(out),
    }
    if args.untrained:
        summary["untrained_seed"] = args.seed

    safe = write_evaluation(out, rows, summary)

    if args.json:
        print(_table(summary), file=sys.stderr)
        print(json.dumps(safe))
    else:
        print(_table(summary))
        print(f"per-image numbers and summary written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
