"""`python -m colorize.protocol`: the evaluation every shipped model is reported on.

    python -m colorize.protocol --model shipped=colorize/weights --data-root ../shared/data \
        --out results/protocol --sheets runs/contact-sheets

The sets and their roles are fixed (they come from ../shared/data/README.md):

    imagenette/val    in-domain; the set calibration and checkpoint choice may use: *tuned* numbers
    imagenet_sample   unseen: one photo of each of 990 other ImageNet classes
    bsds500/val       unseen: 100 natural scenes

The unseen sets are never trained, calibrated or selected on; their numbers are what a visitor
with their own photos can expect. Photos a set's near_gray.txt lists (black-and-white or nearly)
are left out everywhere. Every model runs at its own defaults (`colorize.defaults`), exactly as
the app, the command line and the survey run it; `LABEL=PATH@key=value,...` runs a model with
some inference settings changed instead (e.g. `@samples=1` for its single pass), to compare.

For each model and set it writes `<out>/<label>/<set>/per_image.csv` and `summary.json` (the
`colorize.evaluate` files), then `<out>/protocol.md` and `protocol.json`: one table per set and
the project's colour bars checked on each unseen set and on both together:

    colourfulness ratio between 0.8 and 1.2; mean false-colour share at most 3% and at most 3%
    of images over 10% of false colour; CIEDE2000 below the gray input's; PSNR at least the
    gray input's minus 1 dB.

`--whole` scores whole photos (short side --size, aspect kept) instead of their centre squares:
what a visitor uploads, where the network sees the photo's own shape (the shipped model's whole-
photo figures: results/protocol-whole/). The bars are checked the same way.

`--hints 0,1,2,5,10,20,50` measures colour hints instead (`colorize.hint_evaluation`): each model
and Levin et al.'s optimisation with 0, 1, 2, ... hints simulated from the real photos, written to
`<out>/hints.md`, `hints.json` and `hints.png` (the curves, Zhang et al. 2017's as a labelled
reference), per-image CSVs beside them. `--max-images` keeps it to a few hundred photos per set.

`--sheets DIR` also writes contact sheets (real | ours, photo by photo) to look at. The data
sets' terms are research-only: keep those sheets out of the repository (the default folder is
under runs/, which git ignores). `--skimage-sheet FILE` writes the same for scikit-image's
public-domain sample photos, which may be committed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw

from .checkpoint import CheckpointError, atomic_write_text
from .data import DatasetError, center_crop
from .evaluate import (
    DEFAULT_DIVERSITY_SAMPLES, DEFAULT_SIZE, evaluate, json_safe, scored_images, slug, summarize,
    write_evaluation,
)
from .imageio import load_image
from .infer import Colorizer
from .pixels import gray_image


@dataclass(frozen=True)
class EvaluationSet:
    name: str  # folder under the data root
    exclude: str | None  # near-gray list under the data root
    unseen: bool
    role: str


SETS = (
    EvaluationSet("imagenette/val", "imagenette/near_gray.txt", False, "in-domain; calibration and checkpoint choice (tuned)"),
    EvaluationSet("imagenet_sample", "imagenet_sample/near_gray.txt", True, "unseen: 990 other ImageNet classes"),
    EvaluationSet("bsds500/val", None, True, "unseen: natural scenes"),
)

# (summary key, description, test): the colour bars every shipped model is held to on unseen photos
BARS = (
    ("colorfulness_ratio", "colourfulness ratio between 0.8 and 1.2", lambda s: 0.8 <= s["colorfulness_ratio"] <= 1.2),
    ("false_colour", "mean false-colour share at most 3%", lambda s: s["false_colour"] <= 0.03),
    ("false_colour_images_share", "at most 3% of images over 10% false colour", lambda s: s["false_colour_images_share"] <= 0.03),
    ("ciede2000", "CIEDE2000 below the gray input's", lambda s: s["ciede2000"] < s["gray_ciede2000"]),
    ("psnr", "PSNR at least the gray input's minus 1 dB", lambda s: s["psnr"] >= s["gray_psnr"] - 1.0),
)

SKIMAGE_SHEET_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")
OVERRIDABLE = (
    "render_size", "chroma_scale", "chroma_gamma", "samples", "agreement_power", "chroma_knee", "colour_temperature",
    "prior_correction", "hint_snap", "hint_locality",
)


@dataclass(frozen=True)
class ModelUnderTest:
    label: str
    path: Path
    overrides: dict

    @classmethod
    def parse(cls, text: str) -> "ModelUnderTest":
        """LABEL=PATH or LABEL=PATH@key=value,key=value (inference settings changed for this run)."""
        label, separator, rest = text.partition("=")
        if not separator or not label.strip() or not rest:
            raise argparse.ArgumentTypeError(f"'{text}' is not LABEL=PATH (e.g. shipped=colorize/weights)")
        path, _, settings = rest.partition("@")
        overrides: dict = {}
        for item in filter(None, (part.strip() for part in settings.split(","))):
            key, equals, value = item.partition("=")
            if not equals or key not in OVERRIDABLE:
                raise argparse.ArgumentTypeError(f"'{item}' is not one of {', '.join(OVERRIDABLE)} = a number")
            try:
                overrides[key] = int(value) if key in ("render_size", "samples") else float(value)
            except ValueError:
                raise argparse.ArgumentTypeError(f"'{item}': {value!r} is not a number") from None
        return cls(label.strip(), Path(path), overrides)

    def load(self) -> Colorizer:
        colorizer = Colorizer.from_pretrained(self.path)
        if self.overrides:
            colorizer.settings = dataclasses.replace(colorizer.settings, **self.overrides)
        return colorizer


def check_bars(summary: dict) -> list[dict]:
    """Each colour bar with the summary's value and whether it is met."""
    return [{"bar": description, "key": key, "value": summary[key], "met": bool(test(summary))} for key, description, test in BARS]


