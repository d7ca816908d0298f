"""Build a study: photos + colorization methods -> anonymised stimuli in the database.

    python -m survey.build --name birds --images photos/ --model runs/exp1 --baseline gray \\
        --db sqlite:///survey.sqlite --trials 20 --practice 3

Each photo is centre-cropped to a square of `--size` pixels: that is the real stimulus. Each
method colourises the photo's gray version (its Lab lightness), which gives one fake per method;
colourful photos also get a catch fake (hue turned by 180 degrees). Everything is written in one
transaction, so a failed build leaves nothing behind.

Methods: `--model PATH` is a checkpoint folder (named after the folder; `--model shipped` is the
model that comes with the package), `--baseline gray` adds no colour, `--baseline untrained`
is the generator with random weights. `--model shipped+hints:10` is a model given 10 colour
hints per photo, simulated from the real photo (`colorize.hints.simulate_user_hints`, seeded by
the study's seed and the photo), which a study of several counts turns into "how many clicks
until people can't tell?"; the model must take hints. Every fake is stored with a record of how
it was made (model, checkpoint, settings, hints), which the report describes each method from.
`colorize` (and so torch) is imported only when a model or the untrained baseline is asked for.

The design of a public study (`Protocol`'s defaults): practice photos are a pool of their own
(`--practice-images DIR`, or set aside from `--images`), each test photo is tied to one method
(`--no-one-method-per-image` shows every photo with every method), and real photos are shown
with their colour at the resolution of the fakes' (`--no-equal-chroma-bandwidth` keeps their
full colour resolution). For that last one, each real photo's colour is taken down to the render
shape of the model it is shown with and back up as that model's colour is
(`colorize.infer.colour_at_shape`), onto the same gray lightness its fakes are made from; and
where the model's colour holds less detail than its render shape allows, softened there until
real photos' colour detail (`stimuli.chroma_detail`) matches its fakes' on this study's photos.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import random
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from colorize.pixels import gray_image

from . import SurveyError
from .stimuli import catch_version, chroma_detail, square_crop, suits_catch
from .store import PRACTICE, TEST, StimulusImage, Store, StudySummary
from .inputs import quoted
from .study import CATCH, REAL, RESERVED_METHODS, RESHOWN_TRIALS, Protocol, image_groups, split_pools

logger = logging.getLogger(__name__)

# A fake maker takes the gray version of a photo (RGB) and returns its colour fake, same size.
FakeMaker = Callable[[Image.Image], Image.Image]

SHIPPED = "shipped"
BASELINES = ("gray", "untrained")
MAX_STUDY_HINTS = 200
_HINTED = re.compile(r"(?P<model>.+)\+hints:(?P<count>[0-9]{1,6})")
# The softenings tried to give real photos' colour the detail of a model's (a Gaussian's sigma, in
# render pixels), measured on up to this many of the study's photos.
DETAIL_BLURS = tuple(step / 10 for step in range(21))
DETAIL_PHOTOS = 32


@dataclass(frozen=True)
class MethodSpec:
    """A colorization method to put in a study: a checkpoint folder (None = shipped) or a baseline,
    with `hints` simulated colour hints per photo (0: none)."""

    name: str
    kind: str  # "model" | "gray" | "untrained"
    path: Path | None = None
    hints: int = 0


def method_specs(models: Sequence[str] = (), baselines: Sequence[str] = ()) -> list[MethodSpec]:
    """The methods named on the command line (`shipped`, a folder, either with `+hints:N`), with names that must be distinct."""
    specs = []
    for model in models:
        base, hints, match = model, 0, _HINTED.fullmatch(model)
        if match:
            base, hints = match["model"], int(match["count"])
            if not 1 <= hints <= MAX_STUDY_HINTS:
                raise SurveyError(f"{quoted(model)} asks for {hints} hints; give 1 to {MAX_STUDY_HINTS} (the model alone is {quoted(base)}).")
        suffix = f"+hints:{hints}" if hints else ""
        if base == SHIPPED:
            specs.append(MethodSpec(SHIPPED + suffix, "model", hints=hints))
        else:
            path = Path(base).expanduser()
            specs.append(MethodSpec(path.resolve().name + suffix, "model", path, hints))
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
        if len(name) > 100:
            raise SurveyError(f"The method name {quoted(name)} is longer than 100 characters; rename that checkpoint folder.")
    return specs


class Method:
    """A method of a study: makes each photo's fake (`fake`), describes how (`description`, stored
    with every fake), and, for a model, shows a real photo's colour at its resolution (`real_colour`).

    `Method.of(name, maker)` wraps a plain fake maker (gray -> fake); `load_method` makes one from
    a `MethodSpec`.
    """

    def __init__(self, name: str, make: Callable[[Image.Image, Image.Image, str], tuple[Image.Image, dict]], *,
                 description: dict, colorizer: Any = None) -> None:  # fmt: skip
        self.name = name
        self.description = description
        self.colorizer = colorizer  # a colorize.Colorizer, for `render_shape` and `real_colour`
        self._make = make

    @classmethod
    def of(cls, name: str, maker: "FakeMaker | Method") -> "Method":
        if isinstance(maker, Method):
            return maker
        what = getattr(maker, "__qualname__", None) or type(maker).__name__
        return cls(name, lambda real, gray, key: (maker(gray), {}), description={"kind": "function", "function": what})

    def fake(self, real: Image.Image, gray: Image.Image, *, key: str) -> tuple[Image.Image, dict]:
        """This method's fake of `real` (made from `gray`, its gray version) and what is recorded with it."""
        fake, extra = self._make(real, gray, key)
        if fake.size != real.size:  # a maker that changes the size would give the answer away
            fake = fake.resize(real.size, Image.Resampling.LANCZOS)
        return fake.convert("RGB"), {"method": self.name, **self.description, **extra}

    def render_shape(self, size: tuple[int, int]) -> tuple[int, int] | None:
        """(h, w) at which this method's colour is made for an image of `size` (w, h); None without a network."""
        return None if self.colorizer is None else tuple(self.colorizer.render_shape_of(*size))

    def real_colour(self, real: Image.Image, gray: Image.Image, blur: float = 0.0) -> Image.Image:
        """`real`'s colour at this method's render shape (softened by `blur` render pixels), brought up
        onto `gray`'s lightness as this method's colour is (`colorize.infer.colour_at_shape`)."""
        from colorize.infer import colour_at_shape  # lazy: torch

        return colour_at_shape(
            real, self.render_shape(real.size), lightness=gray, blur=blur, gamut=self.colorizer.gamut, kernel=self.colorizer.kernel
        )


