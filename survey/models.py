"""The survey's tables (SQLAlchemy 2.0). Rules a race or a double click must not break live here.

studies       one row per study: its name and `Protocol` (JSON)
stimuli       every image shown, real or fake, as PNG bytes under a random opaque id
participants  one row per person taking part, found by a random secret token
trials        each participant's trials, all assigned when they start (so a reload resumes)
responses     at most one per trial (UNIQUE trial_id): a second click cannot store a second answer

The truth (which stimulus is real, which method made a fake) is only in these tables; nothing
that reaches a participant's browser carries it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps the zone (timestamptz); SQLite stores naive text, so we store UTC there and
    put the zone back on reading. Either way the program only ever sees aware UTC values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("Naive datetimes are ambiguous; pass an aware UTC datetime.")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Study(Base):
    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    protocol: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Stimulus(Base):
    __tablename__ = "stimuli"
    __table_args__ = (
        UniqueConstraint("study_id", "image_key", "method", name="uq_stimulus_image_method"),
        # "real" is the one real photo of an image; anything else is a fake (incl. "catch").
        CheckConstraint("(method = 'real') = is_real", name="ck_stimulus_real_method"),
    )

    # Random hex, not a counter: an id must not say in which order (real first?) things were made.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    image_key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(100))
    is_real: Mapped[bool] = mapped_column(Boolean)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("study_id", "ordinal", name="uq_participant_ordinal"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The secret a participant's browser holds; whoever has it can answer, so it never leaves
    # the participant (exports use `ordinal` instead).
    token: Mapped[str] = mapped_column(String(64), unique=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    # 0, 1, 2, ... in order of arrival within the study: drives the method rotation.
    ordinal: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    consented_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("participant_id", "position", name="uq_trial_position"),
        CheckConstraint("phase IN ('practice', 'test', 'catch')", name="ck_trial_phase"),
        CheckConstraint("real_side IS NULL OR real_side IN ('left', 'right')", name="ck_trial_real_side"),
        # Pair trials have two stimuli and a real side; single trials one stimulus and none.
        CheckConstraint(
            "(second_stimulus_id IS NULL AND real_side IS NULL) OR "
            "(second_stimulus_id IS NOT NULL AND real_side IS NOT NULL)",
            name="ck_trial_shape",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 0-based order of presentation
    phase: Mapped[str] = mapped_column(String(10))
    # Single mode: the one stimulus. Pair mode: the left one; `second_stimulus_id` is the right one.
    first_stimulus_id: Mapped[str] = mapped_column(ForeignKey("stimuli.id"))
    second_stimulus_id: Mapped[str | None] = mapped_column(ForeignKey("stimuli.id"))
    real_side: Mapped[str | None] = mapped_column(String(5))
    # When the trial was first served; response time is measured from here, on the server.
    shown_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Response(Base):
    __tablename__ = "responses"
    __table_args__ = (
        CheckConstraint("choice IN ('left', 'right', 'real', 'fake')", name="ck_response_choice"),
        CheckConstraint("response_ms >= 0", name="ck_response_ms"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), unique=True)
    choice: Mapped[str] = mapped_column(String(5))
    response_ms: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

