"""How much colour hints help: `python -m colorize.protocol --hints 0,1,2,5,10,20,50`.

For every photo (the protocol's centre crops, or whole photos with `--whole`) and every hint
count N, the model colours the gray version with the first N of a seeded sequence of hints
simulated from the real photo (`colorize.hints.simulate_user_hints`: points drawn around the
centre, each the real photo's mean colour over the default radius, given as "#rrggbb" the way a
person gives them), and is scored against the real photo: PSNR, CIEDE2000, false colour and
colourfulness, as in the automatic protocol. The same hints go to the training-free baseline of
Levin, Lischinski and Weiss 2004 (`colorize.propagation.levin_colorize`), solved at the same
render size as the network and composed onto the photo's own L the same way, so the table shows
what the network adds over optimisation.

Two more figures per row: `hint_error`, the median over hints of the distance in ab between the
output at each hint's point and the hint's colour (is a hint obeyed where it is placed?), and
`unlikely_hint_error`, the same for one extra hint per photo whose colour is the real one turned
to the opposite hue (chroma at least 25: a red door the model would paint blue), alone on the
photo.

The reference curve is Zhang et al. 2017's network on ImageNet val at 256 px (their paper's
PSNR against points revealed); their data, training and size differ from ours, so it is plotted
as a labelled reference, not a like-for-like comparison.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from . import color
from .compose import compose, luminance
from .data import center_crop, resize_short_side
from .hints import Hint, colour_ab, disc_colour, hint_maps, lab_to_hex, simulate_user_hints
from .imageio import ImageLoadError, load_image
from .infer import Colorizer, render_shape
from .metrics import FALSE_COLOUR_IMAGE_LIMIT, image_metrics
from .pixels import gray_version, lab, to_8bit
from .propagation import levin_colorize

# PSNR (dB) against points revealed, Zhang et al. 2017, ImageNet val, 256 px (their network).
ZHANG_2017_PSNR = {0: 24.43, 1: 25.37, 2: 26.20, 5: 27.39, 10: 28.42, 20: 29.34, 50: 30.42}
UNLIKELY_MIN_CHROMA = 25.0
LEVIN = "levin"
ROW_KEYS = (
    "image", "method", "hints", "psnr", "ciede2000", "false_colour", "colorfulness", "real_colorfulness",
    "gray_psnr", "gray_ciede2000", "hint_error", "unlikely_hint_error",
)


def photo_seed(path: Path | str) -> int:
    """A photo's hint seed: from its file name, so the same photo gets the same hints everywhere."""
    return zlib.crc32(Path(path).name.encode("utf-8"))


def unlikely_hint(real: Image.Image, hint: Hint) -> Hint:
    """`hint` at the same point with the opposite hue of the real colour there (chroma >= UNLIKELY_MIN_CHROMA)."""
    values = lab(np.asarray(real))[int(hint.y), int(hint.x)]
    a, b = float(values[1]), float(values[2])
    chroma = math.hypot(a, b)
    angle = math.atan2(b, a) + math.pi if chroma > 1.0 else 0.0
    chroma = max(chroma, UNLIKELY_MIN_CHROMA)
    return Hint(hint.x, hint.y, lab_to_hex(float(values[0]), chroma * math.cos(angle), chroma * math.sin(angle)), hint.radius)


def levin_image(gray: Image.Image, hints: Sequence[Hint], render_size: int) -> Image.Image:
    """Levin et al.'s colouring of `gray` from `hints`, solved at the render shape and composed onto
    the photo's own L exactly as the network's output is."""
    height, width = render_shape(gray.height, gray.width, render_size)
    if not hints:
        return gray.copy()
    small = np.asarray(gray.resize((width, height), Image.Resampling.BICUBIC))
    hint_ab, mask = hint_maps(list(hints), gray.size, (height, width))
    ab = levin_colorize(luminance(small).numpy(), color.denormalize_ab(hint_ab[0]).numpy(), mask[0, 0].numpy() > 0)
    return compose(gray, torch.from_numpy(ab).float())