def hint_seed(study_seed: int, image_key: str) -> int:
    """The seed of a photo's simulated hints: the study's seed and the photo, nothing else."""
    return zlib.crc32(f"survey-hints/{study_seed}/{image_key}".encode())


def _checkpoint_record(path: Path | None, hint_model: str | None = None) -> dict:
    """Which weights a model method ran: its folder and the first 16 hex digits of its weights' SHA-256
    (and of the hint model's, for an automatic model paired with one)."""
    from colorize.checkpoint import SHIPPED_MODEL_DIR, WEIGHTS_FILE

    folder = SHIPPED_MODEL_DIR if path is None else Path(path)

    def digest(weights: Path) -> str | None:
        return hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.is_file() else None

    record = {
        "checkpoint": "the shipped weights (colorize/weights)" if path is None else str(folder.resolve()),
        "weights_sha256": digest(folder / WEIGHTS_FILE),
    }
    if hint_model:
        record["hint_weights_sha256"] = digest(folder / hint_model / WEIGHTS_FILE)
    return record


def load_method(spec: MethodSpec, *, seed: int = 0) -> Method:
    """The method `spec` names; loads the model now, so a bad path (or a hinted method on a model
    that takes no hints) fails before anything is colourised.

    A model runs at its own inference settings (`colorize.defaults`): the fakes are what a user
    of the app or the CLI gets for that photo, whatever the stimulus size.
    """
    if spec.kind == "gray":
        # The input already is the gray version; the baseline shows it unchanged.
        return Method(spec.name, lambda real, gray, key: (gray.copy(), {}),
                      description={"kind": "baseline", "baseline": "gray", "what": "the photo's own lightness, no colour"})  # fmt: skip
    from colorize import Colorizer  # lazy: torch is only needed to run a model
    from colorize.checkpoint import CheckpointError

    try:
        if spec.kind == "untrained":
            colorizer = Colorizer.untrained(seed=seed)
        else:
            colorizer = Colorizer.from_pretrained(spec.path)
    except CheckpointError as error:
        raise SurveyError(str(error)) from None
    if spec.hints and not colorizer.takes_hints:
        raise SurveyError(
            f"The model '{colorizer.name}' takes no colour hints, so {quoted(spec.name)} cannot be built; "
            "use a model trained with --hints, or the model without '+hints'."
        )
    description = {
        "kind": "untrained" if spec.kind == "untrained" else "model",
        "model": colorizer.name,
        **({"untrained_seed": seed} if spec.kind == "untrained" else _checkpoint_record(spec.path, colorizer.config.get("hint_model"))),
        "settings": dataclasses.asdict(colorizer.settings),
        "hints": spec.hints,
    }

    def make(real: Image.Image, gray: Image.Image, key: str) -> tuple[Image.Image, dict]:
        if not spec.hints:
            return colorizer.colorize(gray), {}
        from colorize.hints import hints_to_json, simulate_user_hints

        seeded = hint_seed(seed, key)
        hints = simulate_user_hints(real, spec.hints, seed=seeded)
        return colorizer.colorize(gray, hints=hints), {"hint_seed": seeded, "hint_points": json.loads(hints_to_json(hints))}

    return Method(spec.name, make, description=description, colorizer=colorizer)


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
    makers: Mapping[str, "FakeMaker | Method"],
    protocol: Protocol,
    progress: bool = True,
    practice_sources: Sequence[tuple[str, Image.Image]] = (),
) -> StudySummary:
    """Make every stimulus of a study from `sources` (image_key, photo) and store it in one go.

    makers: method name -> `Method` (`load_method`) or a plain fake maker (gray -> fake).
    practice_sources: photos for the practice trials alone; without them `study.split_pools`
    sets some of `sources` aside. A practice photo that is also a test photo (the same name, or
    the same picture) is refused: its feedback would give away test answers. The trial counts
    are clipped, with a warning, when there are fewer images than one participant needs.
    """
    if any(study.name == name for study in store.list_studies()):
        raise SurveyError(f"A study called {quoted(name)} already exists.")  # before the slow part
    if not makers:
        raise SurveyError("A study needs at least one colorization method.")
    if not sources:
        raise SurveyError("A study needs at least one image.")
    methods = {method: Method.of(method, maker) for method, maker in makers.items()}
    reals = _crops(sources, protocol.image_size)
    practice = _crops(practice_sources, protocol.image_size)
    _refuse_overlap(reals, practice)
    catch_keys = [key for key, real in reals.items() if suits_catch(real)]
    if practice:
        practice_keys, test_keys = set(practice), list(reals)
    else:
        chosen, test_keys = split_pools(protocol, image_keys=list(reals), methods=sorted(methods), catch_keys=catch_keys)
        practice_keys = set(chosen)
    catch_keys = [key for key in catch_keys if key not in practice_keys]
    photos = {**practice, **reals}
    shown_with = _shown_with(protocol, methods, photos, test_keys, catch_keys)
    made: dict[tuple[str, str], tuple[Image.Image, dict]] = {}  # fakes made while measuring colour detail
    chroma = _chroma_shapes(methods, photos, shown_with, made) if protocol.equal_chroma_bandwidth else {}
    stimuli: list[StimulusImage] = []
    for key, real in tqdm(photos.items(), desc="Colorizing", unit="image", disable=not progress):
        pool = PRACTICE if key in practice_keys else TEST
        gray = gray_image(real)
        shown, record = _real_as_shown(real, gray, [methods[m] for m in shown_with[key]], chroma, protocol.equal_chroma_bandwidth)
        stimuli.append(StimulusImage(key, REAL, shown, pool, record))
        for method in methods.values():
            fake, made_how = made.pop((method.name, key), None) or method.fake(real, gray, key=key)
            stimuli.append(StimulusImage(key, method.name, fake, pool, made_how))
        if key in catch_keys:
            stimuli.append(StimulusImage(key, CATCH, catch_version(shown), pool, {"catch": "the real photo as shown, its hue turned by 180 degrees"}))
    study_record = {"real_chroma": {method: found for method, (_, found) in chroma.items()}} if chroma else None
    summary = store.create_study(name, protocol, stimuli, record=study_record)
    logger.info(
        "Study '%s': %d images x (real + %s), %s mode.", summary.name, summary.images, ", ".join(summary.methods), summary.mode
    )
    return summary


