"""`python -m colorize.calibrate`: choose a model's colour strength on held-out photos.

A GAN colorizer's colour strength is a trade-off: more chroma makes outputs as vivid as real
photos, and also makes every wrong hue cost more (CIEDE2000, PSNR). Two knobs shape it: the
chroma scale s (the predicted ab multiplied by s) and the chroma curve's exponent gamma
(`colorize.infer.apply_chroma_gamma`: with gamma > 1 weak, often wrong colours fade while
strong ones stay). This command scores the model on every (gamma, s) pair on photos it was not
trained on, and picks the most accurate pair (lowest mean CIEDE2000) whose outputs keep at
least `--min-colourfulness-ratio` of the real photos' colourfulness. With `--write` the choice
goes into the model's config.json ("inference" -> "chroma_scale", "chroma_gamma"), where
`Colorizer`, the app, `colorize.infer` and `colorize.evaluate` apply it; a user's saturation
multiplies the scale.

Calibrate on data the model is *evaluated* on and the evaluation is no longer held out: the
shipped model is calibrated on bsds500/val (neither its training nor its evaluation data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from .checkpoint import CONFIG_FILE, CheckpointError, atomic_write_text, read_config
from .data import DatasetError
from .evaluate import DEFAULT_SIZE, evaluate, scored_images, summarize
from .defaults import MAX_CHROMA_GAMMA, MAX_CHROMA_SCALE
from .infer import Colorizer

DEFAULT_SCALES = (0.5, 0.6, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0, 2.4, 2.8, 3.4, 4.0)  # ~1.19x apart
DEFAULT_GAMMAS = (1.0, 1.5, 2.0, 2.5, 3.0)
DEFAULT_MIN_RATIO = 0.85


def sweep(
    colorizer: Colorizer,
    paths: Sequence[Path],
    scales: Sequence[float],
    *,
    size: int,
    render_size: int | None,
    gammas: Sequence[float] = DEFAULT_GAMMAS,
) -> list[dict]:
    """Summary metrics (see `colorize.evaluate.summarize`) of `colorizer` at each (gamma, scale)."""
    results = []
    gray_scores: dict = {}
    for gamma in gammas:
        for scale in scales:
            colorizer.chroma_gamma, colorizer.chroma_scale = float(gamma), float(scale)
            with torch.inference_mode():
                rows = evaluate(colorizer, paths, size=size, render_size=render_size, gray_scores=gray_scores)
            results.append({"chroma_gamma": float(gamma), "chroma_scale": float(scale), "images": len(rows), **summarize(rows)})
    return results


def evenly_spaced(paths: Sequence[Path], count: int) -> list[Path]:
    """`count` of `paths` spread evenly over the list (all of them if count is 0 or too large)."""
    if count <= 0 or count >= len(paths):
        return list(paths)
    return [paths[(i * len(paths)) // count] for i in range(count)]


def choose(results: list[dict], min_ratio: float) -> tuple[dict, bool]:
    """The row with the lowest CIEDE2000 among those colourful enough; else the most colourful."""
    enough = [row for row in results if row["colorfulness_ratio"] >= min_ratio]
    if enough:
        return min(enough, key=lambda row: row["ciede2000"]), True
    return max(results, key=lambda row: row["colorfulness_ratio"]), False


def render_table(results: list[dict], chosen: dict) -> str:
    lines = [
        "| chroma gamma | chroma scale | PSNR (dB) | SSIM | CIEDE2000 | colourfulness ratio | |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results:
        mark = "**chosen**" if row is chosen else ""
        lines.append(
            f"| {row['chroma_gamma']:.2f} | {row['chroma_scale']:.2f} | {row['psnr']:.2f} | {row['ssim']:.3f} "
            f"| {row['ciede2000']:.2f} | {row['colorfulness_ratio']:.3f} | {mark} |"
        )
    gray = results[0]
    lines.append(f"| gray (ab = 0) | | {gray['gray_psnr']:.2f} | {gray['gray_ssim']:.3f} | {gray['gray_ciede2000']:.2f} | 0 | |")
    return "\n".join(lines)


def write_choice(model: Path, chosen: dict, record: dict) -> None:
    """Set inference.chroma_scale and chroma_gamma in `model`/config.json (atomically), with how they were chosen."""
    config = read_config(model)
    config["inference"] = {
        **(config.get("inference") or {}),
        "chroma_scale": chosen["chroma_scale"],
        "chroma_gamma": chosen["chroma_gamma"],
        "calibration": record,
    }
    atomic_write_text(model / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")


def _number_list(what: str, upper: float):
    def parse(text: str) -> tuple[float, ...]:
        try:
            values = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers") from None
        if not values or not all(0 < v <= upper for v in values):
            raise argparse.ArgumentTypeError(f"{what} must be numbers in (0, {upper:g}]")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m colorize.calibrate",
        description="Choose a model's chroma scale on held-out photos (see the module docstring).",
    )
    parser.add_argument("--model", type=Path, required=True, help="checkpoint folder (model.safetensors + config.json)")
    parser.add_argument("--data", type=Path, required=True, help="folder of held-out colour photos")
    parser.add_argument("--exclude", type=Path, default=None, help="file listing images to skip (e.g. near_gray.txt)")
    parser.add_argument("--scales", type=_number_list("scales", MAX_CHROMA_SCALE), default=DEFAULT_SCALES, help="comma-separated chroma scales to try")
    parser.add_argument(
        "--gammas", type=_number_list("gammas", MAX_CHROMA_GAMMA), default=DEFAULT_GAMMAS,
        help="comma-separated chroma curve exponents to try (1 = the network's chroma as it is)",
    )
    parser.add_argument("--min-colourfulness-ratio", type=float, default=DEFAULT_MIN_RATIO, help="vividness to keep (output / real)")
    parser.add_argument(
        "--sample", type=int, default=0,
        help="score only this many photos, evenly spaced over the sorted folder (0 = all): a class-sorted folder stays balanced",
    )
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="side of the center square scored")
    parser.add_argument("--render-size", type=int, default=None, help="network render size (default: the model's training size)")
    parser.add_argument("--out", type=Path, default=None, help="write calibration.md and calibration.json here")
    parser.add_argument("--write", action="store_true", help="store the chosen scale in the model's config.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.data.is_dir():
        print(f"error: there is no folder at {args.data}.", file=sys.stderr)
        return 2
    try:
        colorizer = Colorizer.from_pretrained(args.model)
        paths, _ = scored_images(args.data, args.exclude)
    except (CheckpointError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not paths:
        print(f"error: no images to calibrate on in {args.data}.", file=sys.stderr)
        return 2
    if args.sample < 0:
        print("error: --sample must be 0 (all photos) or a positive number.", file=sys.stderr)
        return 2
    paths = evenly_spaced(paths, args.sample)
    started = time.perf_counter()
    results = sweep(colorizer, paths, args.scales, size=args.size, render_size=args.render_size, gammas=args.gammas)
    chosen, reached = choose(results, args.min_colourfulness_ratio)
    table = render_table(results, chosen)
    record = {
        "data": str(args.data),
        "images": chosen["images"],
        "sample": args.sample,
        "min_colourfulness_ratio": args.min_colourfulness_ratio,
        "size": args.size,
        "rule": "lowest mean CIEDE2000 among the (gamma, scale) pairs whose colourfulness ratio reaches the minimum",
        "reached": reached,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    print(table)
    if not reached:
        print(f"note: no scale reached colourfulness ratio {args.min_colourfulness_ratio}; the most colourful one was chosen.")
    print(f"chosen chroma scale: {chosen['chroma_scale']:.2f}, chroma gamma: {chosen['chroma_gamma']:.2f} ({time.perf_counter() - started:.0f} s)")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python -m colorize.calibrate " + " ".join(sys.argv[1:] if argv is None else argv)
        atomic_write_text(
            args.out / "calibration.md",
            f"# Chroma scale calibration\n\nCommand: `{command}`\n\n{len(paths)} photos from `{args.data}`, "
            f"centre {args.size}x{args.size} crops. Rule: {record['rule']} ({args.min_colourfulness_ratio}).\n\n{table}\n",
        )
        atomic_write_text(args.out / "calibration.json", json.dumps({"record": record, "results": results}, indent=2) + "\n")
    if args.write:
        write_choice(args.model, chosen, record)
        print(f"written to {args.model / CONFIG_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
