"""Figures of an evaluation: is the colour as strong as real photos', and is there a cast?

    python -m colorize.plots runs/eval-shipped/per_image.csv --out results/shipped_colour.png

Reads the `per_image.csv` that `python -m colorize.evaluate` writes. Left: the distribution of
colourfulness (Hasler–Süsstrunk) of the outputs against the real photos; a model that fades
colours shifts its histogram to the left. Right: the chroma-weighted mean hue of each image on
a polar histogram; a sepia or brown cast shows as outputs piling up around 60-80 degrees
(Lab hue of orange-brown) where the real photos spread out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

HUE_BINS = 24


def colour_distribution_figure(per_image: pd.DataFrame, *, title: str = "") -> Figure:
    missing = {"colorfulness", "real_colorfulness", "mean_hue", "real_mean_hue"} - set(per_image.columns)
    if missing:
        raise ValueError(f"The table lacks the columns {', '.join(sorted(missing))}; is it an evaluate per_image.csv?")
    figure = Figure(figsize=(10, 4.2), dpi=100)
    histogram = figure.add_subplot(1, 2, 1)
    top = float(np.nanmax(per_image[["colorfulness", "real_colorfulness"]].to_numpy())) if len(per_image) else 1.0
    bins = np.linspace(0.0, max(top, 1.0), 30)
    histogram.hist(per_image["real_colorfulness"], bins=bins, alpha=0.55, label="real photos", color="tab:blue")
    histogram.hist(per_image["colorfulness"], bins=bins, alpha=0.55, label="colorized", color="tab:orange")
    for column, colour in (("real_colorfulness", "tab:blue"), ("colorfulness", "tab:orange")):
        histogram.axvline(per_image[column].mean(), color=colour, linestyle="--", linewidth=1)
    histogram.set_xlabel("colourfulness (Hasler–Süsstrunk)")
    histogram.set_ylabel("images")
    histogram.legend()
    ratio = per_image["colorfulness"].mean() / max(per_image["real_colorfulness"].mean(), 1e-9)
    histogram.set_title(f"colourfulness: mean ratio {ratio:.2f}")

    polar = figure.add_subplot(1, 2, 2, projection="polar")
    edges = np.linspace(0.0, 2 * np.pi, HUE_BINS + 1)
    width = edges[1] - edges[0]
    for column, colour, label in (("real_mean_hue", "tab:blue", "real photos"), ("mean_hue", "tab:orange", "colorized")):
        hues = np.deg2rad(per_image[column].dropna().to_numpy() % 360.0)
        counts, _ = np.histogram(hues, bins=edges)
        polar.bar(edges[:-1], counts, width=width, align="edge", alpha=0.5, color=colour, label=label)
    polar.set_title("mean Lab hue per image (degrees)")
    polar.legend(loc="lower left", bbox_to_anchor=(-0.15, -0.15), fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


WARM_HUES = (60.0, 100.0)  # degrees of Lab hue: orange-brown to yellow, where a sepia or warm cast piles up


def hue_summary(per_image: pd.DataFrame) -> dict:
    """The cast in numbers, outputs beside the real photos: median mean hue, the share of images
    whose mean hue is warm (`WARM_HUES`), and the median chroma of each image's mean colour."""
    summary = {}
    for prefix, name in (("", "colorized"), ("real_", "real")):
        hues = per_image[f"{prefix}mean_hue"].dropna() % 360.0
        warm = ((hues >= WARM_HUES[0]) & (hues < WARM_HUES[1])).mean() if len(hues) else float("nan")
        summary[name] = {
            "median_mean_hue": float(hues.median()),
            "share_warm_mean_hue": float(warm),
            "median_cast_chroma": float(per_image[f"{prefix}cast_chroma"].median()) if f"{prefix}cast_chroma" in per_image else None,
        }
    summary["warm_hues_degrees"] = list(WARM_HUES)
    return summary


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorize.plots", description=__doc__.split("\n\n")[0])
    parser.add_argument("per_image", type=Path, help="per_image.csv written by python -m colorize.evaluate")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    try:
        table = pd.read_csv(args.per_image)
        figure = colour_distribution_figure(table, title=args.title)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out)
    summary = hue_summary(table)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    for name in ("colorized", "real"):
        row = summary[name]
        print(
            f"{name:>9}: median mean hue {row['median_mean_hue']:.0f} deg, {row['share_warm_mean_hue']:.0%} of images "
            f"with a mean hue in {WARM_HUES[0]:.0f}-{WARM_HUES[1]:.0f} deg, median cast chroma {_number(row['median_cast_chroma'])}"
        )
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
