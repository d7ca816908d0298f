"""What participants read, computed from the study's `Protocol`: consent, instructions, the end screen.

Every number in these texts comes from the protocol (trial counts, exposure, an estimated
duration), with singular and plural right, so a study of 1 practice trial and a single-image
study read as naturally as the default one. Catch trials are counted as test trials everywhere a
participant reads a count: they cannot tell them apart, so "20 test trials" in the instructions
and "15 of 20 test trials" on the end screen are the same 20.

Pure functions of the protocol (duck-typed: anything with its fields), no I/O; `study.Protocol`
uses them for its `consent` and `instructions`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .study import Protocol

__all__ = [
    "consent_text",
    "estimated_minutes",
    "from_memory_text",
    "instructions_text",
    "plural",
    "score_text",
]

# What the duration estimate assumes (milliseconds): round, deliberately not optimistic figures, so
# the consent text does not promise less time than most people need.
TYPICAL_ANSWER_MS = 2_000  # deciding and clicking, after the images are hidden
UNLIMITED_VIEW_MS = 3_000  # looking, when the images stay on screen (no exposure limit)
NEXT_TRIAL_MS = 500  # the next images arriving and decoding
FEEDBACK_MS = 3_000  # reading a practice trial's feedback and clicking Next
READING_MS = 45_000  # the consent text and the instructions (about 170 words), the thank-you page

CONSENT_TEMPLATE = (
    "This is a short study about how people see colour photos. Some of the photos you will see are "
    "real and some were coloured by a computer from a black-and-white version. It takes about {duration}. "
    "We store only your answers and response times under a random code: no name, no e-mail, "
    "no IP address. Taking part is voluntary and you can stop at any time by closing the page. By "
    "continuing you agree that your anonymous answers may be analysed and published for research."
)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """'1 trial', '3 trials', '0 trials' (plural_form for irregular words)."""
    return f"{count} {singular if count == 1 else (plural_form or singular + 's')}"


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g} second{'' if ms == 1000 else 's'}"


def estimated_minutes(protocol: "Protocol") -> int:
    """Whole minutes a participant typically needs, rounded up: reading, then every trial.

    A trial takes its exposure (or UNLIMITED_VIEW_MS without one) + TYPICAL_ANSWER_MS +
    NEXT_TRIAL_MS; a practice trial FEEDBACK_MS more; READING_MS once.
    """
    view = protocol.exposure_ms if protocol.exposure_ms else UNLIMITED_VIEW_MS
    trial = view + TYPICAL_ANSWER_MS + NEXT_TRIAL_MS
    total = READING_MS + protocol.test_trials * trial + protocol.practice_trials * (trial + FEEDBACK_MS)
    return max(1, math.ceil(total / 60_000))


def consent_text(protocol: "Protocol") -> str:
    """The study's own consent text, or the default one with the estimated duration filled in."""
    if protocol.consent_text:
        return protocol.consent_text
    return CONSENT_TEMPLATE.format(duration=plural(estimated_minutes(protocol), "minute"))


def instructions_text(protocol: "Protocol") -> str:
    """The study's own instructions, or ones written from its mode, exposure and trial counts."""
    if protocol.instructions_text:
        return protocol.instructions_text
    pair = protocol.mode == "pair"
    if pair:
        task = (
            "you will see two photos of the same scene side by side. One is a real photo, the other was "
            "coloured by a computer. Click the one you think is the real photo."
        )
    else:
        task = "you will see one photo at a time. Decide whether it is a real photo or one coloured by a computer."
    if protocol.exposure_ms:
        photos, disappear, they = ("The photos", "disappear", "they are") if pair else ("The photo", "disappears", "it is")
        shown = (
            f"{photos} {disappear} after {_seconds(protocol.exposure_ms)}; you can answer after {they} gone, "
            "but go with your first impression."
        )
    else:
        shown = "Go with your first impression."
    tests = plural(protocol.test_trials, "test trial")
    practice = protocol.practice_trials
    if practice == 0:
        order = f"There {'is' if protocol.test_trials == 1 else 'are'} {tests}, without feedback."
    else:
        first = "The first trial is" if practice == 1 else f"The first {practice} trials are"
        order = (
            f"{first} practice and you will be told whether you were right. "
            f"Then {'comes' if protocol.test_trials == 1 else 'come'} {tests}, without feedback."
        )
    return f"In each trial {task} {shown} {order}"


def score_text(mode: str, correct: int, answered: int) -> str:
    """The end screen's result line: how many of the test trials (catch trials included) were right."""
    if not answered:
        return ""
    share = f"{correct} of {plural(answered, 'test trial')} ({100 * correct / answered:.0f}%)"
    if mode == "pair":
        return f"You picked the real photo in {share}."
    return f"You were right in {share}."


def from_memory_text(mode: str) -> str:
    """What a participant reads on a trial whose images were already shown (a reload after the exposure)."""
    photos = "These photos were" if mode == "pair" else "This photo was"
    return f"{photos} already shown and {'are' if mode == 'pair' else 'is'} not shown again: please answer from memory."
