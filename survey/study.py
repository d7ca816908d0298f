"""What a study asks and in which order: the `Protocol` and each participant's trial plan.

Pure logic (no database, no images), so the design rules are easy to read and to test:

- Practice trials come first and give feedback; then test trials, with catch trials (an obvious
  fake: the real photo with its hue turned by 180 degrees) mixed in at `catch_rate`.
- No source image is shown twice to one participant, across practice and test.
- Pair mode: the real photo is on the left in exactly half (+-1) of a participant's trials.
  Single mode: exactly half (+-1) of the non-catch stimuli are real photos.
- Methods are rotated Latin-square style: participant number p gets condition (p + j) mod K for
  their j-th trial, so each participant sees each method equally often (+-1) and, over
  participants, each method gets the same number of trials.
- Which image goes with which trial and the order are random per participant (seeded from the
  study's seed and the participant number, so a plan can be reproduced).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass
from typing import Any, Sequence

from . import SurveyError

logger = logging.getLogger(__name__)

MODES = ("pair", "single")
PHASES = ("practice", "test", "catch")
REAL = "real"  # the method name of real photos
CATCH = "catch"  # the method name of the hue-rotated catch stimuli
RESERVED_METHODS = frozenset({REAL, CATCH})
CHOICES = {"pair": ("left", "right"), "single": ("real", "fake")}
PROMPTS = {"pair": "Which one is the real photo?", "single": "Is this photo real or fake?"}

DEFAULT_CONSENT = (
    "This is a short study about how people see colour photos. Some of the photos you will see are "
    "real and some were coloured by a computer from a black-and-white version. It takes about five "
    "minutes. We store only your answers and response times under a random code: no name, no e-mail, "
    "no IP address. Taking part is voluntary and you can stop at any time by closing the page. By "
    "continuing you agree that your anonymous answers may be analysed and published for research."
)


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
    consent_text / instructions_text: shown before the first trial; None = a sensible default.
    """

    mode: str = "pair"
    exposure_ms: int | None = 1000
    practice_trials: int = 3
    test_trials: int = 20
    catch_rate: float = 0.1
    image_size: int = 256
    seed: int = 0
    consent_text: str = DEFAULT_CONSENT
    instructions_text: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SurveyError(f"The mode must be 'pair' or 'single', not '{self.mode}'.")
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
    def instructions(self) -> str:
        if self.instructions_text:
            return self.instructions_text
        if self.mode == "pair":
            task = "you will see two photos of the same scene side by side. One is a real photo, the other was coloured by a computer. Click the one you think is the real photo."
        else:
            task = "you will see one photo at a time. Decide whether it is a real photo or one coloured by a computer."
        shown = (
            f"The photos disappear after {self.exposure_ms / 1000:g} second{'s' if self.exposure_ms != 1000 else ''}; "
            "you can answer after they are gone, but go with your first impression."
            if self.exposure_ms
            else "Go with your first impression."
        )
        practice = (
            f"The first {self.practice_trials} trial{'s are' if self.practice_trials != 1 else ' is'} practice and you will be told whether you were right. "
            if self.practice_trials
            else ""
        )
        return (
            f"In each trial {task} {shown} {practice}"
            f"Then come {self.test_trials} trials without feedback."
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Protocol":
        known = {f.name for f in dataclasses.fields(cls)}
        # Ignore keys this version does not know, so an older program can read a newer study.
        return cls(**{k: v for k, v in data.items() if k in known})

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


def plan_trials(
    protocol: Protocol,
    *,
    image_keys: Sequence[str],
    methods: Sequence[str],
    ordinal: int,
    catch_keys: Sequence[str] | None = None,
) -> list[PlannedTrial]:
    """The trials of participant number `ordinal` (0, 1, 2, ... in order of arrival).

    image_keys: the study's source images; methods: its fake methods (any order; sorted here so
    the rotation does not depend on database order); catch_keys: images that have a catch
    stimulus (default: all). Counts are clipped, with a logged warning, when images run short.
    """
    if not methods:
        raise SurveyError("The study has no colorization methods.")
    if set(methods) & RESERVED_METHODS:
        raise SurveyError("'real' and 'catch' cannot be used as method names.")
    protocol, warning = protocol.fitted(len(image_keys))
    if warning:
        logger.warning(warning)
    rng = participant_rng(protocol, ordinal)
    methods = sorted(methods)
    # Single mode shows real photos half the time, interleaved so the rotation keeps that exact.
    conditions = methods if protocol.mode == "pair" else [c for m in methods for c in (m, REAL)]

    keys = sorted(image_keys)
    rng.shuffle(keys)
    catchable = set(keys if catch_keys is None else catch_keys)
    n_catch = min(protocol.catch_trials, len(catchable & set(keys)))
    # Catch images first (among the catchable), so the remaining images serve the other trials.
    catch_images = [k for k in keys if k in catchable][:n_catch]
    rest = [k for k in keys if k not in set(catch_images)]
    practice_images = rest[: protocol.practice_trials]
    test_images = rest[protocol.practice_trials : protocol.practice_trials + protocol.test_trials - n_catch]

    practice = [
        ("practice", key, method) for key, method in zip(practice_images, _rotated_conditions(conditions, len(practice_images), ordinal))
    ]
    test = [("test", key, method) for key, method in zip(test_images, _rotated_conditions(conditions, len(test_images), ordinal))]
    test += [("catch", key, CATCH) for key in catch_images]
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
