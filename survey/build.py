"""Build a study: photos + colorization methods -> anonymised stimuli in the database.

    python -m survey.build --name birds --images photos/ --model runs/exp1 --baseline gray \\
        --db sqlite:///survey.sqlite --trials 20 --practice 3

Each photo is centre-cropped to a square of `--size` pixels: that is the real stimulus. Each
method colourises the photo's gray version (its Lab lightness), which gives one fake per method;
colourful photos also get a catch fake (hue turned by 180 degrees). Everything is written in one
transaction, so a failed build leaves nothing behind.

Methods: `--model PATH` is a checkpoint folder (named after the folder; `--model shipped` is the
model that comes with the package), `--baseline gray` adds no colour, `--baseline untrained`
is the generator with random weights. `colorize` (and so torch) is imported only when a model
or the untrained baseline is asked for.
"""

from __future__ import annotations

import argparse
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from PIL import Image
from tqdm.auto import tqdm

from colorize.pixels import gray_image

from . import SurveyError
from .stimuli import catch_version, square_crop, suits_catch
from .store import StimulusImage, Store, StudySummary
from .inputs import quoted
from .study import CATCH, REAL, RESERVED_METHODS, RESHOWN_TRIALS, Protocol

logger = logging.getLogger(__name__)

# A fake maker takes the gray version of a photo (RGB) and returns its colour fake, same size.
FakeMaker = Callable[[Image.Image], Image.Image]

SHIPPED = "shipped"
BASELINES = ("gray", "untrained")


@dataclass(frozen=True)
class MethodSpec:
    """A colorization method to put in a study: a checkpoint folder (None = shipped) or a baseline."""

    name: str
    kind: str  # "model" | "gray" | "untrained"
    path: Path | None = None


def method_specs(models: Sequence[str] = (), baselines: Sequence[str] = ()) -> list[MethodSpec]:
    """The methods named on the command line, with names that must be distinct."""
    specs = []
    for model in models:
        if model == SHIPPED:
            specs.append(MethodSpec(SHIPPED, "model"))
        else:
            path = Path(model).expanduser()
            specs.append(MethodSpec(path.resolve().name, "model", path))
    for baseline in baselines:
        if baseline not in BASELINES:
            raise SurveyError(f"Unknown baseline {quoted(baseline)}; choose {' or '.join(BASELINES)}.")
        specs.append(MethodSpec(baseline, baseline))
    if not specs:
        raise SurveyError("Name at least one method: --model PATH or --baseline gray|untrained.")
    names = [spec.name for spec in specs]
    for name in names:
        if names.count(name) > 1:
            raise SurveyError(f"Two methods are called {quoted(name)}; rename one of the checkpoint folders.")
        if name in RESERVED_METHODS:
            raise SurveyError(f"A method cannot be called {quoted(name)}; rename that checkpoint folder.")
    return specs


def load_fake_maker(spec: MethodSpec, *, seed: int = 0) -> FakeMaker:
    """The function that makes `spec`'s fakes; loads the model now, so a bad path fails early.

    A model runs at its own inference settings (`colorize.defaults`): the fakes are what a user
    of the app or the CLI gets for that photo, whatever the stimulus size.
    """
    if spec.kind == "gray":
        # The input already is the gray version; the baseline shows it unchanged.
        return lambda gray: gray.copy()
    from colorize import Colorizer  # lazy: torch is only needed to run a model
    from colorize.checkpoint import CheckpointError

    try:
        if spec.kind == "untrained":
            colorizer = Colorizer.untrained(seed=seed)
        else:
            colorizer = Colorizer.from_pretrained(spec.path)
    except CheckpointError as error:
        raise SurveyError(str(error)) from None
    return lambda gray: colorizer.colorize(gray)


def find_source_images(folder: str | Path) -> list[tuple[str, Path]]:
    """(image_key, path) for every image under `folder`, sorted.

    The key is the path relative to `folder`: it stays in the database for the analysis and is
    never shown to participants.
    """
    from colorize.imageio import find_images  # torch-free module; lazy to keep `survey` light

    folder = Path(folder)
    if not folder.exists():
        raise SurveyError(f"There is no folder at {folder}.")
    paths = find_images(folder)
    if not paths:
        raise SurveyError(f"There are no images in {folder}.")
    base = folder if folder.is_dir() else folder.parent
    return [(path.relative_to(base).as_posix(), path) for path in paths]


def load_source_images(
    found: Sequence[tuple[str, Path]], *, max_images: int | None = None, seed: int = 0
) -> list[tuple[str, Image.Image]]:
    """Open the images (EXIF orientation, any mode -> RGB), skipping unreadable files with a warning.

    max_images: a seeded random choice of that many readable images (a broken file does not
    count), sorted by key.
    """
    from colorize.imageio import ImageLoadError, load_image

    order = list(found)
    if max_images is not None:
        random.Random(seed).shuffle(order)
    loaded = []
    for key, path in order:
        if max_images is not None and len(loaded) >= max_images:
            break
        try:
            loaded.append((key, load_image(path)))
        except ImageLoadError as error:
            logger.warning("Skipping %s: %s", key, error)
    return sorted(loaded, key=lambda item: item[0])


