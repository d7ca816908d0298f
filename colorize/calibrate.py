"""`python -m colorize.calibrate`: choose a model's colour strength on held-out photos.

A GAN colorizer's colour strength is a trade-off: more chroma makes outputs as vivid as real
photos, and also makes every wrong hue cost more (CIEDE2000, PSNR) and show as false colour.
The knobs (`colorize.defaults.InferenceSettings`): the chroma scale s (the predicted ab
multiplied by s); the chroma curve's exponent gamma (`colorize.infer.apply_chroma_gamma`: with
gamma > 1 weak colours fade while strong ones stay); and, for a model with injected noise, the
number of noise draws whose hue agreement fades the colour where they disagree, with its power
(`--samples`, `--agreement-powers`); for a bins-head model, the annealed-mean temperature and
the share of its training's class rebalancing divided out at decoding (`--temperatures`,
`--prior-corrections`: the rebalancing tilts it towards rare saturated colours). This command scores the model on every combination, on
photos it was not trained on, and picks by this rule:

1. only settings whose false colour (`colorize.metrics.false_colour_share`) stays within
   `--max-false-colour` on average and within `--max-spoiled-images` of images over 10% count,
   and of those, when any is, only the ones closer to the real photos (mean CIEDE2000) than the
   gray input;
2. among those, the most accurate (lowest mean CIEDE2000) whose outputs keep at least
   `--min-colourfulness-ratio` of the real photos' colourfulness;
3. if none is that colourful, the most colourful of them; if none passes 1, the one with the
   least false colour.

A model that takes colour hints can also have its `hint_snap` and `hint_locality` chosen
(`--hint-snaps 0,0.5,1 --hint-localities 0,1`: how strongly a hint's region is pulled to its
colour, and whether the automatic colours stay beyond the hints' regions). With the colour
settings chosen above, each pair is scored on `--hint-sample` of the photos with
`--hint-counts` hints simulated from them (`colorize.hint_evaluation`), and the one with the
lowest CIEDE2000 averaged over those counts wins among those that keep a hint where it is placed
(median ab distance at the hinted points at most `MAX_HINT_ERROR`, at every count and for hints
of a colour the model finds unlikely; if none does, the one that comes closest) and whose single
click fills its object (`colorize.hint_evaluation.one_click_fills`: a synthetic photo of flat
regions and the astronaut's suit; if none does, the one that comes closest).

With `--write` the choice goes into the model's config.json ("inference"), where `Colorizer`,
the app, `colorize.infer`, the survey and `colorize.evaluate` apply it; a user's saturation
multiplies the scale.

Calibrate on data the model is *evaluated* on and the evaluation is no longer held out: calibrate
on imagenette/val or photos held out of training, never on the unseen evaluation sets.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from .checkpoint import CONFIG_FILE, CheckpointError, atomic_write_text, read_config
from .data import DatasetError
from .evaluate import DEFAULT_SIZE, evaluate, scored_images, summarize
from .defaults import MAX_CHROMA_GAMMA, MAX_CHROMA_KNEE, MAX_CHROMA_SCALE, MAX_SAMPLES
from .infer import Colorizer

DEFAULT_SCALES = (0.5, 0.6, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0, 2.4, 2.8, 3.4, 4.0)  # ~1.19x apart
DEFAULT_GAMMAS = (1.0, 1.5, 2.0, 2.5, 3.0)
DEFAULT_MIN_RATIO = 0.85
DEFAULT_MAX_FALSE_COLOUR = 0.025  # below the project's 3% bar, with room for other photos
DEFAULT_MAX_SPOILED = 0.025
MAX_HINT_ERROR = 5.0  # ab units: a hint is obeyed where it is placed


def sweep(
    colorizer: Colorizer,
    paths: Sequence[Path],
    scales: Sequence[float],
    *,
    size: int,
    render_size: int | None,
    gammas: Sequence[float] = DEFAULT_GAMMAS,
    samples: Sequence[int] = (1,),
    agreement_powers: Sequence[float] = (1.0,),
    knees: Sequence[float] = (0.0,),
    temperatures: Sequence[float | None] = (None,),
    prior_corrections: Sequence[float] = (0.0,),
) -> list[dict]:
    """Summary metrics (see `colorize.evaluate.summarize`) of `colorizer` at every combination of settings.

    `agreement_powers` only varies with samples > 1 (one draw has nothing to agree with).
    """
    results = []
    gray_scores: dict = {}
    original = colorizer.settings
    combinations = []
    for correction, temperature, count, gamma, scale, knee in itertools.product(
        prior_corrections, temperatures, samples, gammas, scales, knees
    ):
        for power in agreement_powers if count > 1 else (1.0,):
            combinations.append((float(correction), temperature, int(count), float(power), float(gamma), float(scale), float(knee)))
    try:
        for correction, temperature, count, power, gamma, scale, knee in combinations:
            colorizer.settings = dataclasses.replace(
                original, samples=count, agreement_power=power, chroma_gamma=gamma, chroma_scale=scale, chroma_knee=knee,
                colour_temperature=original.colour_temperature if temperature is None else float(temperature),
                prior_correction=correction,
            )
            with torch.inference_mode():
                rows = evaluate(colorizer, paths, size=size, render_size=render_size, gray_scores=gray_scores)
            results.append({
                "samples": count, "agreement_power": power, "chroma_gamma": gamma, "chroma_scale": scale,
                "chroma_knee": knee, "colour_temperature": colorizer.settings.colour_temperature,
                "prior_correction": correction,
                "images": len(rows), **summarize(rows),
            })
    finally:
        colorizer.settings = original
    return results


def evenly_spaced(paths: Sequence[Path], count: int) -> list[Path]:
    """`count` of `paths` spread evenly over the list (all of them if count is 0 or too large)."""
    if count <= 0 or count >= len(paths):
        return list(paths)
    return [paths[(i * len(paths)) // count] for i in range(count)]


def choose(
    results: list[dict],
    min_ratio: float,
    *,
    max_false_colour: float = 1.0,
    max_spoiled: float = 1.0,
) -> tuple[dict, bool]:
    """The row the module docstring's rule picks, and whether it reached `min_ratio` within the false-colour limits."""
    clean = [
        row for row in results
        if row["false_colour"] <= max_false_colour and row["false_colour_images_share"] <= max_spoiled
    ]
    if not clean:
        return min(results, key=lambda row: row["false_colour"]), False
    # colour that is on average further from the truth than no colour at all is not worth having
    closer_than_gray = [row for row in clean if row["ciede2000"] < row.get("gray_ciede2000", math.inf)]
    clean = closer_than_gray or clean
    enough = [row for row in clean if row["colorfulness_ratio"] >= min_ratio]
    if enough:
        return min(enough, key=lambda row: row["ciede2000"]), True
    return max(clean, key=lambda row: row["colorfulness_ratio"]), False


