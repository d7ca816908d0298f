"""Colours to suggest for a point of a photo, for a person placing a colour hint there.

First what the model itself finds plausible at that point: its colour with the hints so far,
and the colours of `NOISE_DRAWS` samples of its injected noise (a model trained with the
diversity term spreads its samples where the colour is ambiguous: a shirt, a car). Then, to make
up the number, the colours photos most often show at that lightness (`colour_prior.json`, made
from training photos by scripts/colour_prior.py). Each is given as "#rrggbb" at the point's own
lightness, so a swatch looks like what that point becomes, and suggestions closer than
`MIN_DISTANCE` ab units to one already chosen are skipped.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Sequence

import torch

from . import color

BAND = 10  # L units per lightness band of the prior table
CELL = 12  # ab units per cell of the prior table's colour grid
MIN_CHROMA = 8.0  # the prior table counts clearly coloured pixels only
MIN_DISTANCE = 12.0  # ab units between two suggestions
NOISE_DRAWS = 12
PRIOR_FILE = Path(__file__).with_name("colour_prior.json")


@functools.cache
def colour_prior() -> list[list[tuple[float, float]]]:
    """Per lightness band, the common ab colours of photos, most common first ([] if the table is missing)."""
    try:
        record = json.loads(PRIOR_FILE.read_text(encoding="utf-8"))
        return [[(entry["a"], entry["b"]) for entry in band] for band in record["bands"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


HUE_WHEEL = tuple((40 * math.cos(angle), 40 * math.sin(angle)) for angle in (2 * math.pi * k / 12 for k in range(12)))


def prior_colours(lightness: float) -> list[tuple[float, float]]:
    """The prior table's colours at `lightness` (most common first), then a wheel of 12 hues."""
    bands = colour_prior()
    common = list(bands[min(len(bands) - 1, max(0, int(lightness // BAND)))]) if bands else []
    return common + list(HUE_WHEEL)


def in_gamut(lightness: float, a: float, b: float) -> tuple[float, float]:
    """(a, b) with its chroma reduced (hue kept) until (L, a, b) is an sRGB colour."""

    def fits(scale: float) -> bool:
        lab = torch.tensor([lightness, a * scale, b * scale], dtype=torch.float64).view(3, 1, 1)
        rgb = color.lab_to_rgb(lab)  # clipped: compare with the clip-free round trip
        back = color.rgb_to_lab(rgb)
        return float((back - lab).abs().max()) < 0.5

    if fits(1.0):
        return a, b
    low, high = 0.0, 1.0
    for _ in range(20):
        middle = (low + high) / 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return a * low, b * low


def pick_distinct(candidates: Sequence[tuple[float, float]], count: int, *, distance: float = MIN_DISTANCE) -> list[tuple[float, float]]:
    """Greedy: each candidate in order unless within `distance` of one kept, until `count`; where
    too few are that far apart (a dark point, where sRGB holds little chroma), the distance halves."""
    kept: list[tuple[float, float]] = []
    for a, b in candidates:
        if len(kept) >= count:
            break
        if all(math.hypot(a - ka, b - kb) >= distance for ka, kb in kept):
            kept.append((a, b))
    if len(kept) < count and distance > 1.0:
        return pick_distinct(candidates, count, distance=distance / 2)
    return kept


def suggestions(model: Sequence[tuple[float, float]], lightness: float, count: int) -> list[str]:
    """"#rrggbb" colours at `lightness`: the model's (in order) then the prior's, each brought into
    sRGB and kept only if distinct from those before."""
    from .hints import lab_to_hex

    candidates = [in_gamut(lightness, a, b) for a, b in [*model, *prior_colours(lightness)]]
    return [lab_to_hex(lightness, a, b) for a, b in pick_distinct(candidates, count)]


def model_colours(samples: torch.Tensor) -> list[tuple[float, float]]:
    """(a, b) of the model's outputs at a point, (K, 2) in ab units, the first kept first, then by chroma."""
    first, rest = samples[:1], samples[1:]
    ordered = torch.cat((first, rest[color.chroma_of(rest[..., None, None])[:, 0, 0, 0].argsort(descending=True)]))
    return [(float(a), float(b)) for a, b in ordered]
