"""A participant's way through a study, screen by screen, for any front end (the app's "Real or fake?" tab and its API).

    consent -> instructions -> trial (-> feedback, practice only) -> ... -> done
    closed: no study, no database, or an unknown study

`ParticipantFlow` turns what a browser holds into the next `Screen`; every read and write goes
through `survey.store.Store`, one transaction per screen (`Store.visit`), so the flow itself
keeps nothing between calls. The browser holds two things only:

- its tokens, one per study (`{study: token}`): who it is in each study, so a reload resumes
  and agreeing twice (two tabs, a double click) registers one participant; only well-formed
  entries are read, and only those are sent back (`clean_tokens`);
- the public part of the screen it shows (`Screen.public()`): what to show and the opaque id
  of the trial on screen, never which image is real or which method made a fake.

A trial's images are PNG bytes on the `Screen` (`images`), for the front end to show; they are
not part of `public()`. They are always the trial's own presentation (`TrialView.images`, or
`Visit.feedback_images` with a practice trial's feedback, after the answer), never a stored
stimulus. A trial served again after its exposure window (a reload) comes without images and
with `notice` asking for an answer from memory: the store sends them once. Gradio-free and
torch-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import SurveyError
from .store import Store, TrialView, Visit
from .inputs import parse_id
from .texts import from_memory_text, score_text

# The screens, in the order a participant meets them; "closed" stands in for all when there is no study.
SCREENS = ("closed", "consent", "instructions", "trial", "feedback", "done")
IN_STUDY = ("instructions", "trial", "feedback")  # part-way through: a front end keeps them on the study's page
NO_STUDY = "No study is running at the moment."


@dataclass(frozen=True)
class Screen:
    """What a participant sees now. Which fields are set depends on `kind` (see `public`)."""

    kind: str
    study: str | None = None
    message: str = ""  # closed: why
    text: str = ""  # consent: the consent text; instructions: the instructions
    trial_id: int | None = None  # trial and feedback, from here on
    phase: str = ""  # "practice" | "test" (catch trials look like test trials)
    progress: str = ""  # "Practice 1 / 2", "3 / 20"
    mode: str = ""  # "pair" | "single"
    prompt: str = ""
    choices: tuple[str, ...] = ()
    exposure_ms: int | None = None
    notice: str = ""  # trial: why no images are shown (already shown: answer from memory)
    feedback: str = ""  # feedback only
    correct: bool | None = None
    score: str = ""  # done: the participant's result in a sentence
    images: tuple[bytes, ...] = field(default=(), repr=False)  # trial and feedback; server side only

    def __post_init__(self) -> None:
        if self.kind not in SCREENS:
            raise ValueError(f"Unknown screen '{self.kind}'; one of {', '.join(SCREENS)}.")

    def public(self) -> dict[str, Any]:
        """What the browser receives and sends back: nothing that tells real from fake."""
        if self.kind == "closed":
            return {"screen": "closed", "message": self.message}
        if self.kind in ("consent", "instructions"):
            return {"screen": self.kind, "study": self.study, "text": self.text}
        if self.kind == "done":
            return {"screen": "done", "study": self.study, "score": self.score}
        keys = ("study", "trial_id", "phase", "progress", "mode", "prompt", "exposure_ms")
        public = {"screen": self.kind, **{key: getattr(self, key) for key in keys}, "choices": list(self.choices)}
        if self.notice:
            public["notice"] = self.notice
        if self.kind == "feedback":
            public.update(feedback=self.feedback, correct=self.correct)
        return public


@dataclass(frozen=True)
class Step:
    """A flow call's answer: the browser's tokens afterwards (only the well-formed ones it sent,
    `clean_tokens`, and any new one) and the screen to show."""

    tokens: dict[str, str]
    screen: Screen


# A browser is part-way through a few studies at most; a token is Store's url-safe secret.
MAX_TOKENS = 20
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def clean_tokens(tokens: Any) -> dict[str, str]:
    """The well-formed entries of what a browser sent as its tokens: a study name (1 to 100
    characters) -> a token (1 to 64 url-safe characters), at most MAX_TOKENS of them. Nothing
    else is kept, so nothing else a browser sends is ever sent back."""
    if not isinstance(tokens, Mapping):
        return {}
    clean = {}
    for study, token in tokens.items():
        if isinstance(study, str) and 0 < len(study) <= 100 and isinstance(token, str) and _TOKEN.fullmatch(token):
            clean[study] = token
            if len(clean) == MAX_TOKENS:
                break
    return clean


def token_for(tokens: Any, study: str | None) -> str | None:
    """The browser's token for `study`, if it holds a well-formed one."""
    return clean_tokens(tokens).get(study) if study else None


def trial_screen(study: str, trial: TrialView) -> Screen:
    progress = f"{trial.index} / {trial.total}"
    return Screen(
        "trial",
        study=study,
        trial_id=trial.trial_id,
        phase=trial.phase,
        progress=f"Practice {progress}" if trial.phase == "practice" else progress,
        mode=trial.mode,
        prompt=trial.prompt,
        choices=tuple(trial.choices),
        exposure_ms=trial.exposure_ms,
        notice=from_memory_text(trial.mode) if trial.exposure_over else "",
        images=tuple(trial.images),
    )


def default_study(names: list[str]) -> str | None:
    return "demo" if "demo" in names else (names[-1] if names else None)