def output_ab_at(output: Image.Image, hint: Hint) -> tuple[float, float]:
    x, y = int(hint.x), int(hint.y)
    pixel = np.asarray(output.crop((x, y, x + 1, y + 1)), dtype=np.float32) / 255.0
    values = lab(pixel)[0, 0]
    return float(values[1]), float(values[2])


def hint_distance(output: Image.Image, hint: Hint) -> float:
    a, b = output_ab_at(output, hint)
    target_a, target_b = colour_ab(hint.color)
    return math.hypot(a - target_a, b - target_b)


@dataclass
class HintMethod:
    """A colorizer (None for Levin et al.'s optimisation) under a label."""

    label: str
    colorizer: Colorizer | None

    def colorize(self, gray: Image.Image, hints: Sequence[Hint], render_size: int) -> Image.Image:
        if self.colorizer is None:
            return levin_image(gray, hints, render_size)
        return self.colorizer.colorize(gray, hints=list(hints) or None)


def evaluate_hints(
    method: HintMethod,
    paths: Sequence[Path],
    counts: Sequence[int],
    *,
    size: int = 256,
    whole: bool = False,
    render_size: int = 128,
    progress=None,
) -> list[dict]:
    """One row per photo and hint count (see the module docstring)."""
    rows = []
    for path in paths:
        try:
            photo = load_image(path)
        except ImageLoadError:
            if progress is not None:
                progress.update(1)
            continue
        real = resize_short_side(photo, size) if whole else center_crop(photo, size)
        real_array = np.asarray(real, dtype=np.float32) / 255.0
        gray = Image.fromarray(to_8bit(gray_version(real_array)))
        sequence = simulate_user_hints(real, max(counts), seed=photo_seed(path))
        gray_scores = image_metrics(np.asarray(gray), real_array)
        unlikely_error = float("nan")
        if sequence:
            opposite = unlikely_hint(real, sequence[0])
            unlikely_error = hint_distance(method.colorize(gray, [opposite], render_size), opposite)
        for count in counts:
            hints = sequence[:count]
            output = method.colorize(gray, hints, render_size)
            scores = image_metrics(np.asarray(output), real_array)
            errors = [hint_distance(output, hint) for hint in hints]
            rows.append({
                "image": str(path), "method": method.label, "hints": count,
                **{key: scores[key] for key in ("psnr", "ciede2000", "false_colour", "colorfulness", "real_colorfulness")},
                "gray_psnr": gray_scores["psnr"], "gray_ciede2000": gray_scores["ciede2000"],
                "hint_error": float(np.median(errors)) if errors else float("nan"),
                "hint_errors": errors,
                "unlikely_hint_error": unlikely_error,
            })
        if progress is not None:
            progress.update(1)
    return rows


def summarize_hints(rows: Sequence[dict]) -> dict[int, dict]:
    """Per hint count: means, the colourfulness ratio, images over the false-colour limit, and the
    median hint error over every hint of every photo."""
    summary = {}
    for count in sorted({row["hints"] for row in rows}):
        group = [row for row in rows if row["hints"] == count]
        mean = {key: float(np.mean([row[key] for row in group])) for key in ("psnr", "ciede2000", "false_colour", "colorfulness", "real_colorfulness", "gray_psnr", "gray_ciede2000")}
        errors = [error for row in group for error in row["hint_errors"]]
        unlikely = [row["unlikely_hint_error"] for row in group if not math.isnan(row["unlikely_hint_error"])]
        summary[count] = {
            "images": len(group),
            **mean,
            "colorfulness_ratio": mean["colorfulness"] / mean["real_colorfulness"] if mean["real_colorfulness"] > 0 else float("nan"),
            "false_colour_images_share": float(np.mean([row["false_colour"] > FALSE_COLOUR_IMAGE_LIMIT for row in group])),
            "hint_error": float(np.median(errors)) if errors else float("nan"),
            "unlikely_hint_error": float(np.median(unlikely)) if unlikely else float("nan"),
        }
    return summary


# --------------------------------------------------------------------------------------------
# The report (`python -m colorize.protocol --hints ...`)
# --------------------------------------------------------------------------------------------