def contact_sheet(
    colorizer: Colorizer, photos: Sequence, *, size: int = 160, columns: int = 4, labels: Sequence[str] | None = None
) -> Image.Image:
    """Pairs (real | ours) of centre crops, `columns` pairs a row; the model sees only the gray version."""
    reals = [center_crop(load_image(photo), size) for photo in photos]
    grays = [gray_image(real) for real in reals]
    with torch.inference_mode():
        outputs = colorizer.colorize_batch(grays)
    gap, caption = 6, 14 if labels else 0
    cell_w, cell_h = 2 * size + gap, size + caption
    rows = -(-len(reals) // columns)
    sheet = Image.new("RGB", (columns * cell_w + (columns - 1) * 3 * gap, rows * (cell_h + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (real, output) in enumerate(zip(reals, outputs)):
        row, column = divmod(index, columns)
        x, y = column * (cell_w + 3 * gap), row * (cell_h + gap)
        sheet.paste(real, (x, y))
        sheet.paste(output, (x + size + gap, y))
        if labels:
            draw.text((x, y + size + 1), str(labels[index])[: 2 * size // 6], fill="black")
    return sheet


def skimage_photos() -> list[Image.Image]:
    from skimage import data

    loaders = {name: getattr(data, name) for name in SKIMAGE_SHEET_PHOTOS if name != "motorcycle"}
    loaders["motorcycle"] = lambda: data.stereo_motorcycle()[0]
    return [Image.fromarray(loaders[name]()).convert("RGB") for name in SKIMAGE_SHEET_PHOTOS]


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def render_report(results: dict, *, command: str, size: int, machine: str, whole: bool = False) -> str:
    scored = f"Whole photos, short side {size}, aspect kept (what a visitor uploads)" if whole else f"Centre {size}x{size} crops"
    lines = [
        "# Evaluation protocol" + (" on whole photos" if whole else ""),
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine}. {scored}; every model at its own inference settings unless the label says otherwise.",
        "Near-gray photos (each set's near_gray.txt) are left out. The unseen sets were never trained, calibrated or selected on.",
        "",
    ]
    for evaluation_set in SETS:
        per_model = {label: sets[evaluation_set.name] for label, sets in results["models"].items() if evaluation_set.name in sets}
        if not per_model:
            continue
        any_summary = next(iter(per_model.values()))
        lines += [
            f"## {evaluation_set.name} — {evaluation_set.role}",
            "",
            f"{any_summary['images']} photos. Gray input: PSNR {_fmt(any_summary['gray_psnr'])} dB, CIEDE2000 "
            f"{_fmt(any_summary['gray_ciede2000'])}.",
            "",
            "| model | PSNR (dB) | CIEDE2000 | false colour | images > 10% | colourfulness ratio | noise diversity (ab) |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, summary in per_model.items():
            lines.append(
                f"| {label} | {_fmt(summary['psnr'])} | {_fmt(summary['ciede2000'])} | {100 * summary['false_colour']:.2f}% "
                f"| {summary['false_colour_images']} ({100 * summary['false_colour_images_share']:.1f}%) "
                f"| {_fmt(summary['colorfulness_ratio'], 3)} | {_fmt(summary['diversity'])} |"
            )
        lines.append("")
    lines += ["## Colour bars on the unseen sets", ""]
    for label, bars in results["bars"].items():
        lines += [f"### {label}", "", "| bar | " + " | ".join(bars) + " |", "|---|" + "---|" * len(bars)]
        for index, (key, description, _) in enumerate(BARS):
            cells = []
            for checks in bars.values():
                check = checks[index]
                value = f"{100 * check['value']:.2f}%" if key.startswith("false_colour") else _fmt(check["value"], 3)
                cells.append(f"{value} {'met' if check['met'] else '**not met**'}")
            lines.append(f"| {description} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    import platform

    from .fastpath import cpu_info

    info = cpu_info().summary()
    return f"{info.get('model', platform.processor() or platform.machine())}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m colorize.protocol", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", action="append", type=ModelUnderTest.parse, required=True,
        help="LABEL=PATH[@key=value,...]; repeat to compare models (or settings of one model)",
    )
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"), help="folder holding the sets")
    parser.add_argument("--out", type=Path, required=True, help="folder for the per-set files and protocol.md")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help="side of the centre square scored (short side with --whole)")
    parser.add_argument("--whole", action="store_true", help="score whole photos (short side --size, aspect kept), not centre squares")
    parser.add_argument("--max-images", type=int, default=0, help="score at most this many photos per set, evenly spaced (0 = all)")
    parser.add_argument("--diversity-samples", type=int, default=DEFAULT_DIVERSITY_SAMPLES, help="noise samples per photo for the diversity measure")
    parser.add_argument("--sheets", type=Path, default=None, help="write contact sheets of the unseen sets here (keep out of git)")
    parser.add_argument("--sheet-photos", type=int, default=48, help="photos per contact sheet, evenly spaced over the set")
    parser.add_argument("--skimage-sheet", type=Path, default=None, help="write a contact sheet of scikit-image's sample photos here")
    parser.add_argument(
        "--hints", type=_hint_counts, default=None, metavar="N,N,...",
        help="measure colour hints instead: these numbers of simulated hints per photo (e.g. 0,1,2,5,10,20,50), "
        "for each model and for Levin et al.'s optimisation",
    )
    parser.add_argument("--no-levin", action="store_true", help="with --hints: leave out Levin et al.'s optimisation")
    parser.add_argument(
        "--sets", default=",".join(s.name for s in SETS),
        help="comma-separated sets to score (default: all three); e.g. imagenette/val alone to tune a setting without looking at the unseen sets",
    )
    return parser


def _hint_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of whole numbers, e.g. 0,1,2,5,10") from None
    if not counts or counts[0] < 0 or counts[-1] > 500:
        raise argparse.ArgumentTypeError("hint counts must be between 0 and 500")
    return counts


def _spread(paths: list[Path], count: int) -> list[Path]:
    if count <= 0 or count >= len(paths):
        return paths
    return [paths[(i * len(paths)) // count] for i in range(count)]


def main(argv: Sequence[str] | None = None) -> int:
    from tqdm import tqdm

    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    sets = []
    wanted = {name.strip() for name in args.sets.split(",") if name.strip()}
    unknown = wanted - {s.name for s in SETS}
    if unknown:
        print(f"error: there is no set {sorted(unknown)[0]!r}; the sets are {', '.join(s.name for s in SETS)}.", file=sys.stderr)
        return 2
    for evaluation_set in SETS:
        if evaluation_set.name not in wanted:
            continue
        folder = args.data_root / evaluation_set.name
        if not folder.is_dir():
            print(f"error: the set {evaluation_set.name} is not under {args.data_root}.", file=sys.stderr)
            return 2
        exclude = args.data_root / evaluation_set.exclude if evaluation_set.exclude else None
        try:
            paths, _ = scored_images(folder, exclude if exclude is not None and exclude.is_file() else None)
        except DatasetError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        sets.append((evaluation_set, _spread(paths, args.max_images)))

    if args.hints is not None:
        from .hint_evaluation import run_hint_protocol

        return run_hint_protocol(args, sets, argv)

    results: dict = {"models": {}, "bars": {}, "settings": {}}
    for model in args.model:
        try:
            colorizer = model.load()
        except CheckpointError as error:
            print(f"error: {model.label}: {error}", file=sys.stderr)
            return 2
        results["settings"][model.label] = {"path": str(model.path), **colorizer.settings.to_dict()}
        unseen_rows: list[dict] = []
        per_set: dict = {}
        for evaluation_set, paths in sets:
            out = args.out / slug(model.label) / evaluation_set.name.replace("/", "-")
            with tqdm(total=len(paths), desc=f"{model.label} on {evaluation_set.name}", unit="photo", file=sys.stderr) as bar:
                with torch.inference_mode():
                    rows = evaluate(
                        colorizer, paths, size=args.size, progress=bar, diversity_samples=args.diversity_samples, whole=args.whole
                    )
            summary = {"set": evaluation_set.name, "role": evaluation_set.role, "images": len(rows), **summarize(rows)}
            write_evaluation(out, rows, summary)
            per_set[evaluation_set.name] = summary
            if evaluation_set.unseen:
                unseen_rows += rows
                if args.sheets is not None:
                    photos = _spread(paths, args.sheet_photos)
                    sheet = contact_sheet(colorizer, photos, labels=[p.stem[:24] for p in photos])
                    args.sheets.mkdir(parents=True, exist_ok=True)
                    sheet.save(args.sheets / f"{slug(model.label)}-{evaluation_set.name.replace('/', '-')}.png")
        per_set["unseen (both)"] = {"images": len(unseen_rows), **summarize(unseen_rows)}
        results["models"][model.label] = per_set
        results["bars"][model.label] = {
            name: check_bars(per_set[name]) for name in [s.name for s, _ in sets if s.unseen] + ["unseen (both)"]
        }
        if args.skimage_sheet is not None:
            args.skimage_sheet.parent.mkdir(parents=True, exist_ok=True)
            target = args.skimage_sheet if len(args.model) == 1 else args.skimage_sheet.with_name(
                f"{args.skimage_sheet.stem}-{slug(model.label)}{args.skimage_sheet.suffix}"
            )
            contact_sheet(colorizer, skimage_photos(), size=192, columns=len(SKIMAGE_SHEET_PHOTOS)).save(target)

    command = "python -m colorize.protocol " + " ".join(sys.argv[1:] if argv is None else argv)
    report = render_report(results, command=command, size=args.size, machine=machine_description(), whole=args.whole)
    results["whole_photos"] = args.whole
    results["command"] = command
    results["seconds"] = round(time.perf_counter() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "protocol.md", report)
    atomic_write_text(args.out / "protocol.json", json.dumps(json_safe(results), indent=2) + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
