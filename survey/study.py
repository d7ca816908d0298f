"""What a study asks and in which order: the `Protocol` and each participant's trial plan.

Pure logic (no database, no images), so the design rules are easy to read and to test:

- Practice trials come first and give feedback; then test trials, with catch trials (an obvious
  fake: the real photo with its hue turned by 180 degrees) mixed in at `catch_rate`.
- No source image is shown twice to one participant, across practice and test.
- Pair mode: the real photo is on the left in exactly half (+-1) of a participant's trials.
  Single mode: exactly half (+-1) of the non-catch stimuli are real photos.
- Methods are rotated Latin-square style: a participant in rotation slot r gets condition
  (r + j) mod K for their j-th test trial, so each participant sees each method equally often
  (+-1) and, with the K slots filled evenly, each method gets the same number of trials. The
  store gives the slot when the participant reaches the test (see `Store.next_trial`), so people
  who leave before it take no slot; practice trials rotate on the participant number.
- Which image goes with which trial and the order are random per participant (seeded from the
  study's seed and the participant number, so a plan can be reproduced).
- Practice images are a pool of their own (`split_pools`, stored with the study): their feedback
  says which side was real, so they never come back in a test trial of any participation.
- `one_method_per_image` (the default): each test image is tied to one condition for the whole
  study (one fake method; in single mode, or the real photo), and a share of the images (the catch
  rate's) serves only catch trials. Every image then appears beside one partner only, across all
  participations, so counting partners tells nothing (see `image_groups`); the price is that
  methods are compared on different images. Without it every image is shown with every method
  over the participations, and the real photo is the picture that recurs beside changing fakes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

from . import SurveyError
from .inputs import quoted
from .texts import consent_text, instructions_text

logger = logging.getLogger(__name__)

MODES = ("pair", "single")
PHASES = ("practice", "test", "catch")
REAL = "real"  # the method name of real photos
CATCH = "catch"  # the method name of the hue-rotated catch stimuli
RESERVED_METHODS = frozenset({REAL, CATCH})
CHOICES = {"pair": ("left", "right"), "single": ("real", "fake")}
PROMPTS = {"pair": "Which one is the real photo?", "single": "Is this photo real or fake?"}

RESHOWN_TRIALS = ("flag", "exclude")  # what the report does with trials re-shown after their exposure
# How a stored study that predates a Protocol field was run: such studies showed every method
# with every image and real photos' colour at full resolution, and their plans must not change.
LEGACY_DEFAULTS = {"one_method_per_image": False, "equal_chroma_bandwidth": False}


@dataclass(frozen=True)
class Protocol:
    """How a study is run; stored with the study so every participant gets the same one.

    mode: "pair" (two images side by side, pick the real one: 2AFC) or "single" (real or fake?).
    exposure_ms: how long the images stay visible; the answer stays open after that. None = no limit.
    practice_trials: trials with feedback before the test (not scored).
    test_trials: scored trials per participant, catch trials included.
    catch_rate: share of test trials that are catch trials (obvious fakes, to spot inattention).
    image_size: side in pixels of the square stimuli.
    seed: seeds each participant's plan (with the participant's number).
    consent_text / instructions_text: shown before the first trial; None = written from this
        protocol (`survey.texts`: counts, exposure and an estimated duration).
    max_response_ms: answers slower than this are flagged `slow` when stored and counted in the
        report's quality control (a participant who looked away); None = no limit.
    reshown_trials: "flag" or "exclude": what the report does with trials whose images were
        served again after their exposure window (a reload; `Store.mark_reshown`).
    one_method_per_image: tie each test image to one condition for the whole study (see the
        module): a participant who takes the study many times, or pools answers with others,
        cannot find the real photo by which image turns up beside several different fakes.
    equal_chroma_bandwidth: real photos are shown with their colour at the resolution of the
        fakes' (`survey.build`: taken down to the model's render size and back up as the model's
        colour is), so how finely the colour was resolved does not tell them apart. False shows
        real photos' colour at full resolution, for a study that measures resolution too.

    Studies stored before a field existed read it as it was then (`LEGACY_DEFAULTS`).
    """

    mode: str = "pair"
    exposure_ms: int | None = 1000
    practice_trials: int = 3
    test_trials: int = 20
    catch_rate: float = 0.1
    image_size: int = 256
    seed: int = 0
    consent_text: str | None = None
    instructions_text: str | None = None
    max_response_ms: int | None = 30_000
    reshown_trials: str = "flag"
    one_method_per_image: bool = True
    equal_chroma_bandwidth: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SurveyError(f"The mode must be 'pair' or 'single', not {quoted(self.mode)}.")
        if self.exposure_ms is not None and (not isinstance(self.exposure_ms, int) or self.exposure_ms <= 0):
            raise SurveyError("The exposure time must be a positive number of milliseconds (or none for no limit).")
        if not isinstance(self.practice_trials, int) or self.practice_trials < 0:
            raise SurveyError("The number of practice trials must be zero or more.")
        if not isinstance(self.test_trials, int) or self.test_trials < 1:
            raise SurveyError("There must be at least one test trial.")
        if not 0.0 <= float(self.catch_rate) < 0.5:
            raise SurveyError("The catch rate must be at least 0 and below 0.5.")
        if not isinstance(self.image_size, int) or not 16 <= self.image_size <= 2048:
            raise SurveyError("The image size must be between 16 and 2048 pixels.")
        if self.max_response_ms is not None and (not isinstance(self.max_response_ms, int) or self.max_response_ms <= 0):
            raise SurveyError("The slow-answer limit must be a positive number of milliseconds (or none for no limit).")
        if self.reshown_trials not in RESHOWN_TRIALS:
            raise SurveyError(f"Re-shown trials are to be 'flag' or 'exclude', not {quoted(self.reshown_trials)}.")
        for name in ("one_method_per_image", "equal_chroma_bandwidth"):
            if not isinstance(getattr(self, name), bool):
                raise SurveyError(f"{name} is true or false.")

    @property
    def prompt(self) -> str:
        return PROMPTS[self.mode]

    @property
    def choices(self) -> tuple[str, ...]:
        return CHOICES[self.mode]

    @property
    def catch_trials(self) -> int:
        """How many of the test trials are catch trials (rounded half up; never all of them)."""
        wanted = int(self.test_trials * float(self.catch_rate) + 0.5)
        return min(wanted, self.test_trials // 2)

    @property
    def images_needed(self) -> int:
        """Distinct source images one participant sees (each trial uses a new one)."""
        return self.practice_trials + self.test_trials

    @property
    def consent(self) -> str:
        """The consent text participants read: `consent_text`, or the default with this study's duration."""
        return consent_text(self)

    @property
    def instructions(self) -> str:
        """The instructions participants read: `instructions_text`, or ones written from this protocol."""
        return instructions_text(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Protocol":
        known = {f.name for f in dataclasses.fields(cls)}
        # Ignore keys this version does not know, so an older program can read a newer study; a
        # key it lacks means the study was run as before that field existed.
        return cls(**{**LEGACY_DEFAULTS, **{k: v for k, v in data.items() if k in known}})

    def fitted(self, n_images: int) -> tuple["Protocol", str | None]:
        """This protocol clipped to what `n_images` source images allow, and a warning if it was clipped.

        Test trials are kept before practice trials, but one practice trial survives when asked for
        and there are at least two images (the feedback is how people learn the task).
        """
        if n_images < 1:
            raise SurveyError("The study has no images.")
        practice, test = self.practice_trials, self.test_trials
        if practice + test <= n_images:
            return self, None
        practice = min(practice, max(n_images - test, 1 if n_images >= 2 else 0))
        test = min(test, n_images - practice)
        message = (
            f"Only {n_images} images are available, so each participant gets {practice} practice and "
            f"{test} test trials instead of {self.practice_trials} and {self.test_trials}."
        )
        return dataclasses.replace(self, practice_trials=practice, test_trials=test), message


@dataclass(frozen=True)
class PlannedTrial:
    """One trial of a participant's plan, before it is stored.

    method: the fake's method in pair mode; in single mode the shown stimulus's method ("real" for
    a real photo). Catch trials have method "catch".
    real_side: "left" | "right" in pair mode, None in single mode.
    """

    position: int
    phase: str
    image_key: str
    method: str
    real_side: str | None


def participant_rng(protocol: Protocol, ordinal: int) -> random.Random:
    # A string seed is hashed deterministically (unlike hash()), so plans are reproducible.
    return random.Random(f"survey-plan/{protocol.seed}/{ordinal}")


def _balanced_sides(n: int, rng: random.Random, *, odd_extra: str | None = None) -> list[str]:
    """n sides with left and right differing by at most one, shuffled; `odd_extra` picks the extra one."""
    extra = odd_extra or rng.choice(("left", "right"))
    sides = ["left", "right"] * (n // 2) + ([extra] if n % 2 else [])
    rng.shuffle(sides)
    return sides


def _rotated_conditions(conditions: Sequence[str], n: int, offset: int) -> list[str]:
    return [conditions[(offset + j) % len(conditions)] for j in range(n)]


def _conditions(mode: str, methods: Sequence[str]) -> list[str]:
    # Single mode shows real photos half the time, interleaved so the rotation keeps that exact.
    methods = sorted(methods)
    return list(methods) if mode == "pair" else [c for m in methods for c in (m, REAL)]


def rotation_slots(mode: str, methods: Sequence[str]) -> int:
    """How many rotation slots (Latin-square offsets) a study has: one per condition."""
    return len(_conditions(mode, methods))


def image_groups(
    protocol: Protocol, *, image_keys: Sequence[str], methods: Sequence[str], catch_keys: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """With `one_method_per_image`: the source images of each condition, fixed for the whole study.

    Conditions are the fake methods (and "real" in single mode, with half the images); CATCH holds
    the images kept for catch trials (the catch rate's share of the images, among those with a
    catch stimulus; none when the catch rate is 0). Drawn from the study's seed alone, so every
    participant sees an image in the same condition.
    """
    rng = random.Random(f"survey-images/{protocol.seed}")
    keys = sorted(image_keys)
    rng.shuffle(keys)
    catchable = set(keys if catch_keys is None else catch_keys)
    wanted = math.ceil(len(keys) * float(protocol.catch_rate)) if protocol.catch_rate > 0 else 0
    catch_images = [key for key in keys if key in catchable][:wanted]
    rest = [key for key in keys if key not in set(catch_images)]
    conditions = _conditions(protocol.mode, methods)  # single mode lists "real" once per method: half the images
    groups: dict[str, list[str]] = {condition: [] for condition in conditions}
    for index, key in enumerate(rest):
        groups[conditions[index % len(conditions)]].append(key)
    groups[CATCH] = catch_images
    return groups


def fit_protocol(
    protocol: Protocol,
    *,
    image_keys: Sequence[str],
    methods: Sequence[str],
    catch_keys: Sequence[str] | None = None,
    practice_keys: Sequence[str] | None = None,
) -> tuple[Protocol, str | None]:
    """`protocol` clipped to what the study's images allow, and a warning if it was clipped.

    practice_keys: the study's practice pool (`split_pools`); practice trials then come from it
    alone and test trials from the other images. None: a study stored before practice pools,
    where any image serves either. Without `one_method_per_image` the test needs one image per
    trial. With it, every participant must find enough images in each condition's group for
    any rotation slot; test trials are kept before practice trials.
    """
    if practice_keys is not None:
        pool = set(practice_keys)
        test_keys = [key for key in image_keys if key not in pool]
        if not test_keys:
            raise SurveyError("Every image of the study is a practice image; test trials need images of their own.")
        practice = min(protocol.practice_trials, len(pool & set(image_keys)))
        tested, _ = _fitted_pool(dataclasses.replace(protocol, practice_trials=0), test_keys, methods, catch_keys)
        test = tested.test_trials
    else:
        fitted, _ = _fitted_pool(protocol, image_keys, methods, catch_keys)
        practice, test = fitted.practice_trials, fitted.test_trials
    if (practice, test) == (protocol.practice_trials, protocol.test_trials):
        return protocol, None
    design = " for one method per image" if protocol.one_method_per_image else ""
    message = (
        f"Only {len(image_keys)} images are available{design}, so each participant gets {practice} "
        f"practice and {test} test trials instead of {protocol.practice_trials} and {protocol.test_trials}."
    )
    return dataclasses.replace(protocol, practice_trials=practice, test_trials=test), message


def _fitted_pool(
    protocol: Protocol, image_keys: Sequence[str], methods: Sequence[str], catch_keys: Sequence[str] | None
) -> tuple[Protocol, str | None]:
    """`protocol` clipped for one pool of images serving its practice and test trials alike."""
    if not protocol.one_method_per_image:
        return protocol.fitted(len(image_keys))
    groups = image_groups(protocol, image_keys=image_keys, methods=methods, catch_keys=catch_keys)
    conditions = _conditions(protocol.mode, methods)

    def fits(practice: int, test: int) -> bool:
        catch = min(dataclasses.replace(protocol, test_trials=test).catch_trials, len(groups[CATCH]))
        for condition in set(conditions):
            need = sum(
                max(_rotated_conditions(conditions, n, offset).count(condition) for offset in range(len(conditions)))
                for n in (practice, test - catch)
            )
            if need > len(groups[condition]):
                return False
        return True

    practice, test = protocol.practice_trials, protocol.test_trials
    while not fits(practice, test) and practice > min(1, protocol.practice_trials):
        practice -= 1
    while not fits(practice, test) and test > 1:
        test -= 1
    if not fits(practice, test):
        practice = 0
    if not fits(practice, test):
        raise SurveyError(
            f"{len(image_keys)} images are too few to give each of {len(set(conditions))} conditions images of its own."
        )
    return dataclasses.replace(protocol, practice_trials=practice, test_trials=test), None


def split_pools(
    protocol: Protocol, *, image_keys: Sequence[str], methods: Sequence[str], catch_keys: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """(practice pool, test pool) of a new study: `protocol.practice_trials` images set aside for
    practice (drawn from the study's seed), fewer only where the test would otherwise lose trials,
    but one whenever practice is asked for and there are two images or more."""
    keys = sorted(image_keys)
    random.Random(f"survey-practice/{protocol.seed}").shuffle(keys)
    test_only = dataclasses.replace(protocol, practice_trials=0)

    def test_trials(pool: list[str]) -> int:
        try:
            return _fitted_pool(test_only, pool, methods, catch_keys)[0].test_trials
        except SurveyError:  # too few images for a group of their own per condition
            return 0

    count = min(protocol.practice_trials, max(0, len(keys) - 1))
    full = test_trials(keys)
    while count > 1 and test_trials(keys[count:]) < full:
        count -= 1
    return sorted(keys[:count]), sorted(keys[count:])


def _drawn_images(
    protocol: Protocol, rng: random.Random, conditions: list[str], image_keys: Sequence[str], catch_keys: Sequence[str] | None,
    *, ordinal: int, rotation: int,
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(practice, test) as (phase, image, condition): any image for any condition, each at most once."""
    keys = sorted(image_keys)
    rng.shuffle(keys)
    catchable = set(keys if catch_keys is None else catch_keys)
    n_catch = min(protocol.catch_trials, len(catchable & set(keys)))
    # Catch images first (among the catchable), so the remaining images serve the other trials.
    catch_images = [k for k in keys if k in catchable][:n_catch]
    rest = [k for k in keys if k not in set(catch_images)]
    practice_images = rest[: protocol.practice_trials]
    test_images = rest[protocol.practice_trials : protocol.practice_trials + protocol.test_trials - n_catch]
    practice = [("practice", key, c) for key, c in zip(practice_images, _rotated_conditions(conditions, len(practice_images), ordinal))]
    test = [("test", key, c) for key, c in zip(test_images, _rotated_conditions(conditions, len(test_images), rotation))]
    return practice, test + [("catch", key, CATCH) for key in catch_images]


def _grouped_images(
    protocol: Protocol, rng: random.Random, groups: dict[str, list[str]], conditions: list[str], *, ordinal: int, rotation: int
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(practice, test) as (phase, image, condition), each image from its condition's group (`image_groups`)."""
    pools = {condition: rng.sample(keys, len(keys)) for condition, keys in sorted(groups.items())}
    n_catch = min(protocol.catch_trials, len(pools[CATCH]))
    practice = [("practice", pools[c].pop(), c) for c in _rotated_conditions(conditions, protocol.practice_trials, ordinal)]
    test = [("test", pools[c].pop(), c) for c in _rotated_conditions(conditions, protocol.test_trials - n_catch, rotation)]
    return practice, test + [("catch", key, CATCH) for key in pools[CATCH][:n_catch]]


def plan_trials(
    protocol: Protocol,
    *,
    image_keys: Sequence[str],
    methods: Sequence[str],
    ordinal: int,
    catch_keys: Sequence[str] | None = None,
    rotation: int | None = None,
    practice_keys: Sequence[str] | None = None,
) -> list[PlannedTrial]:
    """The trials of participant number `ordinal` (0, 1, 2, ... in order of arrival).

    image_keys: the study's source images; methods: its fake methods (any order; sorted here so
    the rotation does not depend on database order); catch_keys: images that have a catch
    stimulus (default: all); practice_keys: the practice pool (`split_pools`; None for a study
    stored before pools, where any image serves either). rotation: the test trials' rotation
    slot (default: `ordinal`); it changes only which method each test trial shows, so plans for
    one `ordinal` with different slots share their practice trials, and their test images unless
    `one_method_per_image` ties images to methods. Counts are clipped, with a logged warning,
    when images run short.
    """
    if not methods:
        raise SurveyError("The study has no colorization methods.")
    if set(methods) & RESERVED_METHODS:
        raise SurveyError("'real' and 'catch' cannot be used as method names.")
    protocol, warning = fit_protocol(protocol, image_keys=image_keys, methods=methods, catch_keys=catch_keys, practice_keys=practice_keys)
    if warning:
        logger.warning(warning)
    rng = participant_rng(protocol, ordinal)
    conditions = _conditions(protocol.mode, methods)
    rotation = ordinal if rotation is None else rotation
    test_protocol, test_keys = protocol, image_keys
    if practice_keys is not None:
        pool = sorted(set(practice_keys) & set(image_keys))
        rng.shuffle(pool)
        drawn = pool[: protocol.practice_trials]
        practice = [("practice", key, c) for key, c in zip(drawn, _rotated_conditions(conditions, len(drawn), ordinal))]
        test_protocol = dataclasses.replace(protocol, practice_trials=0)
        test_keys = [key for key in image_keys if key not in set(practice_keys)]
    if test_protocol.one_method_per_image:
        groups = image_groups(test_protocol, image_keys=test_keys, methods=methods, catch_keys=catch_keys)
        shared, test = _grouped_images(test_protocol, rng, groups, conditions, ordinal=ordinal, rotation=rotation)
    else:
        shared, test = _drawn_images(test_protocol, rng, conditions, test_keys, catch_keys, ordinal=ordinal, rotation=rotation)
    if practice_keys is None:
        practice = shared  # the one pool serves both phases
    rng.shuffle(practice)
    rng.shuffle(test)

    if protocol.mode == "pair":
        practice_sides = _balanced_sides(len(practice), rng)
        # When both phases are odd, give the test phase the other extra so the total stays within one.
        opposite = None
        if len(practice) % 2 and len(test) % 2:
            opposite = "right" if practice_sides.count("left") > practice_sides.count("right") else "left"
        sides: list[str | None] = practice_sides + _balanced_sides(len(test), rng, odd_extra=opposite)
    else:
        sides = [None] * (len(practice) + len(test))

    return [
        PlannedTrial(position=i, phase=phase, image_key=key, method=method, real_side=side)
        for i, ((phase, key, method), side) in enumerate(zip(practice + test, sides))
    ]


def is_correct(mode: str, choice: str, *, real_side: str | None, stimulus_is_real: bool | None) -> bool:
    """Whether `choice` is right: pair = picked the real side; single = judged real iff it is real."""
    if mode == "pair":
        return choice == real_side
    return (choice == "real") == bool(stimulus_is_real)


def practice_feedback(mode: str, correct: bool, *, real_side: str | None, stimulus_is_real: bool | None) -> str:
    """The sentence a participant reads after a practice answer."""
    lead = "Correct!" if correct else "Not quite."
    if mode == "pair":
        return f"{lead} The real photo was on the {real_side}."
    return f"{lead} This photo was {'real' if stimulus_is_real else 'coloured by a computer'}."