# The bars: what hints must buy on unseen photos (checked per model, both unseen sets together).
HINT_BARS = (
    ("10 hints: PSNR at least 3 dB above the model's own automatic output", 10,
     lambda model, levin: model[10]["psnr"] >= model[0]["psnr"] + 3.0),
    ("10 hints: CIEDE2000 at most 0.75x the automatic output's", 10,
     lambda model, levin: model[10]["ciede2000"] <= 0.75 * model[0]["ciede2000"]),
    ("2 hints: PSNR at least 1 dB above the automatic output", 2,
     lambda model, levin: model[2]["psnr"] >= model[0]["psnr"] + 1.0),
    ("beats Levin et al. in PSNR and CIEDE2000 at every count from 1 to 20", 1,
     lambda model, levin: levin is not None and all(
         model[n]["psnr"] > levin[n]["psnr"] and model[n]["ciede2000"] < levin[n]["ciede2000"]
         for n in model if 1 <= n <= 20 and n in levin)),
    ("hints obeyed: median ab distance at the hinted points at most 5", 1,
     lambda model, levin: all(model[n]["hint_error"] <= 5.0 for n in model if n > 0)),
    ("unlikely hints obeyed: median ab distance at most 5", 0,
     lambda model, levin: model[min(model)]["unlikely_hint_error"] <= 5.0),
)


def check_hint_bars(model: dict[int, dict], levin: dict[int, dict] | None) -> list[dict]:
    checks = []
    for description, needed, test in HINT_BARS:
        if needed not in model or (needed and 0 not in model and "automatic" in description):
            checks.append({"bar": description, "met": None})
            continue
        try:
            met = bool(test(model, levin))
        except KeyError:
            met = None
        checks.append({"bar": description, "met": met})
    return checks


