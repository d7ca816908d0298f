"""`Store`: every read and write of the survey database, in short transactions.

The participant flow, as app.py (or survey.simulate) drives it::

    store = Store(database_url())
    token = store.start_participant("demo")          # all trials assigned now
    print(store.get_protocol("demo").consent_text)
    store.consent(token)
    while (trial := store.next_trial(token)) is not None:
        show(trial.images, trial.prompt, hide_after_ms=trial.exposure_ms)
        result = store.answer(token, trial.trial_id, "left")
        if result.feedback:                          # practice trials only
            print(result.feedback)
    print(store.participant_score(token).share)

A participant is known only by the random token; keeping it (a cookie, a URL) is all it takes to
resume after a reload, on any server process: the next trial is whatever is still unanswered.

What is assigned when: the practice trials at `start_participant`; the test trials, and with them
the participant's slot in the method rotation, when the first test trial is served, to the slot
that the fewest finished or still active participants hold. People who never get past consent
or practice take no slot, so they cannot unbalance the methods among those who finish.
`start_participant(study, client_key=...)` limits how many participants one client (the app
passes its IP address) may start per `start_window`.

Every trial is shown through its own `stimuli.Presentation` (an imperceptible crop and dither,
the same for both images of a pair, stored with the trial): the bytes a participant receives
are never the stored stimulus, so comparing files across participations tells nothing.
`trial_images` re-renders them for the analysis. Once a trial's exposure window has passed,
`next_trial` serves it without images (and records the re-show): the exposure is kept by the
server, not by the page. Decoded stimuli are cached in memory (`PIXEL_CACHE_BYTES`), so serving
a trial reads no image blob and decodes no PNG for stimuli shown before.

Concurrency: SQLite runs in WAL mode with a busy timeout and takes the write lock at the start of
each write transaction (BEGIN IMMEDIATE), so concurrent participants queue for a few milliseconds
instead of failing; on PostgreSQL an answer locks its participant's row (other participants are
not held up). A response is unique per trial in the schema and stored with INSERT .. ON CONFLICT
DO NOTHING, so a double click keeps the first answer whatever the timing.

SQLite keeps recent writes in `<file>-wal` until a checkpoint (at the latest when the last
connection closes): copy the database while the app runs with `sqlite3 file ".backup copy"`,
or stop the app first, rather than copying the file alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import secrets
import threading
from collections import Counter, OrderedDict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, NamedTuple

import pandas as pd
from PIL import Image
from sqlalchemy import Engine, bindparam, create_engine, delete, event, exists, func, or_, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, InterfaceError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.pool import StaticPool

from . import SurveyError
from .inputs import parse_id, quoted
from .models import ClientStart, Participant, Response, Stimulus, Study, Trial, upgrade_schema, utcnow
from .settings import database_url, masked_url
from .stimuli import Presentation, decode_png, encode_png
from .study import (
    CATCH,
    REAL,
    RESERVED_METHODS,
    PlannedTrial,
    Protocol,
    fit_protocol,
    is_correct,
    split_pools,
    plan_trials,
    practice_feedback,
    rotation_slots,
)
from .texts import plural

__all__ = [
    "PRACTICE",
    "TEST",
    "AnswerResult",
    "Progress",
    "Score",
    "StimulusImage",
    "Store",
    "StudySummary",
    "SurveyError",
    "TrialTruth",
    "TrialView",
    "TRIALS_FRAME_COLUMNS",
    "Visit",
]

logger = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Enough connections for tens of simultaneous participants; more wait for a free one.
POOL_SIZE, POOL_MAX_OVERFLOW = 10, 20
# Two participants starting at the same instant can pick the same ordinal on PostgreSQL; the
# unique constraint refuses the second, which simply tries again.
START_ATTEMPTS = 20
# Defaults of the Store's participant rules (see `Store`).
MAX_STARTS_PER_CLIENT = 30  # a class behind one school router must still get in together
START_WINDOW = timedelta(minutes=10)
ABANDONED_AFTER = timedelta(minutes=30)
# Decoded stimuli kept in memory: 64 MB hold 340 stimuli of 256 pixels (a study of 85 photos, 3 methods).
PIXEL_CACHE_BYTES = 64 * 2**20
_READ_ONLY = "survey_read_only"
PRACTICE, TEST = "practice", "test"  # the two pools of a study's images
POOLS = (PRACTICE, TEST)
VISIT_ACTIONS = ("open", "consent", "proceed", "answer")
TOKEN_MAX_CHARS = 64  # the column's width: a longer "token" cannot be anyone's
# Said on every screen while the database does not answer (the app stays up).
UNREACHABLE = "The study's database is not answering right now; please try again in a minute."

TRIALS_FRAME_COLUMNS = [
    "study", "mode", "participant", "participant_finished", "trial_id", "position", "phase",
    "image_key", "method", "is_real", "real_side", "answered", "choice", "correct", "fooled",
    "judged_real", "response_ms", "answered_at", "slow", "reshown",
]  # fmt: skip


# -- what the Store hands out ----------------------------------------------------------------


@dataclass(frozen=True)
class StimulusImage:
    """One image of a new study: `method` is "real" for the photo, "catch" for its catch version,
    else the name of the colorization method that made this fake.

    pool: "practice" or "test", the same for every stimulus of an image (`study.split_pools`);
        None for all images of a study without pools (any image serves either phase).
    record: how it was made (JSON-able), kept for the report and never sent to a participant.
    """

    image_key: str
    method: str
    image: Image.Image
    pool: str | None = None
    record: dict | None = None


@dataclass(frozen=True)
class StudySummary:
    name: str
    mode: str
    created_at: datetime
    images: int
    methods: tuple[str, ...]
    participants: int
    finished: int


@dataclass(frozen=True)
class TrialView:
    """What a participant's screen needs for one trial, and nothing that gives the answer away.

    phase: "practice" or "test" (catch trials look like test trials).
    index / total: 1-based position within that phase ("test 7 of 20").
    images: PNG bytes, one (single mode) or two (pair mode: left, right), as this trial presents them;
        empty when `exposure_over`.
    exposure_ms: hide the images after this long (None: keep them); the answer stays open.
    exposure_over: this trial was served before and its exposure window has passed (a reload);
        the store has recorded it as re-shown and sends no images: the participant answers from
        memory (`texts.FROM_MEMORY`).
    """

    trial_id: int
    phase: str
    index: int
    total: int
    mode: str
    prompt: str
    choices: tuple[str, ...]
    exposure_ms: int | None
    images: tuple[bytes, ...]
    exposure_over: bool = False


@dataclass(frozen=True)
class AnswerResult:
    """The outcome of `Store.answer`.

    stored: False when this trial already had an answer (a double click); then the fields
    describe the first answer, which is the one kept.
    correct / feedback: only for practice trials (None on test trials: no feedback there).
    finished: the participant has answered every trial.
    """

    trial_id: int
    stored: bool
    phase: str
    correct: bool | None
    feedback: str | None
    finished: bool

    @property
    def duplicate(self) -> bool:
        return not self.stored


@dataclass(frozen=True)
class Progress:
    study: str
    consented: bool
    phase: str  # "consent" | "practice" | "test" | "finished"
    practice_done: int
    practice_total: int
    test_done: int
    test_total: int

    @property
    def finished(self) -> bool:
        return self.phase == "finished"


@dataclass(frozen=True)
class Score:
    """How many of a participant's answered test trials were right, catch trials included: they
    look like any other test trial, so this counts the trials the instructions announced."""

    correct: int
    answered: int

    @property
    def share(self) -> float | None:
        return self.correct / self.answered if self.answered else None


@dataclass(frozen=True)
class TrialTruth:
    """What a trial tests (server side only): method = the fake's method (pair) or the shown
    stimulus's ("real" for a real photo, single mode); is_real only in single mode."""

    trial_id: int
    phase: str  # "practice" | "test" | "catch"
    image_key: str
    method: str
    real_side: str | None
    is_real: bool | None


