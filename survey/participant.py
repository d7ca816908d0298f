"""A participant's way through a study, screen by screen, for any front end (the app's "Real or fake?" tab and its API).

    consent -> instructions -> trial (-> feedback, practice only) -> ... -> done
    closed: no study, no database, or an unknown study

`ParticipantFlow` turns what a browser holds into the next `Screen`; every read and write goes
through `survey.store.Store`, so the flow itself keeps nothing between calls. The browser
holds two things only:

- its tokens, one per study (`{study: token}`): who it is in each study, so a reload resumes
  and agreeing twice (two tabs, a double click) registers one participant;
- the public part of the screen it shows (`Screen.public()`): what to show and the opaque id
  of the trial on screen, never which image is real or which method made a fake.

A trial's images are PNG bytes on the `Screen` (`images`), for the front end to show; they are
not part of `public()`. They are always the trial's own presentation (`TrialView.images`, or
`Store.trial_images` with a practice trial's feedback, after the answer), never a stored
stimulus. A trial served again after its exposure window (a reload) comes without images and
with `notice` asking for an answer from memory: the store sends them once. Gradio-free and
torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from . import SurveyError
from .store import Store, TrialView
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
    """A flow call's answer: the browser's tokens afterwards (None: unchanged) and the screen to show."""

    tokens: dict[str, str] | None
    screen: Screen


def token_for(tokens: Any, study: str | None) -> str | None:
    """The browser's token for `study`, if it holds a well-formed one."""
    if isinstance(tokens, Mapping) and study and isinstance(tokens.get(study), str):
        return tokens[study]
    return None


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


class ParticipantFlow:
    """The participant screens of every study in `store`.

    `store=None` (the database could not be opened) shows every visitor the closed screen with
    `unavailable` as the reason, so the rest of the app keeps working.
    """

    def __init__(self, store: Store | None, *, unavailable: str | None = None) -> None:
        self.store = store
        self.unavailable = unavailable

    # -- studies ------------------------------------------------------------------------------

    def studies(self) -> list[str]:
        return [] if self.store is None else [study.name for study in self.store.list_studies()]

    def default_study(self) -> str | None:
        names = self.studies()
        return "demo" if "demo" in names else (names[-1] if names else None)

    def pick_study(self, wanted: str | None, tokens: Any) -> str | None:
        """The study a visitor lands in: the one their link names, else one they are part-way through, else the default."""
        names = self.studies()
        if wanted in names:
            return wanted
        return next((name for name in names if self._unfinished(tokens, name)), self.default_study())

    def closed(self, message: str | None = None) -> Screen:
        return Screen("closed", message=message or self.unavailable or NO_STUDY)

    # -- the steps (each one call of a front end) ------------------------------------------------

    def open(self, study: str | None, tokens: Any) -> Step:
        """Where this browser stands in `study` (on page load, and when another study is picked).

        A token the database does not know (a reset database) is dropped, so the participant
        starts afresh; any other problem shows the closed screen with its reason.
        """
        if self.store is None or not study:
            return Step(None, self.closed())
        token = token_for(tokens, study)
        kept = None
        try:
            if token is not None and not self._known(token):
                token, kept = None, {name: value for name, value in tokens.items() if name != study}
            return Step(kept, self._where(study, token))
        except SurveyError as error:
            return Step(kept, self.closed(str(error)))

    def consent(self, study: str | None, tokens: Any, *, client_key: str | None = None) -> Step:
        """The participant agrees: registered and shown the instructions.

        A browser with a valid token for the study keeps it, so agreeing twice registers one
        participant, and a finished one stays finished. `client_key` (the front end passes the
        visitor's address) is counted against the store's limit of starts per client. Raises
        SurveyError.
        """
        study = self._running(study)
        tokens = dict(tokens) if isinstance(tokens, Mapping) else {}
        token = token_for(tokens, study)
        if token is None or not self._known(token):
            token = tokens[study] = self.store.start_participant(study, client_key=client_key)
        self.store.consent(token)
        return Step(tokens, self._where(study, token))

    def proceed(self, study: str | None, tokens: Any) -> Step:
        """The participant's current trial (after the instructions, or after practice feedback). Raises SurveyError."""
        study = self._running(study)
        token = token_for(tokens, study)
        if token is None:
            raise SurveyError("Please agree to take part first.")
        return Step(None, self._current(study, token))

    def answer(self, study: str | None, tokens: Any, screen: Any, choice: Any) -> Step:
        """Store the answer to the trial on `screen` (the first answer wins); a practice trial gets feedback.

        `screen` is the public screen the browser sent back, `choice` an answer or a button's
        label ("left" | "right", "real" | "fake"). A practice trial's feedback shows its images
        again (`Store.trial_images`: the trial's own presentation), now that it is answered.
        Raises SurveyError.
        """
        study = self._running(study)
        token = token_for(tokens, study)
        if token is None or not isinstance(screen, Mapping) or screen.get("screen") != "trial":
            raise SurveyError("There is no trial on screen to answer; reload the page to continue.")
        trial_id = parse_id(screen.get("trial_id"))
        result = self.store.answer(token, trial_id, choice.strip().lower() if isinstance(choice, str) else choice)
        if result.feedback is None:
            return Step(None, self._current(study, token))
        # Written from the store, not from what the browser sent: only practice trials get feedback,
        # and they are answered in order, so this is practice trial number `practice_done`.
        protocol, progress = self.store.get_protocol(study), self.store.progress(token)
        return Step(
            None,
            Screen(
                "feedback",
                study=study,
                trial_id=trial_id,
                phase="practice",
                progress=f"Practice {progress.practice_done} / {progress.practice_total}",
                mode=protocol.mode,
                prompt=protocol.prompt,
                choices=protocol.choices,
                exposure_ms=protocol.exposure_ms,
                feedback=result.feedback,
                correct=result.correct,
                images=self.store.trial_images(trial_id),
            ),
        )

    # -- helpers ------------------------------------------------------------------------------

    def _running(self, study: str | None) -> str:
        if self.store is None:
            raise SurveyError(self.unavailable or "The study database is not available.")
        if not study:
            raise SurveyError(NO_STUDY)
        return study

    def _known(self, token: str) -> bool:
        try:
            self.store.progress(token)
        except SurveyError:
            return False
        return True

    def _unfinished(self, tokens: Any, study: str) -> bool:
        token = token_for(tokens, study)
        try:
            return token is not None and not self.store.is_finished(token)
        except SurveyError:
            return False

    def _where(self, study: str, token: str | None) -> Screen:
        """The screen for `token` in `study` now: consent, instructions, its current trial, or done."""
        protocol = self.store.get_protocol(study)
        progress = self.store.progress(token) if token is not None else None
        if progress is None or progress.phase == "consent":
            return Screen("consent", study=study, text=protocol.consent)
        if progress.finished:
            return self._done(study, token)
        if progress.practice_done == 0 and progress.test_done == 0:
            return Screen("instructions", study=study, text=protocol.instructions)
        return self._current(study, token)

    def _current(self, study: str, token: str) -> Screen:
        """The participant's next trial or, when every one is answered, the thank-you screen."""
        trial = self.store.next_trial(token)
        return self._done(study, token) if trial is None else trial_screen(study, trial)

    def _done(self, study: str, token: str) -> Screen:
        score = self.store.participant_score(token)
        return Screen("done", study=study, score=score_text(self.store.get_protocol(study).mode, score.correct, score.answered))