def _cell(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def render_hint_report(results: dict, *, command: str, machine: str, size: int, whole: bool) -> str:
    scored = f"whole photos, short side {size}" if whole else f"centre {size}x{size} crops"
    lines = [
        "# Colour hints: the protocol with simulated hints",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine}. Scored on {scored}. Each photo's hints are the first N of one seeded sequence "
        "simulated from the real photo (points around the centre, each the real photo's mean colour over 1% of the "
        "short side, given as #rrggbb); Levin et al. 2004 gets the same hints at the same render size. `hint error`: "
        "median ab distance between the output at a hinted point and the hint's colour; `unlikely`: the same for a single "
        "hint of the opposite hue.",
        "",
    ]
    for set_name, per_method in results["sets"].items():
        counts = sorted({int(n) for summary in per_method.values() for n in summary})
        any_summary = next(iter(per_method.values()))[counts[0]]
        lines += [
            f"## {set_name}",
            "",
            f"{any_summary['images']} photos. Gray input: PSNR {_cell(any_summary['gray_psnr'])} dB, CIEDE2000 {_cell(any_summary['gray_ciede2000'])}.",
            "",
            "| method | hints | PSNR (dB) | CIEDE2000 | false colour | images > 10% | colourfulness ratio | hint error (ab) | unlikely (ab) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, summary in per_method.items():
            for count in counts:
                row = summary.get(count)
                if row is None:
                    continue
                lines.append(
                    f"| {label} | {count} | {_cell(row['psnr'])} | {_cell(row['ciede2000'])} | {100 * row['false_colour']:.2f}% "
                    f"| {100 * row['false_colour_images_share']:.1f}% | {_cell(row['colorfulness_ratio'], 3)} "
                    f"| {_cell(row['hint_error'], 1)} | {_cell(row['unlikely_hint_error'], 1) if count == counts[0] else ''} |"
                )
        lines.append("")
    lines += ["## The bars, on both unseen sets together", ""]
    for label, checks in results["bars"].items():
        lines += [f"### {label}", "", "| bar | met |", "|---|---|"]
        for check in checks:
            verdict = "n/a" if check["met"] is None else ("met" if check["met"] else "**not met**")
            lines.append(f"| {check['bar']} | {verdict} |")
        lines.append("")
    lines += [
        "Zhang et al. 2017 (their network, ImageNet val, 256 px) report PSNR "
        + ", ".join(f"{value} dB at {count}" for count, value in ZHANG_2017_PSNR.items())
        + " points; a labelled reference only (other data, training and size).",
        "",
    ]
    return "\n".join(lines)


def hint_curves_figure(results: dict):
    """PSNR and CIEDE2000 against hints, one panel pair per set; Zhang et al. 2017 as a reference."""
    from matplotlib.figure import Figure

    sets = list(results["sets"].items())
    figure = Figure(figsize=(10, 3.6 * len(sets)), dpi=100)
    for row, (set_name, per_method) in enumerate(sets):
        psnr_axis = figure.add_subplot(len(sets), 2, 2 * row + 1)
        ciede_axis = figure.add_subplot(len(sets), 2, 2 * row + 2)
        for label, summary in per_method.items():
            counts = sorted(int(n) for n in summary)
            positions = [max(n, 0.5) for n in counts]  # 0 hints drawn at 0.5 on the log axis
            style = "--" if label == LEVIN else "-"
            psnr_axis.plot(positions, [summary[n]["psnr"] for n in counts], style, marker="o", label=label)
            ciede_axis.plot(positions, [summary[n]["ciede2000"] for n in counts], style, marker="o", label=label)
        reference = sorted(ZHANG_2017_PSNR)
        psnr_axis.plot(
            [max(n, 0.5) for n in reference], [ZHANG_2017_PSNR[n] for n in reference], ":", color="gray",
            label="Zhang et al. 2017 (ImageNet, their net; reference)",
        )
        for axis, name in ((psnr_axis, "PSNR (dB)"), (ciede_axis, "CIEDE2000")):
            axis.set_xscale("log")
            axis.set_xlabel("hints (0 drawn at 0.5)")
            axis.set_ylabel(name)
            axis.set_title(set_name, fontsize=10)
            axis.grid(alpha=0.3)
        psnr_axis.legend(fontsize=7)
    figure.tight_layout()
    return figure


SHEET_COUNTS = (0, 2, 10)


def hint_contact_sheet(method: HintMethod, paths: Sequence[Path], *, size: int = 192, render_size: int = 128) -> Image.Image:
    """One row per photo: gray | with 0, 2 and 10 simulated hints (the points drawn) | real, on
    centre crops: to look at what hints do, photo by photo."""
    from PIL import ImageDraw

    rows = []
    for path in paths:
        real = center_crop(load_image(path), size)
        gray = Image.fromarray(to_8bit(gray_version(np.asarray(real, dtype=np.float32) / 255.0)))
        sequence = simulate_user_hints(real, max(SHEET_COUNTS), seed=photo_seed(path))
        cells = [gray]
        for count in SHEET_COUNTS:
            cell = method.colorize(gray, sequence[:count], render_size).copy()
            draw = ImageDraw.Draw(cell)
            for hint in sequence[:count]:
                draw.ellipse((hint.x - 4, hint.y - 4, hint.x + 4, hint.y + 4), fill=hint.color, outline="white")
            cells.append(cell)
        rows.append([*cells, real])
    gap = 4
    sheet = Image.new("RGB", (len(rows[0]) * (size + gap), len(rows) * (size + gap)), "white")
    for row_index, cells in enumerate(rows):
        for column, cell in enumerate(cells):
            sheet.paste(cell, (column * (size + gap), row_index * (size + gap)))
    return sheet


def write_rows(path: Path, rows: Sequence[dict]) -> None:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ROW_KEYS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def run_hint_protocol(args, sets, argv) -> int:
    """`python -m colorize.protocol --hints ...` (see `colorize.protocol`)."""
    import json
    import sys
    import time

    from tqdm import tqdm

    from .checkpoint import CheckpointError, atomic_write_text
    from .evaluate import json_safe, slug
    from .protocol import machine_description

    started = time.perf_counter()
    methods = []
    for model in args.model:
        try:
            colorizer = model.load()
        except CheckpointError as error:
            print(f"error: {model.label}: {error}", file=sys.stderr)
            return 2
        if not colorizer.takes_hints and any(args.hints):
            print(f"error: {model.label}: this model takes no colour hints (train one with --hints).", file=sys.stderr)
            return 2
        methods.append(HintMethod(model.label, colorizer))
    render_size = methods[0].colorizer.default_render_size
    if not args.no_levin:
        methods.append(HintMethod(LEVIN, None))

    results: dict = {"sets": {}, "bars": {}, "counts": list(args.hints)}
    unseen_rows: dict[str, list[dict]] = {method.label: [] for method in methods}
    for evaluation_set, paths in sets:
        per_method = {}
        for method in methods:
            with tqdm(total=len(paths), desc=f"{method.label} on {evaluation_set.name}", unit="photo", file=sys.stderr) as bar:
                with torch.inference_mode():
                    rows = evaluate_hints(
                        method, paths, args.hints, size=args.size, whole=args.whole, render_size=render_size, progress=bar
                    )
            write_rows(args.out / slug(method.label) / evaluation_set.name.replace("/", "-") / "per_image.csv", rows)
            per_method[method.label] = summarize_hints(rows)
            if evaluation_set.unseen:
                unseen_rows[method.label] += rows
                if args.sheets is not None:
                    args.sheets.mkdir(parents=True, exist_ok=True)
                    photos = [paths[(i * len(paths)) // 12] for i in range(min(12, len(paths)))]
                    hint_contact_sheet(method, photos, render_size=render_size).save(
                        args.sheets / f"hints-{slug(method.label)}-{evaluation_set.name.replace('/', '-')}.png"
                    )
        results["sets"][evaluation_set.name] = per_method
    both = {label: summarize_hints(rows) for label, rows in unseen_rows.items() if rows}
    if both:
        results["sets"]["unseen (both)"] = both
        for label, summary in both.items():
            if label != LEVIN:
                results["bars"][label] = check_hint_bars(summary, both.get(LEVIN))

    command = "python -m colorize.protocol " + " ".join(sys.argv[1:] if argv is None else argv)
    report = render_hint_report(results, command=command, machine=machine_description(), size=args.size, whole=args.whole)
    results["command"] = command
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "hints.md", report)
    atomic_write_text(args.out / "hints.json", json.dumps(json_safe(results), indent=2) + "\n")
    try:
        hint_curves_figure(results).savefig(args.out / "hints.png")
    except ImportError:
        print("matplotlib is not installed: no hints.png (pip install '.[bench]').", file=sys.stderr)
    print(report)
    return 0


# --------------------------------------------------------------------------------------------
# One click, one object
# --------------------------------------------------------------------------------------------

FILL_DISTANCE = 10.0  # ab units: a pixel "has the hint's colour" within this of it, "was changed" past it
MIN_FILL, MAX_LEAK = 0.8, 0.1  # one click fills its object: most of its region, little of the others
UNDECIDED = -1


@dataclass(frozen=True)
class RegionFill:
    """How one hint spread: `filled`, the share of its own region within FILL_DISTANCE of the hint's
    ab; `leaked`, the share of the other regions whose ab moved more than FILL_DISTANCE from the
    output without the hint."""

    filled: float
    leaked: float


def region_fill(
    colorizer: Colorizer, image: Image.Image, regions: np.ndarray, hint: Hint, *, before: Image.Image | None = None
) -> RegionFill:
    """`RegionFill` of `hint` on `image`, whose pixels `regions` (H, W) labels by region (label
    UNDECIDED: a border band counted in neither). `before`: the colorizer's output without hints,
    when the caller has it already (several clicks on one photo)."""
    own = regions == regions[int(hint.y), int(hint.x)]
    other = ~own & (regions != UNDECIDED)
    before = lab(np.asarray(colorizer.colorize(image) if before is None else before))[..., 1:]
    after = lab(np.asarray(colorizer.colorize(image, hints=[hint])))[..., 1:]
    target = np.asarray(colour_ab(hint.color))
    near = np.hypot(*(after - target).transpose(2, 0, 1)) <= FILL_DISTANCE
    moved = np.hypot(*(after - before).transpose(2, 0, 1)) > FILL_DISTANCE
    return RegionFill(float(near[own].mean()), float(moved[other].mean()) if other.any() else 0.0)


def flat_regions_photo(width: int = 320, height: int = 240) -> tuple[Image.Image, np.ndarray]:
    """A synthetic gray photo of four flat regions split by edges (two halves of a right column, a
    background, an ellipse in it) and its region labels: the one-click test. Neighbouring regions
    differ by 30 L* or more (`colorize.propagation.region_reach` lets part of a hint through
    weaker edges)."""
    labels = np.zeros((height, width), np.int64)
    labels[: height // 2, width // 2 :] = 1
    labels[height // 2 :, width // 2 :] = 2
    ys, xs = np.mgrid[:height, :width]
    labels[((xs - width / 4) / (width / 6.4)) ** 2 + ((ys - height / 2) / (height / 4)) ** 2 <= 1] = 3
    levels = np.array([60, 220, 140, 180], np.uint8)  # L* 25, 88, 58, 73
    return Image.fromarray(np.repeat(levels[labels][..., None], 3, axis=2)), labels


def astronaut_suit_regions() -> tuple[Image.Image, np.ndarray, Hint]:
    """scikit-image's astronaut, labels (1 her orange suit, 0 the rest, UNDECIDED a 6 px band
    around the suit) and one click on the suit with its real colour: the one-click test on a photo.
    The suit is the connected orange area (chroma over 25, hue 35-75 degrees) under the click."""
    from skimage import data, measure, morphology

    rgb = data.astronaut()
    real = lab(rgb)
    chroma, hue = np.hypot(real[..., 1], real[..., 2]), np.degrees(np.arctan2(real[..., 2], real[..., 1]))
    orange = morphology.opening((chroma > 25) & (hue > 35) & (hue < 75), morphology.disk(2))
    components = measure.label(orange)
    x, y = 100, 400
    suit = components == components[y, x]
    labels = np.where(morphology.dilation(suit, morphology.disk(6)), UNDECIDED, 0)
    labels[suit] = 1
    photo = Image.fromarray(rgb)
    return photo, labels, Hint(x, y, disc_colour(photo, x, y, 5), 5)


def one_click_fills(colorizer: Colorizer) -> dict:
    """The one-click test at the colorizer's settings: per case, `RegionFill` of a single hint on
    the flat-regions photo (a click in each region, a colour from the opposite side of the ab plane
    each) and on the astronaut's suit; `passed` when every case fills at least MIN_FILL and leaks at
    most MAX_LEAK."""
    from .suggest import in_gamut

    photo, labels = flat_regions_photo()
    lightness = lab(np.asarray(photo))[..., 0]
    height, width = labels.shape
    automatic = colorizer.colorize(photo)
    cases = {}
    for region, (fx, fy), (a, b) in zip(range(4), ((0.1, 0.1), (0.75, 0.25), (0.75, 0.75), (0.25, 0.5)),
                                        ((40, 30), (-30, 30), (10, -40), (-20, -20))):
        x, y = int(fx * (width - 1)), int(fy * (height - 1))
        level = float(lightness[y, x])
        hint = Hint(x, y, lab_to_hex(level, *in_gamut(level, float(a), float(b))))
        cases[f"flat region {region}"] = region_fill(colorizer, photo, labels, hint, before=automatic)
    photo, labels, hint = astronaut_suit_regions()
    cases["astronaut suit"] = region_fill(colorizer, Image.fromarray(to_8bit(gray_version(photo))), labels, hint)
    return {
        "cases": {name: {"filled": fill.filled, "leaked": fill.leaked} for name, fill in cases.items()},
        "worst_filled": min(fill.filled for fill in cases.values()),
        "worst_leaked": max(fill.leaked for fill in cases.values()),
        "passed": all(fill.filled >= MIN_FILL and fill.leaked <= MAX_LEAK for fill in cases.values()),
    }