@dataclass(frozen=True)
class Visit:
    """What one participant screen needs, read and written in one transaction (`Store.visit`).

    token: the participant's (new after a "consent" that registered them); None when the browser
        is not taking part in this study (no token, or one that is not theirs here).
    progress: where they stand; None without a participant.
    answer: the result of the answer this visit stored ("answer" only).
    feedback_images: that answer's trial as it was presented, when the answer gets practice
        feedback (shown again with it, now that it is answered).
    trial: the trial served by this visit (None on consent, instructions, feedback and done).
    score: the participant's result once they have finished.
    """

    study: str
    protocol: Protocol
    token: str | None
    progress: Progress | None
    answer: AnswerResult | None = None
    feedback_images: tuple[bytes, ...] = field(default=(), repr=False)
    trial: TrialView | None = None
    score: Score | None = None


@dataclass(frozen=True)
class _TrialRow:
    """A stored trial as the participant flow needs it (internal; never leaves the Store)."""

    id: int
    position: int
    phase: str
    first_stimulus_id: str
    second_stimulus_id: str | None
    real_side: str | None
    shown_at: datetime | None
    crop_left: int | None
    crop_top: int | None
    crop_size: int | None
    dither_seed: int | None
    dither_channels: int | None
    first_is_real: bool
    choice: str | None

    @property
    def shown_phase(self) -> str:
        # Catch trials must look like any other test trial.
        return "practice" if self.phase == "practice" else "test"

    @property
    def stimulus_ids(self) -> list[str]:
        return [self.first_stimulus_id] + ([self.second_stimulus_id] if self.second_stimulus_id else [])

    @property
    def presentation(self) -> Presentation | None:
        """None only for trials stored before presentations existed (schema 1): shown as stored."""
        if self.crop_size is None:
            return None
        return Presentation(self.crop_left, self.crop_top, self.crop_size, self.dither_seed, self.dither_channels or 3)


def _fake_methods(stimulus_ids: dict[tuple[str, str], str]) -> list[str]:
    return sorted({method for _, method in stimulus_ids} - RESERVED_METHODS)