def _crops(sources: Sequence[tuple[str, Image.Image]], size: int) -> dict[str, Image.Image]:
    crops: dict[str, Image.Image] = {}
    for key, photo in sources:
        if str(key) in crops:
            raise SurveyError(f"Two photos are called {quoted(key)}.")
        crops[str(key)] = square_crop(photo, size)
    return crops


def _refuse_overlap(test: dict[str, Image.Image], practice: dict[str, Image.Image]) -> None:
    """SurveyError when a practice photo is also a test photo, by name or by its pixels."""
    for key in practice:
        if key in test:
            raise SurveyError(f"The practice photo {quoted(key)} is also a test photo; practice and test photos must differ.")
    seen = {hashlib.sha256(image.tobytes()).digest(): key for key, image in test.items()}
    for key, image in practice.items():
        twin = seen.get(hashlib.sha256(image.tobytes()).digest())
        if twin is not None:
            raise SurveyError(f"The practice photo {quoted(key)} is the test photo {quoted(twin)}; practice and test photos must differ.")


def _shown_with(
    protocol: Protocol, methods: Mapping[str, Method], photos: Mapping[str, Image.Image], test_keys: Sequence[str], catch_keys: Sequence[str]
) -> dict[str, list[str]]:
    """The methods each photo's real version appears beside (or among, in single mode): with one
    method per image a test photo's own (`study.image_groups`, as the store will draw them), else all."""
    everyone = sorted(methods)
    shown_with = {key: everyone for key in photos}
    if protocol.one_method_per_image:
        groups = image_groups(protocol, image_keys=test_keys, methods=everyone, catch_keys=catch_keys)
        for condition, keys in groups.items():
            if condition in methods:
                shown_with.update({key: [condition] for key in keys})
    return shown_with