def build_study(
    store: Store,
    *,
    name: str,
    sources: Sequence[tuple[str, Image.Image]],
    makers: Mapping[str, FakeMaker],
    protocol: Protocol,
    progress: bool = True,
) -> StudySummary:
    """Make every stimulus of a study from `sources` (image_key, photo) and store it in one go.

    makers: method name -> fake maker. The trial counts are clipped, with a warning, when there
    are fewer images than one participant needs.
    """
    if any(study.name == name for study in store.list_studies()):
        raise SurveyError(f"A study called {quoted(name)} already exists.")  # before the slow part
    if not makers:
        raise SurveyError("A study needs at least one colorization method.")
    if not sources:
        raise SurveyError("A study needs at least one image.")
    fitted, warning = protocol.fitted(len(sources))
    if warning:
        logger.warning(warning)
    size = fitted.image_size
    stimuli: list[StimulusImage] = []
    for key, photo in tqdm(sources, desc="Colorizing", unit="image", disable=not progress):
        real = square_crop(photo, size)
        gray = gray_image(real)
        stimuli.append(StimulusImage(key, REAL, real))
        for method, make_fake in makers.items():
            fake = make_fake(gray)
            if fake.size != real.size:  # a maker that changes the size would give the answer away
                fake = fake.resize(real.size, Image.Resampling.LANCZOS)
            stimuli.append(StimulusImage(key, method, fake))
        if suits_catch(real):
            stimuli.append(StimulusImage(key, CATCH, catch_version(real)))
    summary = store.create_study(name, fitted, stimuli)
    logger.info(
        "Study '%s': %d images x (real + %s), %s mode.", summary.name, summary.images, ", ".join(summary.methods), summary.mode
    )
    return summary


def build_parser() -> argparse.ArgumentParser:
    # Defaults come from Protocol, so a default lives in one place.
    default = Protocol()
    parser = argparse.ArgumentParser(prog="python -m survey.build", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="study name (unique in the database)")
    parser.add_argument("--images", required=True, type=Path, help="folder of real photos")
    parser.add_argument("--model", action="append", default=[], metavar="PATH", help="checkpoint folder, or 'shipped'; repeatable")
    parser.add_argument("--baseline", action="append", default=[], choices=BASELINES, help="baseline method; repeatable")
    parser.add_argument("--db", default=None, help="database URL (default: SURVEY_DB_URL or sqlite:///survey.sqlite)")
    parser.add_argument("--size", type=int, default=default.image_size, help="side of the square stimuli in pixels")
    parser.add_argument("--mode", choices=("pair", "single"), default=default.mode, help="pair: 2AFC side by side; single: real or fake?")
    parser.add_argument("--exposure-ms", type=int, default=default.exposure_ms, help="how long images stay visible; 0 = no limit")
    parser.add_argument("--practice", type=int, default=default.practice_trials, help="practice trials with feedback")
    parser.add_argument("--trials", type=int, default=default.test_trials, help="test trials per participant (catch included)")
    parser.add_argument("--catch-rate", type=float, default=default.catch_rate, help="share of test trials that are catch trials")
    parser.add_argument("--seed", type=int, default=default.seed, help="seeds image sampling and trial plans")
    parser.add_argument("--max-response-ms", type=int, default=default.max_response_ms,
                        help="answers slower than this are flagged slow and counted in the report; 0 = no limit")
    parser.add_argument("--reshown-trials", choices=RESHOWN_TRIALS, default=default.reshown_trials,
                        help="what the report does with trials served again after their exposure window")  # fmt: skip
    parser.add_argument("--one-method-per-image", action="store_true",
                        help="tie each photo to one method for the whole study (for public studies: repeated "
                             "participations cannot find the real photo by matching images; methods are then "
                             "compared on different photos)")  # fmt: skip
    parser.add_argument("--max-images", type=int, default=None, help="use a random subset of this many images")
    parser.add_argument("--consent-file", type=Path, default=None, help="text file with your own consent text")
    parser.add_argument("--instructions-file", type=Path, default=None, help="text file with your own instructions")
    return parser


def _read_text(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as error:
        raise SurveyError(f"Cannot read {path}: {error.strerror}.") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    try:
        consent = _read_text(args.consent_file)
        protocol = Protocol(
            mode=args.mode,
            exposure_ms=args.exposure_ms or None,
            practice_trials=args.practice,
            test_trials=args.trials,
            catch_rate=args.catch_rate,
            image_size=args.size,
            seed=args.seed,
            max_response_ms=args.max_response_ms or None,
            reshown_trials=args.reshown_trials,
            one_method_per_image=args.one_method_per_image,
            instructions_text=_read_text(args.instructions_file),
            **({"consent_text": consent} if consent else {}),
        )
        if args.max_images is not None and args.max_images < 1:
            raise SurveyError("--max-images must be at least 1.")
        specs = method_specs(args.model, args.baseline)
        store = Store(args.db)
        if any(study.name == args.name for study in store.list_studies()):
            raise SurveyError(f"A study called {quoted(args.name)} already exists.")
        sources = load_source_images(find_source_images(args.images), max_images=args.max_images, seed=args.seed)
        makers = {spec.name: load_fake_maker(spec, seed=args.seed) for spec in specs}
        summary = build_study(store, name=args.name, sources=sources, makers=makers, protocol=protocol)
    except SurveyError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"Built study '{summary.name}' with {summary.images} images and methods {', '.join(summary.methods)} in {store!r}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
