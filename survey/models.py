"""The survey's tables (SQLAlchemy 2.0). Rules a race or a double click must not break live here.

studies         one row per study: its name, `Protocol` (JSON) and a record of who made it (JSON)
stimuli         every image shown, real or fake, as PNG bytes under a random opaque id, with its
                pool (practice or test) and a record of how it was made (JSON)
participants    one row per person taking part, found by a random secret token
trials          each participant's trials: the practice ones when they start, the test ones when
                they reach the test (so a reload resumes), each with its own `Presentation`
responses       at most one per trial (UNIQUE trial_id): a second click cannot store a second answer
client_starts   recent participant starts per client bucket, for the start limit (no link to anyone's answers)
schema_version  one row: the version of these tables, for `upgrade_schema`

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
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    false,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.schema import CreateColumn

from . import SurveyError

# The version of the tables below. Databases made before versions were recorded are version 1.
SCHEMA_VERSION = 3
# The columns each version added to tables that already existed; `upgrade_schema` adds them in
# place (ALTER TABLE .. ADD COLUMN), so an older database keeps its studies and participants.
ADDED_COLUMNS: dict[int, dict[str, tuple[str, ...]]] = {
    2: {
        "participants": ("rotation_slot",),
        "trials": ("reshown_at", "crop_left", "crop_top", "crop_size", "dither_seed"),
        "responses": ("slow",),
    },
    3: {"studies": ("record",), "stimuli": ("pool", "record"), "trials": ("dither_channels",)},
}


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
    # Facts about the study that are not how it is run: e.g. {"simulated": {...}} when
    # `survey.simulate` added answers (its true rates); None for a study of people only.
    record: Mapped[dict | None] = mapped_column(JSON)


class Stimulus(Base):
    __tablename__ = "stimuli"
    __table_args__ = (
        UniqueConstraint("study_id", "image_key", "method", name="uq_stimulus_image_method"),
        # "real" is the one real photo of an image; anything else is a fake (incl. "catch").
        CheckConstraint("(method = 'real') = is_real", name="ck_stimulus_real_method"),
        CheckConstraint("pool IS NULL OR pool IN ('practice', 'test')", name="ck_stimulus_pool"),
    )

    # Random hex, not a counter: an id must not say in which order (real first?) things were made.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    image_key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(100))
    is_real: Mapped[bool] = mapped_column(Boolean)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    # Which trials the image serves: "practice" (its feedback tells the answer, so never a test
    # trial) or "test"; None for studies stored before pools, whose images serve either.
    pool: Mapped[str | None] = mapped_column(String(8))
    # How it was made, for the report: a fake's method (model, checkpoint, settings, hints), a
    # real photo's colour resolution. Never sent to a participant.
    record: Mapped[dict | None] = mapped_column(JSON)


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
    # The Latin-square offset of the test trials' methods, given when the participant reaches the
    # test (None before), so that people who leave during consent or practice take no slot.
    rotation_slot: Mapped[int | None] = mapped_column(Integer, CheckConstraint("rotation_slot >= 0", name="ck_participant_slot"))


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
        # A presentation is all four numbers or none (none only for trials stored before schema 2).
        CheckConstraint(
            "(crop_left IS NULL AND crop_top IS NULL AND crop_size IS NULL AND dither_seed IS NULL) OR "
            "(crop_left >= 0 AND crop_top >= 0 AND crop_size > 0 AND dither_seed >= 0 AND "
            "crop_left IS NOT NULL AND crop_top IS NOT NULL AND crop_size IS NOT NULL AND dither_seed IS NOT NULL)",
            name="ck_trial_presentation",
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
    # The first time it was served again after its exposure window (a reload): its images were,
    # or could have been, seen for longer than the protocol allows.
    reshown_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The `stimuli.Presentation` of both images: crop square, then a +-1-level dither.
    crop_left: Mapped[int | None] = mapped_column(Integer)
    crop_top: Mapped[int | None] = mapped_column(Integer)
    crop_size: Mapped[int | None] = mapped_column(Integer)
    dither_seed: Mapped[int | None] = mapped_column(Integer)
    # 1: one dither step for all three channels; 3 (or None, before schema 3): a step per channel.
    dither_channels: Mapped[int | None] = mapped_column(Integer)


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
    # Slower than the protocol's max_response_ms when stored (the limit may change; this does not).
    slow: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ClientStart(Base):
    """One participant start from a client, kept only for `Store.start_window`.

    `client_bucket` is 20 bits of a hash of the client key (an IP address, say): enough to limit
    starts, while about 4,000 IPv4 addresses share each bucket, so it identifies nobody; and it
    is not linked to the participant it started.
    """

    __tablename__ = "client_starts"
    __table_args__ = (Index("ix_client_starts_lookup", "study_id", "client_bucket", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"))
    client_bucket: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class SchemaVersion(Base):
    """The version of these tables in this database (one row); databases from before it had none."""

    __tablename__ = "schema_version"
    __table_args__ = (CheckConstraint("id = 1", name="ck_schema_version_one_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)



def _columns(connection: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns(table)}


def upgrade_schema(connection: Connection, *, where: str) -> None:
    """Create the tables of a new database, or bring an older one up to SCHEMA_VERSION in place.

    Run inside one write transaction (which SQLite takes with BEGIN IMMEDIATE, and PostgreSQL
    serialises with an advisory lock), so two processes opening an old database upgrade it once.
    Participants of version 1 keep the rotation they had (their participant number). Raises
    SurveyError, naming `where`, for a newer database or tables this program cannot complete.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(7432014)"))  # any constant of our own
    tables = set(inspect(connection).get_table_names())
    if Study.__tablename__ not in tables:
        Base.metadata.create_all(connection)
        connection.execute(insert(SchemaVersion).values(id=1, version=SCHEMA_VERSION))
        return
    version = connection.scalar(select(SchemaVersion.version)) if SchemaVersion.__tablename__ in tables else 1
    if version is None:
        version = 1
    if version > SCHEMA_VERSION:
        raise SurveyError(
            f"The survey database {where} was written by a newer version of this program (tables version {version}, "
            f"this one knows {SCHEMA_VERSION}); update the program before opening it."
        )
    for step in range(version + 1, SCHEMA_VERSION + 1):
        for table, names in ADDED_COLUMNS.get(step, {}).items():
            present = _columns(connection, table) if table in tables else set()
            for name in names:
                if table in tables and name not in present:
                    column = Base.metadata.tables[table].c[name]
                    spec = CreateColumn(column).compile(dialect=connection.dialect)
                    connection.execute(text(f"ALTER TABLE {table} ADD COLUMN {spec}"))
        if step == 2 and Participant.__tablename__ in tables:
            connection.execute(update(Participant).values(rotation_slot=Participant.ordinal))
    Base.metadata.create_all(connection)  # the tables added since (checkfirst: the others stay)
    for table in Base.metadata.sorted_tables:
        missing = sorted({column.name for column in table.columns} - _columns(connection, table.name))
        if missing:
            raise SurveyError(
                f"The survey database {where} has a '{table.name}' table without {', '.join(missing)}, so it was "
                "not made by this program or its earlier versions; move it away (or point --db elsewhere) to start a new one."
            )
    if SchemaVersion.__tablename__ in tables and connection.scalar(select(SchemaVersion.id)) is not None:
        connection.execute(update(SchemaVersion).values(version=SCHEMA_VERSION))
    else:
        connection.execute(insert(SchemaVersion).values(id=1, version=SCHEMA_VERSION))