def _chroma_shapes(
    methods: Mapping[str, Method], photos: Mapping[str, Image.Image], shown_with: Mapping[str, list[str]], made: dict
) -> dict[str, tuple[float, dict]]:
    """For each method with a network: how much real photos' colour is softened at its render shape, and how that was found.

    Not at all, or, where the model's colour holds less detail than its render shape allows, the
    softening (`DETAIL_BLURS`) at which real photos' colour detail (`stimuli.chroma_detail`) exceeds
    the fakes' in the share of (up to `DETAIL_PHOTOS` of) the photos it is shown with nearest to
    half: a script comparing colour detail then picks the real photo as often as the fake. Both
    keep the render shape, so both carry the same trace of being brought up from it. The fakes
    made for this are kept in `made` for the study.
    """
    found = {}
    for name, method in methods.items():
        render = method.render_shape(next(iter(photos.values())).size)
        if render is None:
            continue
        keys = sorted(key for key, names in shown_with.items() if name in names)
        random.Random(f"survey-chroma/{name}").shuffle(keys)
        keys = keys[:DETAIL_PHOTOS]
        grays = {key: gray_image(photos[key]) for key in keys}
        fakes = []
        for key in keys:
            made[(name, key)] = method.fake(photos[key], grays[key], key=key)
            fakes.append(chroma_detail(made[(name, key)][0]))
        shares = {}
        for blur in DETAIL_BLURS:
            reals = [chroma_detail(method.real_colour(photos[key], grays[key], blur)) for key in keys]
            shares[blur] = float(np.mean([r > f for r, f in zip(reals, fakes)])) if keys else 0.0
            if shares[blur] <= 0.5:  # more softening only takes more detail away
                break
        blur = min(shares, key=lambda tried: (abs(shares[tried] - 0.5), tried))
        found[name] = (blur, {
            "render_shape": list(render), "detail_blur": blur, "photos_measured": len(keys),
            "real_detail_above_fakes": {f"{b:g}": share for b, share in shares.items()},
        })  # fmt: skip
    return found


def _real_as_shown(
    real: Image.Image, gray: Image.Image, beside: Sequence[Method], chroma: Mapping[str, tuple[float, dict]], equal: bool
) -> tuple[Image.Image, dict]:
    """The real photo as the study shows it, and its record: its colour at the render shape of the
    method it is shown with (the smallest among several; then the most softened), or as photographed."""
    if not equal:
        return real, {"chroma": "full resolution (equal_chroma_bandwidth off)"}
    with_shape = [method for method in beside if method.name in chroma]
    if not with_shape:
        return real, {"chroma": "full resolution (no method renders its colour at a smaller size)"}
    shapes = {method.name: method.render_shape(real.size) for method in with_shape}
    method = min(with_shape, key=lambda m: (shapes[m.name][0] * shapes[m.name][1], -chroma[m.name][0], m.name))
    blur = chroma[method.name][0]
    record = {"chroma": "at a method's colour resolution", "chroma_shape": list(shapes[method.name]), "detail_blur": blur, "as_method": method.name}
    return method.real_colour(real, gray, blur), record


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
    parser.add_argument("--one-method-per-image", action=argparse.BooleanOptionalAction, default=default.one_method_per_image,
                        help="tie each test photo to one method for the whole study (the default, for public studies: "
                             "repeated participations cannot find the real photo as the picture that recurs beside "
                             "changing fakes; methods are then compared on different photos)")  # fmt: skip
    parser.add_argument("--equal-chroma-bandwidth", action=argparse.BooleanOptionalAction, default=default.equal_chroma_bandwidth,
                        help="show real photos with their colour at the resolution of the fakes' (the default; "
                             "--no-equal-chroma-bandwidth keeps their full colour resolution, for a study of resolution too)")  # fmt: skip
    parser.add_argument("--practice-images", type=Path, default=None,
                        help="folder of photos for the practice trials alone (default: some of --images are set aside)")  # fmt: skip
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
            equal_chroma_bandwidth=args.equal_chroma_bandwidth,
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
        practice = load_source_images(find_source_images(args.practice_images)) if args.practice_images else []
        makers = {spec.name: load_method(spec, seed=args.seed) for spec in specs}
        summary = build_study(store, name=args.name, sources=sources, makers=makers, protocol=protocol, practice_sources=practice)
    except SurveyError as error:
        raise SystemExit(f"error: {error}") from None
    print(f"Built study '{summary.name}' with {summary.images} images and methods {', '.join(summary.methods)} in {store!r}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
