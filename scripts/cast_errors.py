"""Which strong colour casts a model paints, and how often the real photo has them: from the
per-image CSVs that `colorize.protocol` (or `colorize.evaluate --out`) writes.

An output has a strong cast when its mean (a, b) is longer than --cast (chroma units); it is
right when the real photo's mean hue lies within --hue-tolerance degrees and the real photo has
a cast of at least half that strength. Per hue family: how many outputs, how many right, their
mean false-colour share and CIEDE2000 against the gray input's.

    python scripts/cast_errors.py results/protocol-whole/shipped/*/per_image.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

FAMILIES = {"red-orange": (-20, 50), "yellow-olive": (50, 110), "green-cyan": (110, 200), "blue": (200, 320)}


def hue_distance(a: pd.Series, b: pd.Series) -> pd.Series:
    difference = (a - b).abs() % 360
    return np.minimum(difference, 360 - difference)


def family_of(hue: pd.Series) -> pd.Series:
    wrapped = ((hue + 20) % 360) - 20  # -20..340, so red sits in one interval
    names = pd.Series("other", index=hue.index)
    for name, (low, high) in FAMILIES.items():
        names[(wrapped >= low) & (wrapped < high)] = name
    return names


def cast_table(rows: pd.DataFrame, cast: float, tolerance: float) -> pd.DataFrame:
    strong = rows[rows.cast_chroma > cast].copy()
    strong["family"] = family_of(strong.mean_hue)
    strong["right"] = (hue_distance(strong.mean_hue, strong.real_mean_hue) <= tolerance) & (strong.real_cast_chroma >= cast / 2)
    table = strong.groupby("family").agg(
        outputs=("right", "size"), right=("right", "sum"), false_colour=("false_colour", "mean"),
        ciede2000=("ciede2000", "mean"), gray_ciede2000=("gray_ciede2000", "mean"),
        images_over_10=("false_colour", lambda share: int((share > 0.1).sum())),
    )
    real = rows[rows.real_cast_chroma > cast]
    table["real_photos_with_it"] = family_of(real.real_mean_hue).value_counts().reindex(table.index).fillna(0).astype(int)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="+", type=Path)
    parser.add_argument("--cast", type=float, default=15.0)
    parser.add_argument("--hue-tolerance", type=float, default=60.0)
    args = parser.parse_args()
    for path in args.csv:
        rows = pd.read_csv(path)
        spoiled = int((rows.false_colour > 0.1).sum())
        print(f"\n## {path} ({len(rows)} photos, {spoiled} over 10% false colour)\n")
        table = cast_table(rows, args.cast, args.hue_tolerance)
        print("| output cast | outputs | right | real photos with it | false colour | images > 10% | CIEDE2000 | gray |")
        print("|---|---|---|---|---|---|---|---|")
        for family, row in table.iterrows():
            print(
                f"| {family} | {int(row.outputs)} | {int(row.right)} | {int(row.real_photos_with_it)} | {100 * row.false_colour:.1f}% "
                f"| {int(row.images_over_10)} | {row.ciede2000:.2f} | {row.gray_ciede2000:.2f} |"
            )


if __name__ == "__main__":
    main()