def render_table(results: list[dict], chosen: dict) -> str:
    lines = [
        "| prior correction | temperature | samples | agreement power | chroma gamma | chroma scale | chroma knee | PSNR (dB) "
        "| CIEDE2000 | false colour | images > 10% | colourfulness ratio | |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        mark = "**chosen**" if row is chosen else ""
        lines.append(
            f"| {row.get('prior_correction', 0.0):g} | {'own' if row.get('colour_temperature') is None else format(row['colour_temperature'], 'g')} "
            f"| {row['samples']} | {row['agreement_power']:.2f} | {row['chroma_gamma']:.2f} | {row['chroma_scale']:.2f} "
            f"| {row.get('chroma_knee', 0.0):g} | {row['psnr']:.2f} | {row['ciede2000']:.2f} | {100 * row['false_colour']:.2f}% "
            f"| {row['false_colour_images']} | {row['colorfulness_ratio']:.3f} | {mark} |"
        )
    gray = results[0]
    lines.append(f"| gray (ab = 0) | | | | | | | {gray['gray_psnr']:.2f} | {gray['gray_ciede2000']:.2f} | 0% | 0 | 0 | |")
    return "\n".join(lines)


def write_choice(model: Path, chosen: dict, record: dict) -> None:
    """Store the chosen settings in `model`/config.json's "inference" (atomically), with how they were chosen."""
    config = read_config(model)
    config["inference"] = {
        **(config.get("inference") or {}),
        **{key: chosen[key] for key in CHOSEN_KEYS if key in chosen and chosen[key] is not None},
        "calibration": record,
    }
    atomic_write_text(model / CONFIG_FILE, json.dumps(config, indent=2, sort_keys=True) + "\n")


CHOSEN_KEYS = (
    "chroma_scale", "chroma_gamma", "samples", "agreement_power", "chroma_knee", "colour_temperature", "prior_correction",
    "hint_snap", "hint_locality",
)


def sweep_hint_snaps(
    colorizer: Colorizer,
    paths: Sequence[Path],
    snaps: Sequence[float],
    counts: Sequence[int],
    *,
    size: int,
    localities: Sequence[float] = (0.0,),
) -> list[dict]:
    """Per (hint snap, hint locality): the mean PSNR and CIEDE2000 over `counts` simulated hints on `paths`."""
    from .hint_evaluation import HintMethod, evaluate_hints, one_click_fills, summarize_hints

    original = colorizer.settings
    results = []
    try:
        for snap, locality in itertools.product(snaps, localities):
            colorizer.settings = dataclasses.replace(original, hint_snap=float(snap), hint_locality=float(locality))
            with torch.inference_mode():
                rows = evaluate_hints(
                    HintMethod("candidate", colorizer), paths, counts, size=size, render_size=colorizer.default_render_size
                )
                one_click = one_click_fills(colorizer)
            summary = summarize_hints(rows)
            results.append({
                "hint_snap": float(snap),
                "hint_locality": float(locality),
                "psnr": float(sum(summary[n]["psnr"] for n in counts) / len(counts)),
                "ciede2000": float(sum(summary[n]["ciede2000"] for n in counts) / len(counts)),
                "hint_error": float(sum(summary[n]["hint_error"] for n in counts) / len(counts)),
                "worst_hint_error": float(max([summary[n]["hint_error"] for n in counts] + [summary[counts[0]]["unlikely_hint_error"]])),
                "one_click": one_click,
                "per_count": {str(n): summary[n] for n in counts},
            })
    finally:
        colorizer.settings = original
    return results


def choose_hint_snap(results: list[dict]) -> dict:
    """The lowest mean CIEDE2000 among the settings whose worst hint error is within MAX_HINT_ERROR
    and whose single click fills its object (`one_click_fills` passed); failing that, among those
    that keep hints where placed the one that fills best (largest worst fill less worst leak), or
    the one with the smallest worst hint error.

    Why the one-click test as a rule and not only CIEDE2000: simulated hints sit on random points
    of the real photo, where washing the whole photo in the clicked colours is right on average
    (the colours of a photo go together), but a person who clicks on a door asks for the door."""
    obeyed = [row for row in results if row["worst_hint_error"] <= MAX_HINT_ERROR]
    if not obeyed:
        return min(results, key=lambda row: row["worst_hint_error"])
    filling = [row for row in obeyed if row.get("one_click", {}).get("passed", True)]
    if not filling:
        return max(obeyed, key=lambda row: row["one_click"]["worst_filled"] - row["one_click"]["worst_leaked"])
    return min(filling, key=lambda row: row["ciede2000"])


def _list_of(what: str, kind: type, accepts, allowed: str):
    """An argparse type: comma-separated values of `kind`, each passing `accepts`, else one sentence."""

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(part) for part in text.split(",") if part.strip())
        except ValueError:
            noun = "whole numbers" if kind is int else "numbers"
            raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of {noun}") from None
        if not values or not all(accepts(v) for v in values):
            raise argparse.ArgumentTypeError(f"{what} must be {allowed}")
        return values

    return parse