class _PixelCache:
    """Decoded stored stimuli by id, least recently used first out, within `budget_bytes`.

    Stimuli never change once stored, so a participant's next trial skips the database's image
    blobs and the PNG decoding when others have been shown the same stimuli (thread-safe).
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._items: OrderedDict[str, Image.Image] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Image.Image | None:
        with self._lock:
            image = self._items.get(key)
            if image is not None:
                self._items.move_to_end(key)
            return image

    def put(self, key: str, image: Image.Image) -> Image.Image:
        size = _image_bytes(image)
        with self._lock:
            if key not in self._items and size <= self.budget_bytes:
                self._items[key] = image
                self._bytes += size
                while self._bytes > self.budget_bytes:
                    _, dropped = self._items.popitem(last=False)
                    self._bytes -= _image_bytes(dropped)
        return image


def _image_bytes(image: Image.Image) -> int:
    return image.width * image.height * len(image.getbands())


def _test_planned(trials: list[_TrialRow]) -> bool:
    return any(t.phase != "practice" for t in trials)


def _exposure_over(protocol: Protocol, shown_at: datetime | None, now: datetime) -> bool:
    return shown_at is not None and protocol.exposure_ms is not None and now - shown_at > timedelta(milliseconds=protocol.exposure_ms)


def _finished_balance(frame: pd.DataFrame, summary: StudySummary) -> dict[str, int]:
    conditions = list(summary.methods) + ([REAL] if summary.mode == "single" else [])
    done = frame[frame["participant_finished"] & (frame["phase"] == "test")]
    counts = Counter(done["method"])
    return {method: int(counts[method]) for method in sorted(set(conditions) | set(counts))}


def client_bucket(client_key: str) -> str:
    """20 bits of SHA-256 of the client key, in hex: the only trace of a client that is stored."""
    return hashlib.sha256(client_key.encode("utf-8", "replace")).hexdigest()[:5]


def _answer_result(protocol: Protocol, trial: _TrialRow, choice: str, *, stored: bool, finished: bool) -> AnswerResult:
    correct = feedback = None
    if trial.phase == "practice":
        correct = is_correct(protocol.mode, choice, real_side=trial.real_side, stimulus_is_real=trial.first_is_real)
        feedback = practice_feedback(protocol.mode, correct, real_side=trial.real_side, stimulus_is_real=trial.first_is_real)
    return AnswerResult(
        trial_id=trial.id, stored=stored, phase=trial.shown_phase, correct=correct, feedback=feedback, finished=finished
    )


def _progress(study: str, protocol: Protocol, participant: Participant, trials: list[_TrialRow]) -> Progress:
    practice = [t for t in trials if t.shown_phase == "practice"]
    test = [t for t in trials if t.shown_phase == "test"]
    test_total = len(test) if test else protocol.test_trials
    practice_done = sum(t.choice is not None for t in practice)
    test_done = sum(t.choice is not None for t in test)
    if participant.consented_at is None:
        phase = "consent"
    elif practice_done < len(practice):
        phase = "practice"
    elif test_done < test_total:
        phase = "test"
    else:
        phase = "finished"
    return Progress(study, participant.consented_at is not None, phase, practice_done, len(practice), test_done, test_total)


def _score(protocol: Protocol, trials: list[_TrialRow]) -> Score:
    answered = [t for t in trials if t.shown_phase == "test" and t.choice is not None]
    correct = sum(is_correct(protocol.mode, t.choice, real_side=t.real_side, stimulus_is_real=t.first_is_real) for t in answered)
    return Score(correct=correct, answered=len(answered))


class _StudyImages(NamedTuple):
    ids: dict[tuple[str, str], str]  # (image_key, method) -> stimulus id
    practice: list[str] | None  # the practice pool; None for a study stored before pools


@dataclass(frozen=True)
class _Serving:
    """A trial served in a transaction, rendered (`view`) once it is committed."""

    row: _TrialRow
    index: int
    total: int
    exposure_over: bool
    stimuli: list | None  # `Store._stimuli`; None when the exposure is over

    def view(self, store: "Store", protocol: Protocol) -> TrialView:
        images = () if self.stimuli is None else store._render(self.stimuli, self.row.presentation)
        return TrialView(
            trial_id=self.row.id, phase=self.row.shown_phase, index=self.index, total=self.total, mode=protocol.mode,
            prompt=protocol.prompt, choices=protocol.choices, exposure_ms=protocol.exposure_ms, images=images,
            exposure_over=self.exposure_over,
        )  # fmt: skip


@dataclass
class _PendingVisit:
    """What `Store.visit` gathered in its transaction; `finish` renders the images after it."""

    study: str
    protocol: Protocol
    token: str
    progress: Progress | None = None
    answer: AnswerResult | None = None
    feedback: tuple[list, Presentation | None] | None = None
    serving: _Serving | None = None
    score: Score | None = None

    def finish(self, store: "Store") -> "Visit":
        return Visit(
            study=self.study,
            protocol=self.protocol,
            token=self.token,
            progress=self.progress,
            answer=self.answer,
            feedback_images=() if self.feedback is None else store._render(*self.feedback),
            trial=None if self.serving is None else self.serving.view(store, self.protocol),
            score=self.score,
        )


# The statements of every participant request, built once (building a select costs more than
# running it on SQLite); the values come in as bind parameters.
_PARTICIPANT = (
    select(Participant, Study).join(Study, Study.id == Participant.study_id).where(Participant.token == bindparam("token"))
)
# FOR NO KEY UPDATE: serialises writers of this row without blocking inserts that reference it.
_PARTICIPANT_LOCKED = _PARTICIPANT.with_for_update(of=Participant, key_share=True)
_TRIAL_ROWS = (
    select(
        Trial.id, Trial.position, Trial.phase, Trial.first_stimulus_id, Trial.second_stimulus_id,
        Trial.real_side, Trial.shown_at, Trial.crop_left, Trial.crop_top, Trial.crop_size,
        Trial.dither_seed, Trial.dither_channels, Stimulus.is_real, Response.choice,
    )  # fmt: skip
    .join(Stimulus, Stimulus.id == Trial.first_stimulus_id)
    .outerjoin(Response, Response.trial_id == Trial.id)
    .where(Trial.participant_id == bindparam("participant_id"))
    .order_by(Trial.position)
)


# -- engine set-up ---------------------------------------------------------------------------


def _normalise_url(url: str) -> str:
    # Hosting services hand out postgres:// URLs; we ship psycopg 3, not psycopg2 (SQLAlchemy's default).
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN, instead of the sqlite3 module's own
        # deferred BEGIN, which would fail (not wait) when two writers collide.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if wal:
            # Readers never block the writer and vice versa; NORMAL sync is safe with WAL.
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Writers take the lock up front (waiting up to busy_timeout); a deferred transaction that
        # read first and writes later gets SQLITE_BUSY immediately, without waiting, under WAL.
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    """An engine for `url` set up for many concurrent participants (SQLite file or PostgreSQL).

    Raises SurveyError, with the URL's password masked, for a URL that is none or a file that
    cannot be made."""
    url = _normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise SurveyError(f"'{masked_url(url)}' is not a database URL (try sqlite:///survey.sqlite).") from None
    try:
        if parsed.get_backend_name() != "sqlite":
            return create_engine(url, pool_size=POOL_SIZE, max_overflow=POOL_MAX_OVERFLOW, pool_pre_ping=True)
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
        if in_memory:
            # One shared connection, or every new connection would see a new empty database.
            engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                pool_size=POOL_SIZE,
                max_overflow=POOL_MAX_OVERFLOW,
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            )
    except (NoSuchModuleError, ModuleNotFoundError) as error:
        raise SurveyError(f"There is no database driver for '{parsed.drivername}' installed ({error}).") from None
    except OSError as error:
        raise SurveyError(f"The survey database file {database} cannot be created: {error.strerror or error}.") from None
    _configure_sqlite(engine, wal=not in_memory)
    return engine


def _why_unreachable(error: Exception, url: str) -> str:
    """The first line of a driver's error, with the URL's password (if it names it) masked."""
    line = str(getattr(error, "orig", None) or error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    password = None
    try:
        password = make_url(_normalise_url(url)).password
    except ArgumentError:
        pass
    return line.replace(password, "***") if password else line


# -- the store -------------------------------------------------------------------------------


class Store:
    """The survey database: studies, stimuli, participants, trials, responses.

    `Store(url)` connects, creates missing tables and upgrades an older database in place;
    `url=None` uses `settings.database_url()`. Safe to share between threads; every method is
    one short transaction.

    max_starts_per_client / start_window: `start_participant` refuses a client key that started
        this many participants of the study within the window (None: no limit).
    abandoned_after: a participant not served a trial for this long, and not finished, no longer
        counts when the next participant's rotation slot is chosen.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        echo: bool = False,
        max_starts_per_client: int | None = MAX_STARTS_PER_CLIENT,
        start_window: timedelta = START_WINDOW,
        abandoned_after: timedelta = ABANDONED_AFTER,
    ) -> None:
        if max_starts_per_client is not None and max_starts_per_client < 1:
            raise SurveyError("The start limit per client must be at least 1 (or None for no limit).")
        self.max_starts_per_client = max_starts_per_client
        self.start_window = start_window
        self.abandoned_after = abandoned_after
        # Presentations must not be predictable from anything a participant knows.
        self._random = secrets.SystemRandom()
        self._pixels = _PixelCache(PIXEL_CACHE_BYTES)
        self.url = database_url(url)
        self.engine = make_engine(self.url)
        if echo:
            self.engine.echo = True
        # Reads use a deferred transaction on SQLite, so they never wait for the write lock.
        self._reader = self.engine.execution_options(**{_READ_ONLY: True})
        # SQLite allows one writer at a time. Threads of this process queue on a Python lock
        # (handing over at once) rather than in SQLite's busy handler, which sleeps in growing
        # steps; other processes still wait through busy_timeout.
        self._write_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self.create_tables()

    def __repr__(self) -> str:
        return f"Store({masked_url(self.url)!r})"

    def create_tables(self) -> None:
        """Create the tables of a new database, or upgrade an older one in place (`models.upgrade_schema`).

        Never drops anything. Raises SurveyError for a database of a newer or an unknown schema,
        or one that cannot be reached (the sentence names it, password masked, and says why).
        """
        try:
            with self._write_lock or nullcontext():
                with self.engine.begin() as connection:
                    upgrade_schema(connection, where=repr(self))
        except (OperationalError, InterfaceError) as error:
            raise SurveyError(
                f"The survey database {masked_url(self.url)} cannot be opened ({_why_unreachable(error, self.url)}); "
                "check SURVEY_DB_URL (or --db) and that the database server is running."
            ) from None

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A session in a write transaction: committed on success, rolled back on any error."""
        with self._unreachable_as_sentence(), self._write_lock or nullcontext():
            with Session(self.engine) as session, session.begin():
                yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """A session for reading (on SQLite a deferred transaction, which never waits for the write lock)."""
        with self._unreachable_as_sentence(), Session(self._reader) as session:
            yield session

    @contextmanager
    def _unreachable_as_sentence(self) -> Iterator[None]:
        # A database that stops answering (a restart, a full disk) must not become a traceback.
        try:
            yield
        except (OperationalError, InterfaceError) as error:
            logger.error("The survey database %s failed: %s", masked_url(self.url), _why_unreachable(error, self.url))
            raise SurveyError(UNREACHABLE) from None

    def close(self) -> None:
        """Close the pooled connections (the Store can still be used; it reconnects)."""
        self.engine.dispose()

    # -- studies --------------------------------------------------------------------------

    def create_study(
        self, name: str, protocol: Protocol, stimuli: Iterable[StimulusImage], *, record: dict | None = None
    ) -> StudySummary:
        """Store a new study, all or nothing.

        Every image key needs a "real" stimulus and one stimulus per fake method; "catch" is
        optional per image (only colourful photos make obvious catch fakes). All images must be
        protocol.image_size squared; they are re-encoded here (`stimuli.encode_png`) so that no
        caller can leak the answer through a file format or metadata. Every image has one pool,
        practice or test, so no image serves both: given with the stimuli (all of them), or set
        here by `study.split_pools` (none of them). `record`: facts
        about the study for the report (`study_record`). The trial counts are clipped, with a
        logged warning, when there are too few images.
        """
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise SurveyError("A study needs a name of 1 to 100 characters.")
        by_image: dict[str, dict[str, StimulusImage]] = {}
        pools: dict[str, set[str | None]] = {}
        for item in stimuli:
            methods = by_image.setdefault(str(item.image_key), {})
            if item.method in methods:
                raise SurveyError(f"Image {quoted(item.image_key)} has two {quoted(item.method)} stimuli.")
            if item.image.size != (protocol.image_size, protocol.image_size):
                raise SurveyError(
                    f"Stimulus {quoted(item.image_key)} / {quoted(item.method)} is {item.image.size[0]}x{item.image.size[1]} pixels; "
                    f"the study uses {protocol.image_size}x{protocol.image_size}."
                )
            if item.pool not in (None, *POOLS):
                raise SurveyError(f"{quoted(item.pool)} is not a pool; an image is in the practice or the test pool.")
            methods[item.method] = item
            pools.setdefault(str(item.image_key), set()).add(item.pool)
        fake_methods = {m for methods in by_image.values() for m in methods} - RESERVED_METHODS
        if not by_image or not fake_methods:
            raise SurveyError("A study needs at least one image with a real photo and a colorized fake.")
        for key, methods in by_image.items():
            missing = sorted(({REAL} | fake_methods) - set(methods))
            if missing:
                raise SurveyError(f"Image {quoted(key)} has no {', '.join(missing)} stimulus.")
            if len(pools[key]) > 1:
                raise SurveyError(f"Image {quoted(key)} is in both the practice and the test pool; practice images must never be test images.")
        catch_keys = [key for key, methods in by_image.items() if CATCH in methods]
        pooled = {key for key, found in pools.items() if found != {None}}
        if pooled and len(pooled) < len(by_image):
            raise SurveyError("Either every image of a study has a pool (practice or test) or none has.")
        if pooled:
            practice_keys = [key for key, found in pools.items() if found == {PRACTICE}]
        else:  # the store sets the practice pool aside itself: no new study lets practice images into the test
            practice_keys, _ = split_pools(protocol, image_keys=list(by_image), methods=sorted(fake_methods), catch_keys=catch_keys)
        protocol, warning = fit_protocol(
            protocol, image_keys=list(by_image), methods=sorted(fake_methods), catch_keys=catch_keys, practice_keys=practice_keys
        )
        if warning:
            logger.warning(warning)

        # Encode before the transaction, so the write lock is held only for the inserts.
        rows = []
        for key, methods in by_image.items():
            for method, item in methods.items():
                png = encode_png(item.image)
                rows.append(
                    Stimulus(
                        id=secrets.token_hex(16),
                        image_key=key,
                        method=method,
                        is_real=method == REAL,
                        png=png,
                        sha256=hashlib.sha256(png).hexdigest(),
                        pool=PRACTICE if key in practice_keys else TEST,
                        record=item.record,
                    )
                )
        # Insert in random order too, so not even row order or rowid pairs stimuli up.
        secrets.SystemRandom().shuffle(rows)
        try:
            with self._write() as session:
                if session.scalar(select(Study.id).where(Study.name == name)) is not None:
                    raise SurveyError(f"A study called {quoted(name)} already exists.")
                study = Study(name=name, protocol=protocol.to_dict(), created_at=utcnow(), record=record)
                session.add(study)
                session.flush()
                for row in rows:
                    row.study_id = study.id
                session.add_all(rows)
        except IntegrityError:
            raise SurveyError(f"A study called {quoted(name)} already exists.") from None
        return self._summary(name)

    def study_record(self, study: str) -> dict:
        """What is recorded about `study` beyond its protocol (e.g. "simulated": the simulator's true rates); {} if nothing."""
        with self._read() as session:
            return dict(self._study(session, study).record or {})

    def update_study_record(self, study: str, **entries: Any) -> dict:
        """Add `entries` to the study's record (replacing those of the same name); returns the record."""
        with self._write() as session:
            record = self._study(session, study, lock=True)
            record.record = {**(record.record or {}), **entries}
            return dict(record.record)

    def stimulus_records(self, study: str) -> pd.DataFrame:
        """One row per stimulus of `study`: image_key, method, pool and record (how it was made, or None)."""
        with self._read() as session:
            rows = session.execute(
                select(Stimulus.image_key, Stimulus.method, Stimulus.pool, Stimulus.record)
                .join(Study, Study.id == Stimulus.study_id)
                .where(Study.id == self._study(session, study).id)
                .order_by(Stimulus.image_key, Stimulus.method)
            ).all()
        return pd.DataFrame.from_records(rows, columns=["image_key", "method", "pool", "record"])

    def list_studies(self) -> list[StudySummary]:
        """All studies, oldest first."""
        with self._read() as session:
            names = session.scalars(select(Study.name).order_by(Study.created_at, Study.id)).all()
        return [self._summary(name) for name in names]

    def get_protocol(self, study: str) -> Protocol:
        """The protocol of `study` (mode, exposure, counts, consent and instruction texts)."""
        with self._read() as session:
            return Protocol.from_dict(self._study(session, study).protocol)

    def _summary(self, name: str) -> StudySummary:
        with self._read() as session:
            study = self._study(session, name)
            methods = session.scalars(
                select(Stimulus.method).where(Stimulus.study_id == study.id, Stimulus.method.not_in(sorted(RESERVED_METHODS))).distinct()
            ).all()
            images = session.scalar(select(func.count(func.distinct(Stimulus.image_key))).where(Stimulus.study_id == study.id))
            started = session.scalar(select(func.count()).where(Participant.study_id == study.id))
            finished = session.scalar(
                select(func.count()).where(Participant.study_id == study.id, Participant.finished_at.is_not(None))
            )
            return StudySummary(
                name=study.name,
                mode=study.protocol["mode"],
                created_at=study.created_at,
                images=int(images or 0),
                methods=tuple(sorted(methods)),
                participants=int(started or 0),
                finished=int(finished or 0),
            )

    @staticmethod
    def _study(session: Session, name: str, *, lock: bool = False) -> Study:
        study = None
        if isinstance(name, str) and len(name) <= 100:  # longer cannot exist: do not send it to the database
            query = select(Study).where(Study.name == name)
            study = session.scalar(query.with_for_update(key_share=True) if lock else query)
        if study is None:
            raise SurveyError(f"There is no study called {quoted(name)}.")
        return study

    # -- participants -----------------------------------------------------------------------

    def visit(
        self,
        study: str,
        token: str | None,
        *,
        action: str = "open",
        client_key: str | None = None,
        trial_id: int | str | None = None,
        choice: str | None = None,
        now: datetime | None = None,
    ) -> Visit:
        """One participant screen, read and written in a single transaction (`survey.participant`).

        action: "open" (where the participant stands: their current trial once they have
        answered one, else the consent or instructions), "consent" (register unless `token` is
        theirs in `study`, counted against `client_key`'s start limit, and agree), "proceed"
        (serve the current trial), "answer" (store `choice` for the trial `trial_id`, then serve
        the next one unless the answer gets practice feedback). A token unknown in `study` is not
        theirs: `Visit.token` is then None (and "proceed" or "answer" raise). Raises SurveyError.
        `now` overrides the clock, for simulations and tests only.
        """
        if action not in VISIT_ACTIONS:
            raise ValueError(f"Unknown visit action {action!r}; one of {', '.join(VISIT_ACTIONS)}.")
        now = now or utcnow()
        if action == "answer":
            trial_id = parse_id(trial_id)
        known = isinstance(token, str) and 0 < len(token) <= TOKEN_MAX_CHARS
        if action == "open" and not known:
            with self._read() as session:  # the consent screen: nothing to write, no write lock
                record = self._study(session, study)
                return Visit(record.name, Protocol.from_dict(record.protocol), None, None)
        for _attempt in range(START_ATTEMPTS):
            try:
                with self._write() as session:
                    record = self._study(session, study)
                    found = self._participant_of(session, token, record.id) if known else None
                    if found is None and action != "consent":
                        if action != "open":
                            raise SurveyError("This participant code is unknown; please start the study again from its link.")
                        return Visit(record.name, Protocol.from_dict(record.protocol), None, None)
                    participant = found or self._register(session, record, client_key, now)
                    pending = self._visit_in(session, participant, record, action, trial_id, choice, now)
                break
            except IntegrityError:
                continue  # two registrations raced for one ordinal; the study lock makes this rare
        else:
            raise SurveyError("Too many people are starting at the same moment; please try again.")
        # Rendering takes milliseconds per image: done after the transaction, not under the write lock.
        return pending.finish(self)

    def _visit_in(
        self, session: Session, participant: Participant, study: Study, action: str, trial_id: int | None, choice: str | None, now: datetime
    ) -> "_PendingVisit":
        protocol = Protocol.from_dict(study.protocol)
        if action == "consent" and participant.consented_at is None:
            participant.consented_at = now
        trials = self._trial_rows(session, participant.id)
        pending = _PendingVisit(study.name, protocol, participant.token)
        if participant.consented_at is None:
            if action in ("proceed", "answer"):
                raise SurveyError("Please agree to take part before the first trial.")
            pending.progress = _progress(study.name, protocol, participant, trials)
            return pending
        if action == "answer":
            result, trials = self._answer_in(session, participant, protocol, trials, trial_id, choice, now)
            pending.answer = result
            if result.feedback is not None:
                answered = next(t for t in trials if t.id == trial_id)
                pending.feedback = (self._stimuli(session, answered.stimulus_ids, answered.presentation), answered.presentation)
        answered_any = any(t.choice is not None for t in trials)
        if action == "proceed" or (action == "answer" and pending.feedback is None) or (action in ("open", "consent") and answered_any):
            pending.serving, trials = self._serve(session, participant, study, protocol, trials, now)
        pending.progress = _progress(study.name, protocol, participant, trials)
        if pending.progress.finished:
            pending.score = _score(protocol, trials)
        return pending

    def start_participant(self, study: str, *, client_key: str | None = None, now: datetime | None = None) -> str:
        """Register a new participant of `study`, assign their practice trials, return their secret token.

        client_key: who is asking (the app passes the IP address); a key that started
        `max_starts_per_client` participants of this study within `start_window` is refused with
        a SurveyError. Only 20 bits of its hash are kept, and only for the window. None: no limit.
        `now` overrides the clock, for simulations and tests only.
        """
        now = now or utcnow()
        for _attempt in range(START_ATTEMPTS):
            try:
                with self._write() as session:
                    return self._register(session, self._study(session, study), client_key, now).token
            except IntegrityError:
                # The study lock prevents this; kept for databases without row locks.
                continue
        raise SurveyError("Too many people are starting at the same moment; please try again.")

    def _register(self, session: Session, study: Study, client_key: str | None, now: datetime) -> Participant:
        """A new participant of `study` with their practice trials (in the caller's transaction)."""
        # Lock the study row so concurrent starts take ordinals (and count client starts) one after the other.
        study = self._study(session, study.name, lock=True)
        if client_key and self.max_starts_per_client is not None:
            self._count_client_start(session, study.id, client_bucket(str(client_key)), now)
        protocol = Protocol.from_dict(study.protocol)
        last = session.scalar(select(func.max(Participant.ordinal)).where(Participant.study_id == study.id))
        ordinal = 0 if last is None else last + 1
        participant = Participant(token=secrets.token_urlsafe(24), study_id=study.id, ordinal=ordinal, created_at=now)
        session.add(participant)
        session.flush()
        images = self._images(session, study.id)
        plan = self._plan(protocol, images, ordinal=ordinal, rotation=None)
        self._add_trials(session, participant.id, [t for t in plan if t.phase == "practice"], images.ids, protocol)
        return participant

    def _count_client_start(self, session: Session, study_id: int, bucket: str, now: datetime) -> None:
        """Record a start from `bucket`, or refuse it when the bucket is at its limit; forgets old starts."""
        since = now - self.start_window
        session.execute(delete(ClientStart).where(ClientStart.started_at < since))
        recent = session.scalar(
            select(func.count()).where(
                ClientStart.study_id == study_id, ClientStart.client_bucket == bucket, ClientStart.started_at >= since
            )
        )
        if recent >= self.max_starts_per_client:
            minutes = max(1, round(self.start_window.total_seconds() / 60))
            raise SurveyError(
                f"This study was started too many times from your connection in the last {plural(minutes, 'minute')}; "
                "please try again later."
            )
        session.add(ClientStart(study_id=study_id, client_bucket=bucket, started_at=now))

    @staticmethod
    def _images(session: Session, study_id: int) -> "_StudyImages":
        """The id of every stimulus of the study by (image_key, method), and its practice pool."""
        rows = session.execute(
            select(Stimulus.id, Stimulus.image_key, Stimulus.method, Stimulus.pool).where(Stimulus.study_id == study_id)
        ).all()
        pools = {key: pool for _, key, _, pool in rows}
        practice = None if any(pool is None for pool in pools.values()) else sorted(k for k, pool in pools.items() if pool == PRACTICE)
        return _StudyImages({(key, method): stimulus_id for stimulus_id, key, method, _ in rows}, practice)

    @staticmethod
    def _plan(protocol: Protocol, images: "_StudyImages", *, ordinal: int, rotation: int | None) -> list[PlannedTrial]:
        """Participant `ordinal`'s whole plan, test methods at `rotation` (see `study.plan_trials`)."""
        image_keys = sorted({key for key, _ in images.ids})
        return plan_trials(
            protocol,
            image_keys=image_keys,
            methods=_fake_methods(images.ids),
            catch_keys=[key for key in image_keys if (key, CATCH) in images.ids],
            ordinal=ordinal,
            rotation=rotation,
            practice_keys=images.practice,
        )

    def _add_trials(
        self, session: Session, participant_id: int, planned: list[PlannedTrial], stimulus_ids: dict, protocol: Protocol
    ) -> None:
        for trial in planned:
            shown = stimulus_ids[(trial.image_key, trial.method)]
            if protocol.mode == "single":
                first, second = shown, None
            else:
                real = stimulus_ids[(trial.image_key, REAL)]
                first, second = (real, shown) if trial.real_side == "left" else (shown, real)
            # The Presentation's fields are the trial's columns of the same names.
            presentation = dataclasses.asdict(Presentation.draw(protocol.image_size, self._random))
            session.add(
                Trial(
                    participant_id=participant_id,
                    position=trial.position,
                    phase=trial.phase,
                    first_stimulus_id=first,
                    second_stimulus_id=second,
                    real_side=trial.real_side,
                    **presentation,
                )
            )

    def _plan_test_trials(self, session: Session, participant: Participant, study: Study, now: datetime) -> list[_TrialRow]:
        """Give the (locked) participant a rotation slot and their test trials."""
        study = self._study(session, study.name, lock=True)  # slots are chosen one participant at a time
        protocol = Protocol.from_dict(study.protocol)
        images = self._images(session, study.id)
        slot = self._emptiest_slot(session, study.id, rotation_slots(protocol.mode, _fake_methods(images.ids)), now)
        plan = self._plan(protocol, images, ordinal=participant.ordinal, rotation=slot)
        self._add_trials(session, participant.id, [t for t in plan if t.phase != "practice"], images.ids, protocol)
        session.execute(update(Participant).where(Participant.id == participant.id).values(rotation_slot=slot))
        session.flush()
        return self._trial_rows(session, participant.id)

    def _emptiest_slot(self, session: Session, study_id: int, slots: int, now: datetime) -> int:
        """The rotation slot held by the fewest participants who finished or were served a trial
        within `abandoned_after` (the lowest such slot on a tie, so arrivals in a row go round)."""
        active = exists().where(Trial.participant_id == Participant.id, Trial.shown_at >= now - self.abandoned_after)
        held = session.execute(
            select(Participant.rotation_slot, func.count())
            .where(
                Participant.study_id == study_id,
                Participant.rotation_slot.is_not(None),
                or_(Participant.finished_at.is_not(None), active),
            )
            .group_by(Participant.rotation_slot)
        )
        load = [0] * slots
        for slot, count in held:
            load[slot % slots] += count  # a slot is an offset: slot and slot + K rotate alike
        return min(range(slots), key=lambda slot: (load[slot], slot))

    def consent(self, token: str, *, now: datetime | None = None) -> None:
        """Record that the participant agreed to the consent text (again: keeps the first time)."""
        with self._write() as session:
            participant, _ = self._participant(session, token)
            if participant.consented_at is None:
                participant.consented_at = now or utcnow()

    def next_trial(self, token: str, *, now: datetime | None = None) -> TrialView | None:
        """The participant's current trial (the first unanswered one), or None when they are done.

        The first time a trial is served its `shown_at` is recorded; the response time counts from
        there. Serving it again (a reload) shows the same trial and keeps that first time; once
        its exposure window has passed, that is recorded as a re-show (`exposure_over`) and the
        images are not sent again (`images` is empty): the exposure is the server's to keep. The
        first test trial served assigns the test trials and the rotation slot (see the module).
        `now` overrides the clock, for simulations and tests only.
        """
        now = now or utcnow()
        with self._write() as session:
            participant, study = self._participant(session, token, lock=True)
            if participant.consented_at is None:
                raise SurveyError("Please agree to take part before the first trial.")
            protocol = Protocol.from_dict(study.protocol)
            serving, _ = self._serve(session, participant, study, protocol, self._trial_rows(session, participant.id), now)
        return None if serving is None else serving.view(self, protocol)

    def _serve(
        self, session: Session, participant: Participant, study: Study, protocol: Protocol, trials: list[_TrialRow], now: datetime
    ) -> tuple["_Serving | None", list[_TrialRow]]:
        """The (locked) participant's current trial, served now (see `next_trial`), and their trials."""
        current = next((t for t in trials if t.choice is None), None)
        if current is None and not _test_planned(trials):
            trials = self._plan_test_trials(session, participant, study, now)
            current = next((t for t in trials if t.choice is None), None)
        if current is None:
            return None, trials
        exposure_over = _exposure_over(protocol, current.shown_at, now)
        if current.shown_at is None:
            session.execute(update(Trial).where(Trial.id == current.id, Trial.shown_at.is_(None)).values(shown_at=now))
            trials = [dataclasses.replace(t, shown_at=now) if t.id == current.id else t for t in trials]
        elif exposure_over:
            self._record_reshown(session, current.id, now)
        shown = None if exposure_over else self._stimuli(session, current.stimulus_ids, current.presentation)
        group = [t for t in trials if t.shown_phase == current.shown_phase]
        return _Serving(current, [t.id for t in group].index(current.id) + 1, len(group), exposure_over, shown), trials

    @staticmethod
    def _record_reshown(session: Session, trial_id: int, now: datetime) -> bool:
        """Set the trial's reshown_at unless already set; True if this call set it."""
        result = session.execute(
            update(Trial).where(Trial.id == trial_id, Trial.reshown_at.is_(None)).values(reshown_at=now)
        )
        return result.rowcount == 1

    def mark_reshown(self, token: str, trial_id: int | str, *, now: datetime | None = None) -> bool:
        """Record that the participant's current trial was shown again after its exposure window.

        For a screen that re-displays a trial by itself (`next_trial` records its own re-serves).
        Only the trial on screen (served, unanswered) can be marked, and only the first time
        counts: returns True if this call marked it. The report flags or excludes such trials
        (the protocol's `reshown_trials`).
        """
        now = now or utcnow()
        trial_id = parse_id(trial_id)
        with self._write() as session:
            participant, _ = self._participant(session, token, lock=True)
            trials = self._trial_rows(session, participant.id)
            current = next((t for t in trials if t.choice is None), None)
            if current is None or current.id != trial_id or current.shown_at is None:
                raise SurveyError("That is not the trial on screen.")
            return self._record_reshown(session, trial_id, now)

    def answer(self, token: str, trial_id: int | str, choice: str, *, now: datetime | None = None) -> AnswerResult:
        """Store the participant's answer to the trial on screen.

        trial_id: the TrialView's id (an int, or its digits as text). choice: "left" | "right" in
        pair mode, "real" | "fake" in single mode. A second answer to an already answered trial
        stores nothing and returns the first answer's result (`stored=False`). An answer slower
        than the protocol's max_response_ms is stored flagged `slow`. Raises SurveyError for an
        unknown token, an id that is not a whole number, an invalid choice, a trial that is not
        the participant's current one, or a finished participant.
        `now` overrides the clock, for simulations and tests only.
        """
        now = now or utcnow()
        trial_id = parse_id(trial_id)
        with self._write() as session:
            participant, study = self._participant(session, token, lock=True)
            protocol = Protocol.from_dict(study.protocol)
            result, _ = self._answer_in(session, participant, protocol, self._trial_rows(session, participant.id), trial_id, choice, now)
            return result

    def _answer_in(
        self, session: Session, participant: Participant, protocol: Protocol, trials: list[_TrialRow], trial_id: int, choice: Any, now: datetime
    ) -> tuple[AnswerResult, list[_TrialRow]]:
        """Store the (locked) participant's answer (see `answer`); the result and their trials after it."""
        if not isinstance(choice, str) or choice not in protocol.choices:
            raise SurveyError(f"{quoted(choice)} is not an answer here; choose {' or '.join(protocol.choices)}.")
        trial = next((t for t in trials if t.id == trial_id), None)
        if trial is not None and trial.choice is not None:
            return _answer_result(protocol, trial, trial.choice, stored=False, finished=participant.finished_at is not None), trials
        if participant.finished_at is not None:
            raise SurveyError("You have already finished this study; thank you!")
        if trial is None:
            raise SurveyError("That trial does not belong to this participant.")
        if participant.consented_at is None:
            raise SurveyError("Please agree to take part before the first trial.")
        current = next(t for t in trials if t.choice is None)
        if current.id != trial_id or trial.shown_at is None:
            raise SurveyError("That is not the trial on screen; please answer the one shown now.")

        response_ms = max(0.0, (now - trial.shown_at).total_seconds() * 1000.0)
        slow = protocol.max_response_ms is not None and response_ms > protocol.max_response_ms
        stored = self._insert_response(session, trial_id, choice, response_ms, now, slow=slow)
        if not stored:  # a concurrent click won (only possible without the participant lock)
            choice = session.scalar(select(Response.choice).where(Response.trial_id == trial_id))
        # Finished when the last trial is answered, and the test trials exist (after practice they come next).
        finished = stored and _test_planned(trials) and sum(t.choice is None for t in trials) == 1
        if finished:
            session.execute(
                update(Participant).where(Participant.id == participant.id, Participant.finished_at.is_(None)).values(finished_at=now)
            )
            participant.finished_at = participant.finished_at or now
        trials = [dataclasses.replace(t, choice=choice) if t.id == trial_id else t for t in trials]
        return _answer_result(protocol, trial, choice, stored=stored, finished=finished or participant.finished_at is not None), trials

    @staticmethod
    def _insert_response(session: Session, trial_id: int, choice: str, response_ms: float, now: datetime, *, slow: bool) -> bool:
        """Insert unless the trial already has a response (a concurrent click); True if inserted."""
        values = {"trial_id": trial_id, "choice": choice, "response_ms": response_ms, "answered_at": now, "slow": slow}
        dialect = session.get_bind().dialect.name
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            # Core table, not the ORM entity: an ORM bulk insert does not report what it inserted.
            table = Response.__table__
            statement = insert(table).values(**values).on_conflict_do_nothing(index_elements=["trial_id"])
            return session.execute(statement.returning(table.c.id)).first() is not None
        try:  # other databases: let the unique constraint decide, inside a savepoint
            with session.begin_nested():
                session.add(Response(**values))
            return True
        except IntegrityError:
            return False

    def progress(self, token: str) -> Progress:
        """Where the participant is: consent, practice, test or finished, with counts per phase.

        Before the test trials are assigned their total is the protocol's test_trials.
        """
        with self._read() as session:
            participant, study = self._participant(session, token)
            return _progress(study.name, Protocol.from_dict(study.protocol), participant, self._trial_rows(session, participant.id))

    def participant_score(self, token: str) -> Score:
        """How many of the participant's answered test trials were right, catch trials included (see Score)."""
        with self._read() as session:
            participant, study = self._participant(session, token)
            return _score(Protocol.from_dict(study.protocol), self._trial_rows(session, participant.id))

    def is_finished(self, token: str) -> bool:
        """Whether the participant has answered every trial."""
        with self._read() as session:
            participant, _ = self._participant(session, token)
            return participant.finished_at is not None

    def landing(self, tokens: dict[str, str]) -> tuple[list[str], set[str]]:
        """(every study's name, oldest first; the studies among `tokens` ({study: token}) whose
        participant has not finished), in one read: what a page load needs to pick a study."""
        wanted = {name: token for name, token in tokens.items() if isinstance(token, str) and len(token) <= TOKEN_MAX_CHARS}
        with self._read() as session:
            names = list(session.scalars(select(Study.name).order_by(Study.created_at, Study.id)))
            unfinished = set()
            if wanted:
                unfinished = {
                    name
                    for name, token in session.execute(
                        select(Study.name, Participant.token)
                        .join(Participant, Participant.study_id == Study.id)
                        .where(Participant.token.in_(sorted(set(wanted.values()))), Participant.finished_at.is_(None))
                    )
                    if wanted.get(name) == token
                }
        return names, unfinished

    @staticmethod
    def _participant(session: Session, token: str, *, lock: bool = False) -> tuple[Participant, Study]:
        """The participant with `token` and their study; `lock` serialises this participant's writes.

        The lock (SELECT .. FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises)
        makes a second click wait for the first, then see its answer and return it.
        """
        row = None
        if isinstance(token, str) and 0 < len(token) <= TOKEN_MAX_CHARS:
            row = session.execute(_PARTICIPANT_LOCKED if lock else _PARTICIPANT, {"token": token}).first()
        if row is None:
            raise SurveyError("This participant code is unknown; please start the study again from its link.")
        return row[0], row[1]

    @staticmethod
    def _participant_of(session: Session, token: str, study_id: int) -> Participant | None:
        """The (locked) participant with `token` in the study `study_id`; None when there is none."""
        row = session.execute(_PARTICIPANT_LOCKED, {"token": token}).first()
        return row[0] if row is not None and row[0].study_id == study_id else None

    @staticmethod
    def _trial_rows(session: Session, participant_id: int) -> list[_TrialRow]:
        """All of a participant's trials in order, each with its answer (or None), in one query."""
        return [_TrialRow(*row) for row in session.execute(_TRIAL_ROWS, {"participant_id": participant_id})]

    # -- analysis and admin -------------------------------------------------------------------

    def trial_truth(self, trial_id: int) -> TrialTruth:
        """The answer key of one trial, for simulations and analysis: NEVER show it to a participant."""
        first, second = aliased(Stimulus), aliased(Stimulus)
        with self._read() as session:
            row = session.execute(
                select(Trial.phase, Trial.real_side, first.image_key, first.method, first.is_real, second.method)
                .join(first, first.id == Trial.first_stimulus_id)
                .outerjoin(second, second.id == Trial.second_stimulus_id)
                .where(Trial.id == trial_id)
            ).first()
        if row is None:
            raise SurveyError("That trial does not exist.")
        phase, real_side, image_key, first_method, first_is_real, second_method = row
        pair = second_method is not None
        return TrialTruth(
            trial_id=trial_id,
            phase=phase,
            image_key=image_key,
            method=(second_method if first_is_real else first_method) if pair else first_method,
            real_side=real_side,
            is_real=None if pair else bool(first_is_real),
        )

    def trial_images(self, trial_id: int | str) -> tuple[bytes, ...]:
        """The PNG bytes that were (or will be) sent for this trial, re-rendered from its stored
        presentation: what the participant saw, for the analysis. NEVER show it with its answer key."""
        trial_id = parse_id(trial_id)
        with self._read() as session:
            row = session.execute(
                select(Trial.crop_left, Trial.crop_top, Trial.crop_size, Trial.dither_seed, Trial.dither_channels,
                       Trial.first_stimulus_id, Trial.second_stimulus_id).where(Trial.id == trial_id)
            ).first()  # fmt: skip
            if row is None:
                raise SurveyError("That trial does not exist.")
            presentation = None if row[2] is None else Presentation(*row[:4], row[4] or 3)
            shown = self._stimuli(session, [i for i in row[5:] if i is not None], presentation)
        return self._render(shown, presentation)

    def _stimuli(self, session: Session, ids: list[str], presentation: Presentation | None) -> list:
        """The stimuli `ids` as `_render` takes them: decoded images (from the cache where it has
        them), or the stored PNG bytes for a trial without a presentation (schema 1)."""
        if presentation is None:
            pngs = dict(session.execute(select(Stimulus.id, Stimulus.png).where(Stimulus.id.in_(ids))).all())
            return [pngs[i] for i in ids]
        found = {i: image for i in ids if (image := self._pixels.get(i)) is not None}
        missing = [i for i in ids if i not in found]
        if missing:
            for stimulus_id, png in session.execute(select(Stimulus.id, Stimulus.png).where(Stimulus.id.in_(missing))):
                found[stimulus_id] = self._pixels.put(stimulus_id, decode_png(png))
        return [found[i] for i in ids]

    @staticmethod
    def _render(stimuli: list, presentation: Presentation | None) -> tuple[bytes, ...]:
        """What a participant receives: the trial's presentation of each stimulus (`_stimuli`)."""
        return tuple(stimuli) if presentation is None else presentation.render_all(stimuli)

    def stimulus_png(self, study: str, image_key: str, method: str) -> bytes | None:
        """The stored PNG of one stimulus ("real", "catch" or a method name), e.g. for report figures."""
        with self._read() as session:
            return session.scalar(
                select(Stimulus.png)
                .join(Study, Study.id == Stimulus.study_id)
                .where(Study.name == study, Stimulus.image_key == image_key, Stimulus.method == method)
            )


    def trials_frame(self, study: str) -> pd.DataFrame:
        """One row per assigned trial (answered or not) with the columns of docs/CONTRACTS.md.

        `participant` is a pseudonym ("P0001", in order of arrival), never the secret token.
        """
        first, second = aliased(Stimulus), aliased(Stimulus)
        with self._read() as session:
            record = self._study(session, study)
            mode = record.protocol["mode"]
            rows = session.execute(
                select(
                    Participant.ordinal,
                    Participant.finished_at,
                    Trial.id,
                    Trial.position,
                    Trial.phase,
                    Trial.real_side,
                    first.image_key,
                    first.method,
                    first.is_real,
                    second.method,
                    Response.choice,
                    Response.response_ms,
                    Response.answered_at,
                    Response.slow,
                    Trial.reshown_at,
                )
                .join(Trial, Trial.participant_id == Participant.id)
                .join(first, first.id == Trial.first_stimulus_id)
                .outerjoin(second, second.id == Trial.second_stimulus_id)
                .outerjoin(Response, Response.trial_id == Trial.id)
                .where(Participant.study_id == record.id)
                .order_by(Participant.ordinal, Trial.position)
            ).all()
        records = []
        for (ordinal, finished_at, trial_id, position, phase, real_side, image_key,
             first_method, first_is_real, second_method, choice, response_ms, answered_at, slow, reshown_at) in rows:  # fmt: skip
            answered = choice is not None
            if mode == "pair":
                method = second_method if first_is_real else first_method
                is_real = float("nan")
                correct = choice == real_side if answered else None
                fooled = (not correct) if answered else None
                judged_real = None
            else:
                method, is_real = first_method, bool(first_is_real)
                judged_real = choice == "real" if answered else None
                correct = judged_real == is_real if answered else None
                fooled = judged_real if answered and not is_real else None
            records.append(
                {
                    "study": record.name,
                    "mode": mode,
                    "participant": f"P{ordinal + 1:04d}",
                    "participant_finished": finished_at is not None,
                    "trial_id": trial_id,
                    "position": position,
                    "phase": phase,
                    "image_key": image_key,
                    "method": method,
                    "is_real": is_real,
                    "real_side": real_side,
                    "answered": answered,
                    "choice": choice,
                    "correct": correct,
                    "fooled": fooled,
                    "judged_real": judged_real,
                    "response_ms": float(response_ms) if response_ms is not None else None,
                    "answered_at": answered_at,
                    "slow": bool(slow) if answered else None,
                    "reshown": reshown_at is not None,
                }
            )
        frame = pd.DataFrame.from_records(records, columns=TRIALS_FRAME_COLUMNS)
        frame = frame.astype({"participant_finished": bool, "answered": bool, "trial_id": int, "position": int, "reshown": bool})
        frame["response_ms"] = pd.to_numeric(frame["response_ms"], errors="coerce").astype(float)
        frame["answered_at"] = pd.to_datetime(frame["answered_at"], utc=True)
        for column in ("choice", "correct", "fooled", "judged_real", "real_side", "slow"):
            # Keep None (not NaN) for "no value", as the contract says, in these object columns.
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
        return frame

    def export_responses_csv(self, study: str, path_or_buffer: str | Path | IO[str]) -> int:
        """Write the answered rows of `trials_frame(study)` as CSV; returns how many rows were written."""
        frame = self.trials_frame(study)
        answered = frame[frame["answered"]]
        answered.to_csv(path_or_buffer, index=False)
        return len(answered)

    def finished_balance(self, study: str) -> dict[str, int]:
        """Test trials (catch trials left out) per method among participants who finished, every
        method of the study included (and "real" in single mode): the balance the analysis gets."""
        return _finished_balance(self.trials_frame(study), self._summary(study))

    def study_status(self, study: str) -> dict[str, Any]:
        """Counts for the admin: participants started / consented / finished, responses, and per
        method: trials assigned, responses, and `finished_trials` (see `finished_balance`)."""
        summary = self._summary(study)
        with self._read() as session:
            record = self._study(session, study)
            consented = session.scalar(
                select(func.count()).where(Participant.study_id == record.id, Participant.consented_at.is_not(None))
            )
        frame = self.trials_frame(study)
        per_method: dict[str, dict[str, int]] = {}
        assigned = Counter(frame["method"])
        answered = Counter(frame.loc[frame["answered"], "method"])
        finished = _finished_balance(frame, summary)
        for method in sorted(set(assigned) | set(finished)):
            per_method[method] = {
                "trials": int(assigned[method]),
                "responses": int(answered[method]),
                "finished_trials": finished.get(method, 0),
            }
        return {
            "study": summary.name,
            "mode": summary.mode,
            "images": summary.images,
            "methods": list(summary.methods),
            "participants_started": summary.participants,
            "participants_consented": int(consented or 0),
            "participants_finished": summary.finished,
            "trials_assigned": int(len(frame)),
            "responses": int(frame["answered"].sum()),
            "per_method": per_method,
        }