class ParticipantFlow:
    """The participant screens of every study in `store`; each step is one `Store.visit`, one transaction.

    `store=None` (the database could not be opened) shows every visitor the closed screen with
    `unavailable` as the reason, so the rest of the app keeps working.
    """

    def __init__(self, store: Store | None, *, unavailable: str | None = None) -> None:
        self.store = store
        self.unavailable = unavailable

    # -- studies ------------------------------------------------------------------------------

    def studies(self) -> list[str]:
        return self.landing(None, {})[0]

    def default_study(self) -> str | None:
        return default_study(self.studies())

    def landing(self, wanted: str | None, tokens: Any) -> tuple[list[str], str | None]:
        """(every study, the one a visitor lands in: the one their link names, else one they are
        part-way through, else the default), in one read. No study when the database is away."""
        if self.store is None:
            return [], None
        try:
            names, unfinished = self.store.landing(clean_tokens(tokens))
        except SurveyError:
            return [], None
        if wanted in names:
            return names, wanted
        return names, next((name for name in names if name in unfinished), default_study(names))

    def pick_study(self, wanted: str | None, tokens: Any) -> str | None:
        """The study a visitor lands in (see `landing`)."""
        return self.landing(wanted, tokens)[1]

    def closed(self, message: str | None = None) -> Screen:
        return Screen("closed", message=message or self.unavailable or NO_STUDY)

    # -- the steps (each one call of a front end, one transaction) -----------------------------------

    def open(self, study: str | None, tokens: Any) -> Step:
        """Where this browser stands in `study` (on page load, and when another study is picked).

        A token the study does not know (a reset database) is dropped, so the participant
        starts afresh; any other problem shows the closed screen with its reason.
        """
        tokens = clean_tokens(tokens)
        if self.store is None or not study:
            return Step(tokens, self.closed())
        try:
            visit = self.store.visit(study, tokens.get(study), action="open")
        except SurveyError as error:
            return Step(tokens, self.closed(str(error)))
        return self._step(tokens, visit)

    def consent(self, study: str | None, tokens: Any, *, client_key: str | None = None) -> Step:
        """The participant agrees: registered and shown the instructions.

        A browser with a valid token for the study keeps it, so agreeing twice registers one
        participant, and a finished one stays finished. `client_key` (the front end passes the
        visitor's address) is counted against the store's limit of starts per client. Raises
        SurveyError.
        """
        study, tokens = self._running(study), clean_tokens(tokens)
        return self._step(tokens, self.store.visit(study, tokens.get(study), action="consent", client_key=client_key))

    def proceed(self, study: str | None, tokens: Any) -> Step:
        """The participant's current trial (after the instructions, or after practice feedback). Raises SurveyError."""
        study, tokens = self._running(study), clean_tokens(tokens)
        if study not in tokens:
            raise SurveyError("Please agree to take part first.")
        return self._step(tokens, self.store.visit(study, tokens[study], action="proceed"))

    def answer(self, study: str | None, tokens: Any, screen: Any, choice: Any) -> Step:
        """Store the answer to the trial on `screen` (the first answer wins); a practice trial gets feedback.

        `screen` is the public screen the browser sent back, `choice` an answer or a button's
        label ("left" | "right", "real" | "fake"). A practice trial's feedback shows its images
        again (the trial's own presentation), now that it is answered. Raises SurveyError.
        """
        study, tokens = self._running(study), clean_tokens(tokens)
        if study not in tokens or not isinstance(screen, Mapping) or screen.get("screen") != "trial":
            raise SurveyError("There is no trial on screen to answer; reload the page to continue.")
        trial_id = parse_id(screen.get("trial_id"))
        choice = choice.strip().lower() if isinstance(choice, str) else choice
        return self._step(tokens, self.store.visit(study, tokens[study], action="answer", trial_id=trial_id, choice=choice))

    # -- helpers ------------------------------------------------------------------------------

    def _running(self, study: str | None) -> str:
        if self.store is None:
            raise SurveyError(self.unavailable or "The study database is not available.")
        if not study:
            raise SurveyError(NO_STUDY)
        return study

    @staticmethod
    def _step(tokens: dict[str, str], visit: Visit) -> Step:
        """The browser's tokens after `visit` (its token for the study, or none) and the screen it shows."""
        kept = {name: token for name, token in tokens.items() if name != visit.study}
        if visit.token is not None:
            kept[visit.study] = visit.token
        return Step(kept, visit_screen(visit))


def visit_screen(visit: Visit) -> Screen:
    """The screen for what `Store.visit` found: consent, instructions, a trial, practice feedback or done."""
    study, protocol, progress = visit.study, visit.protocol, visit.progress
    if visit.token is None or progress is None or progress.phase == "consent":
        return Screen("consent", study=study, text=protocol.consent)
    if visit.answer is not None and visit.answer.feedback is not None:
        return Screen(
            "feedback",
            study=study,
            trial_id=visit.answer.trial_id,
            phase="practice",
            # answered in order, so this is practice trial number `practice_done`
            progress=f"Practice {progress.practice_done} / {progress.practice_total}",
            mode=protocol.mode,
            prompt=protocol.prompt,
            choices=protocol.choices,
            exposure_ms=protocol.exposure_ms,
            feedback=visit.answer.feedback,
            correct=visit.answer.correct,
            images=visit.feedback_images,
        )
    if visit.trial is not None:
        return trial_screen(study, visit.trial)
    if progress.finished:
        score = visit.score
        return Screen("done", study=study, score=score_text(protocol.mode, score.correct, score.answered))
    return Screen("instructions", study=study, text=protocol.instructions)