def _number_list(what: str, upper: float):
    return _list_of(what, float, lambda v: 0 < v <= upper, f"numbers in (0, {upper:g}]")


_knee_list = _list_of("knees", float, lambda v: 0 <= v <= MAX_CHROMA_KNEE, f"numbers from 0 (none) to {MAX_CHROMA_KNEE:g}")
_count_list = _list_of("samples", int, lambda v: 1 <= v <= MAX_SAMPLES, f"whole numbers from 1 to {MAX_SAMPLES}")


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
    parser.add_argument(
        "--samples", type=_count_list, default=(1,),
        help="comma-separated numbers of noise draws whose hue agreement fades the colour (1 = the single deterministic pass)",
    )
    parser.add_argument(
        "--agreement-powers", type=_number_list("agreement powers", 8.0), default=(1.0,),
        help="comma-separated powers of the hue agreement (with samples > 1)",
    )
    parser.add_argument(
        "--temperatures", type=_list_of("temperatures", float, lambda v: 0 < v <= 1, "numbers in (0, 1]"), default=(None,),
        help="comma-separated annealed-mean temperatures to try (a bins-head model only; default: its own)",
    )
    parser.add_argument(
        "--prior-corrections", type=_list_of("prior corrections", float, lambda v: 0 <= v <= 1, "numbers from 0 to 1"),
        default=(0.0,),
        help="comma-separated shares of the training's class rebalancing to divide out at decoding (a bins-head model only; 0 = as trained)",
    )
    parser.add_argument(
        "--knees", type=_knee_list, default=(0.0,),
        help="comma-separated soft chroma ceilings to try (colorize.infer.apply_chroma_knee; 0 = none)",
    )
    parser.add_argument(
        "--hint-snaps", type=_list_of("hint snaps", float, lambda v: 0 <= v <= 1, "numbers from 0 to 1"), default=None,
        help="a hint-taking model: comma-separated hint_snap values to choose from with simulated hints (e.g. 0,0.5,1)",
    )
    parser.add_argument(
        "--hint-localities", type=_list_of("hint localities", float, lambda v: 0 <= v <= 1, "numbers from 0 to 1"),
        default=(0.0,), help="with --hint-snaps: comma-separated hint_locality values to choose from (e.g. 0,1)",
    )
    parser.add_argument(
        "--hint-counts", type=_list_of("hint counts", int, lambda v: 1 <= v <= 100, "whole numbers from 1 to 100"),
        default=(1, 2, 5, 10, 20), help="with --hint-snaps: the numbers of simulated hints each snap is scored at",
    )
    parser.add_argument("--hint-sample", type=int, default=100, help="with --hint-snaps: photos scored per snap (evenly spaced)")
    parser.add_argument("--min-colourfulness-ratio", type=float, default=DEFAULT_MIN_RATIO, help="vividness to keep (output / real)")
    parser.add_argument("--max-false-colour", type=float, default=DEFAULT_MAX_FALSE_COLOUR, help="largest mean false-colour share allowed (0-1)")
    parser.add_argument(
        "--max-spoiled-images", type=float, default=DEFAULT_MAX_SPOILED,
        help="largest share of images (0-1) allowed over 10%% false colour",
    )
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
    for flag, given in (("--temperatures", args.temperatures != (None,)), ("--prior-corrections", any(args.prior_corrections))):
        if given and not colorizer.generator.predicts_bins:
            print(f"error: {flag} needs a model with the bins colour head (trained with --colour-head bins).", file=sys.stderr)
            return 2
    own_settings = colorizer.settings
    try:  # the Colorizer refuses a correction the model cannot apply: ask it before the sweep starts
        colorizer.settings = dataclasses.replace(own_settings, prior_correction=max(args.prior_corrections))
    except CheckpointError as error:
        print(f"error: {args.model}: {error}", file=sys.stderr)
        return 2
    colorizer.settings = own_settings
    if args.hint_snaps is not None and not colorizer.takes_hints:
        print("error: --hint-snaps needs a model that takes colour hints (trained with --hints).", file=sys.stderr)
        return 2
    if max(args.samples) > 1 and not colorizer.generator.has_injected_noise:
        print("error: --samples above 1 needs a model with injected noise (trained with --noise-channels).", file=sys.stderr)
        return 2
    results = sweep(
        colorizer, paths, args.scales, size=args.size, render_size=args.render_size, gammas=args.gammas,
        samples=args.samples, agreement_powers=args.agreement_powers, knees=args.knees, temperatures=args.temperatures,
        prior_corrections=args.prior_corrections,
    )
    chosen, reached = choose(
        results, args.min_colourfulness_ratio, max_false_colour=args.max_false_colour, max_spoiled=args.max_spoiled_images
    )
    table = render_table(results, chosen)
    snap_results = []
    if args.hint_snaps is not None:
        colorizer.settings = dataclasses.replace(
            own_settings, **{key: chosen[key] for key in CHOSEN_KEYS if key in chosen and chosen[key] is not None}
        )
        snap_results = sweep_hint_snaps(
            colorizer, evenly_spaced(paths, args.hint_sample), args.hint_snaps, args.hint_counts, size=args.size,
            localities=args.hint_localities,
        )
        best = choose_hint_snap(snap_results)
        chosen = {**chosen, "hint_snap": best["hint_snap"], "hint_locality": best["hint_locality"]}
        table += "\n\n" + "\n".join(
            [f"Hint snap, with {', '.join(map(str, args.hint_counts))} simulated hints on {min(len(paths), args.hint_sample or len(paths))} of the photos "
             f"(means over those counts; the lowest CIEDE2000 among those whose hint error stays within {MAX_HINT_ERROR:g} at every count "
             "and for unlikely colours, and whose single click fills its object: at least 80% of its region within 10 ab of the hint, at most 10% "
             "of the rest changed, on a synthetic photo of flat regions and on the astronaut's suit):", "",
             "| hint snap | hint locality | PSNR (dB) | CIEDE2000 | hint error (ab) | one click: worst fill, worst leak | |", "|---|---|---|---|---|---|---|"]
            + [f"| {row['hint_snap']:g} | {row['hint_locality']:g} | {row['psnr']:.2f} | {row['ciede2000']:.2f} | {row['hint_error']:.1f} (worst {row['worst_hint_error']:.1f}) "
               f"| {row['one_click']['worst_filled']:.0%}, {row['one_click']['worst_leaked']:.0%}{'' if row['one_click']['passed'] else ' (fails)'} "
               f"| {'**chosen**' if row is best else ''} |" for row in snap_results]
        )
    record = {
        "data": str(args.data),
        "images": chosen["images"],
        "sample": args.sample,
        "min_colourfulness_ratio": args.min_colourfulness_ratio,
        "max_false_colour": args.max_false_colour,
        "max_spoiled_images": args.max_spoiled_images,
        "size": args.size,
        "rule": (
            "lowest mean CIEDE2000 among the settings whose colourfulness ratio reaches the minimum and whose "
            "false colour (mean share, share of images over 10%) stays within the maxima (and, where any does, "
            "whose CIEDE2000 is below the gray input's); failing that, the most colourful of those"
        ),
        "reached": reached,
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
    }
    print(table)
    if not reached:
        print(
            f"note: no setting reached colourfulness ratio {args.min_colourfulness_ratio} within the false-colour limits; "
            "the most colourful one within them (or the one with the least false colour) was chosen."
        )
    print(
        f"chosen chroma scale: {chosen['chroma_scale']:.2f}, chroma gamma: {chosen['chroma_gamma']:.2f}, "
        f"samples: {chosen['samples']}, agreement power: {chosen['agreement_power']:.2f}, "
        f"chroma knee: {chosen['chroma_knee']:g}, temperature: {chosen.get('colour_temperature') or 'own'}, "
        f"prior correction: {chosen.get('prior_correction', 0.0):g}"
        + (f", hint snap: {chosen['hint_snap']:g}, hint locality: {chosen['hint_locality']:g}" if "hint_snap" in chosen else "")
        + f" ({time.perf_counter() - started:.0f} s)"
    )
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        command = "python -m colorize.calibrate " + " ".join(sys.argv[1:] if argv is None else argv)
        atomic_write_text(
            args.out / "calibration.md",
            f"# Chroma scale calibration\n\nCommand: `{command}`\n\n{len(paths)} photos from `{args.data}`, "
            f"centre {args.size}x{args.size} crops. Rule: {record['rule']} (colourfulness {args.min_colourfulness_ratio}, "
            f"false colour {args.max_false_colour:.1%}, images over 10% {args.max_spoiled_images:.1%}).\n\n{table}\n",
        )
        atomic_write_text(
            args.out / "calibration.json", json.dumps({"record": record, "results": results, "hint_snaps": snap_results}, indent=2) + "\n"
        )
    if args.write:
        write_choice(args.model, chosen, record)
        print(f"written to {args.model / CONFIG_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
