"""The survey database through `Store`, on a SQLite file and on a real PostgreSQL server.

Studies are made from small synthetic photos with `Store.create_study` (the writer the builder
uses); participants go through the same calls the app makes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import random
import re
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import MetaData, Table, create_engine, insert, inspect, select, text

from colorize.pixels import gray_image
from survey import SurveyError
from survey.models import ADDED_COLUMNS, SCHEMA_VERSION, Base, ClientStart, Participant, SchemaVersion
from survey.report import ReportOptions, analyse
from survey.report import main as report_main
from survey.stimuli import catch_version
from survey.store import StimulusImage, Store, TrialView
from survey.study import Protocol

CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md"
SIZE = 24
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)


def synthetic_photo(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    """A smooth, colourful image: two random colours blended along a random direction."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    angle = rng.uniform(0, np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    t = (t - t.min()) / (np.ptp(t) + 1e-9)
    pixels = (1 - t) * a + t * b + rng.normal(0, 6, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def tinted(color: tuple[int, int, int]):
    """A stand-in colorization method: the gray version blended with a colour."""
    return lambda gray: Image.blend(gray, Image.new("RGB", gray.size, color), 0.3)


FAKE_METHODS = {"gray": lambda gray: gray, "warm": tinted((255, 120, 0)), "cool": tinted((0, 120, 255))}


def make_study(store: Store, name: str = "s", *, n_images: int = 16, methods=("gray", "warm", "cool"), seed: int = 0, **protocol):
    """A study of `n_images` synthetic photos, with a fake per method and a catch version each.

    A method called "copy" makes a "fake" identical to the real photo.
    """
    protocol = Protocol(**{"practice_trials": 2, "test_trials": 10, "catch_rate": 0.2, "image_size": SIZE, **protocol})
    rng = np.random.default_rng(seed)
    stimuli = []
    for i in range(n_images):
        real = synthetic_photo(rng)
        gray = gray_image(real)
        stimuli.append(StimulusImage(f"img{i:02d}", "real", real))
        stimuli.append(StimulusImage(f"img{i:02d}", "catch", catch_version(real)))
        stimuli += [StimulusImage(f"img{i:02d}", m, real.copy() if m == "copy" else FAKE_METHODS[m](gray)) for m in methods]
    return store.create_study(name, protocol, stimuli)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'survey.sqlite'}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    # Empty the shared database for the next test: much cheaper than a database per test, each
    # of which copies PostgreSQL's template (and takes as long again to delete at the end).
    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    yield store
    store.close()


def walk(store: Store, token: str, choose=lambda trial: trial.choices[0]) -> list:
    """Answer every remaining trial; returns the AnswerResults."""
    results = []
    while (trial := store.next_trial(token)) is not None:
        results.append(store.answer(token, trial.trial_id, choose(trial)))
    return results


def count_responses(store: Store, study: str) -> int:
    return int(store.trials_frame(study)["answered"].sum())


# -- a participant's way through a study ---------------------------------------------------


def test_participant_walks_through_consent_practice_and_test(store):
    make_study(store)
    token = store.start_participant("s")
    assert store.progress(token).phase == "consent"
    with pytest.raises(SurveyError, match="agree"):
        store.next_trial(token)
    store.consent(token)

    seen = []
    results = []
    while (trial := store.next_trial(token)) is not None:
        seen.append(trial)
        assert store.next_trial(token).trial_id == trial.trial_id  # a reload shows the same trial
        assert len(trial.images) == 2 and all(img.startswith(b"\x89PNG") for img in trial.images)
        assert trial.prompt == "Which one is the real photo?" and trial.choices == ("left", "right")
        assert trial.exposure_ms == 1000
        results.append(store.answer(token, trial.trial_id, "left"))

    assert [(t.phase, t.index, t.total) for t in seen] == [("practice", 1, 2), ("practice", 2, 2)] + [
        ("test", i, 10) for i in range(1, 11)
    ]
    practice, test = results[:2], results[2:]
    assert all(r.feedback and r.correct is not None and r.stored for r in practice)
    assert all(("Correct" in r.feedback) == r.correct for r in practice)
    assert all(r.feedback is None and r.correct is None for r in test)
    assert [r.finished for r in results] == [False] * 11 + [True]

    assert store.is_finished(token)
    progress = store.progress(token)
    assert progress.finished and (progress.practice_done, progress.test_done) == (2, 10)
    frame = store.trials_frame("s")
    # The score counts what the participant saw as test trials: the 2 catch trials too.
    scored = frame[frame["phase"] != "practice"]
    assert store.participant_score(token).correct == int(scored["correct"].sum())
    assert store.participant_score(token).answered == 10
    assert frame.loc[frame["phase"] == "practice", "correct"].tolist() == [r.correct for r in practice]


def test_trial_view_reveals_nothing_about_the_answer(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    assert {f.name for f in dataclasses.fields(TrialView)} == {
        "trial_id", "phase", "index", "total", "mode", "prompt", "choices", "exposure_ms", "images", "exposure_over"
    }  # fmt: skip
    phases = []
    while (trial := store.next_trial(token)) is not None:
        phases.append(trial.phase)
        store.answer(token, trial.trial_id, "right")
    # Catch trials are presented as ordinary test trials.
    assert set(phases) == {"practice", "test"}
    assert (store.trials_frame("s")["phase"] == "catch").sum() == 2


def test_a_fresh_store_resumes_the_same_participant_at_the_same_trial(store, db_url):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    for _ in range(3):
        trial = store.next_trial(token, now=T0)
        store.answer(token, trial.trial_id, "left", now=T0 + timedelta(seconds=1))
    waiting = store.next_trial(token, now=T0)
    store.close()

    reopened = Store(db_url)
    try:
        again = reopened.next_trial(token, now=T0 + timedelta(milliseconds=500))  # within its 1 s exposure
        assert again.trial_id == waiting.trial_id and again.index == waiting.index and again.images == waiting.images
        reopened.answer(token, again.trial_id, "right", now=T0 + timedelta(seconds=2))
        frame = reopened.trials_frame("s").set_index("trial_id")
        # Response time runs from the first time the trial was served, not from the reload.
        assert frame.loc[again.trial_id, "response_ms"] == pytest.approx(2000.0)
        assert reopened.progress(token).practice_done + reopened.progress(token).test_done == 4
    finally:
        reopened.close()


def test_response_time_is_measured_on_the_server(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    trial = store.next_trial(token, now=T0)
    store.answer(token, trial.trial_id, "left", now=T0 + timedelta(milliseconds=1234))
    row = store.trials_frame("s").set_index("trial_id").loc[trial.trial_id]
    assert row["response_ms"] == pytest.approx(1234.0)
    assert row["answered_at"] == pd.Timestamp(T0 + timedelta(milliseconds=1234))


def test_a_double_submit_stores_one_response_and_returns_the_first(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    trial = store.next_trial(token)
    first = store.answer(token, trial.trial_id, "left")
    second = store.answer(token, trial.trial_id, "right")
    assert first.stored and not first.duplicate
    assert not second.stored and second.duplicate
    assert (second.correct, second.feedback) == (first.correct, first.feedback)
    frame = store.trials_frame("s")
    assert count_responses(store, "s") == 1
    assert frame.set_index("trial_id").loc[trial.trial_id, "choice"] == "left"
    # The participant moved on by exactly one trial.
    assert store.next_trial(token).index == 2


def test_simultaneous_clicks_on_one_trial_store_one_response(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    with ThreadPoolExecutor(max_workers=4) as pool:
        while (trial := store.next_trial(token)) is not None:
            barrier = threading.Barrier(4)

            def click(choice, trial_id=trial.trial_id, barrier=barrier):
                barrier.wait()
                return store.answer(token, trial_id, choice)

            results = list(pool.map(click, ["left", "right", "left", "right"]))
            assert sum(r.stored for r in results) == 1
    assert count_responses(store, "s") == 12 and store.is_finished(token)


def test_a_finished_participant_cannot_answer_again(store):
    make_study(store)
    other = store.start_participant("s")
    store.consent(other)
    other_trial = store.next_trial(other)
    token = store.start_participant("s")
    store.consent(token)
    results = walk(store, token)
    last = store.trials_frame("s").query("answered").iloc[-1]
    before = store.trials_frame("s")

    assert results[-1].finished and store.next_trial(token) is None
    with pytest.raises(SurveyError, match="already finished"):
        store.answer(token, other_trial.trial_id, "left")
    again = store.answer(token, int(last["trial_id"]), "right" if last["choice"] == "left" else "left")
    assert not again.stored and again.finished
    pd.testing.assert_frame_equal(store.trials_frame("s"), before)


def test_mistakes_raise_one_sentence_errors_and_store_nothing(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    trial = store.next_trial(token)
    with pytest.raises(SurveyError, match="unknown"):
        store.next_trial("not-a-token")
    with pytest.raises(SurveyError, match="unknown"):
        store.answer("not-a-token", trial.trial_id, "left")
    with pytest.raises(SurveyError, match="not an answer"):
        store.answer(token, trial.trial_id, "real")  # a single-mode answer in a pair study
    with pytest.raises(SurveyError, match="not the trial on screen"):
        store.answer(token, trial.trial_id + 1, "left")  # the next trial, not yet shown
    with pytest.raises(SurveyError, match="whole number, not 'seven'"):
        store.answer(token, "seven", "left")
    with pytest.raises(SurveyError, match="no study called"):
        store.start_participant("nope")
    intruder = store.start_participant("s")
    store.consent(intruder)
    with pytest.raises(SurveyError, match="does not belong"):
        store.answer(intruder, trial.trial_id, "left")
    assert count_responses(store, "s") == 0


# -- study assignment ----------------------------------------------------------------------


def reach_the_test(store: Store, study: str = "s", *, now: datetime | None = None, **start) -> str:
    """A new participant who answers the practice trials and is served the first test trial."""
    token = store.start_participant(study, now=now, **start)
    store.consent(token, now=now)
    while (trial := store.next_trial(token, now=now)).phase == "practice":
        store.answer(token, trial.trial_id, trial.choices[0], now=now)
    return token


def test_thirty_participants_get_balanced_plans(store):
    make_study(store, n_images=20, practice_trials=3, test_trials=14, catch_rate=0.1)
    for _ in range(30):
        reach_the_test(store)
    frame = store.trials_frame("s")
    assert frame["participant"].nunique() == 30 and len(frame) == 30 * 17
    for _, rows in frame.groupby("participant"):
        assert rows["image_key"].is_unique  # no photo twice to one person
        assert rows["position"].tolist() == list(range(17))
        assert rows["phase"].tolist()[:3] == ["practice"] * 3
        assert (rows["phase"] == "catch").sum() == 1  # round(14 * 0.1)
        left = (rows["real_side"] == "left").sum()
        assert abs(left - len(rows) / 2) <= 1
        tested = rows[rows["phase"] == "test"]["method"].value_counts()
        assert set(tested.index) == {"gray", "warm", "cool"} and tested.max() - tested.min() <= 1
    totals = frame[frame["phase"] == "test"]["method"].value_counts()
    assert totals.max() - totals.min() <= 1
    # Orders differ between participants.
    orders = {tuple(rows["image_key"]) for _, rows in frame.groupby("participant")}
    assert len(orders) == 30


def test_single_mode_shows_real_photos_half_the_time(store):
    make_study(store, mode="single", methods=("warm", "cool"), test_trials=11, catch_rate=0.1)
    tokens = [store.start_participant("s") for _ in range(6)]
    for token in tokens:
        store.consent(token)
        trial = store.next_trial(token)
        assert len(trial.images) == 1 and trial.choices == ("real", "fake")
        assert trial.prompt == "Is this photo real or fake?"
        walk(store, token, choose=lambda t: "real")
    frame = store.trials_frame("s")
    for _, rows in frame.groupby("participant"):
        plain = rows[rows["phase"] == "test"]
        assert abs(plain["is_real"].sum() - len(plain) / 2) <= 1
    assert frame["real_side"].isna().all()
    reals = frame[frame["method"] == "real"]
    assert reals["is_real"].all() and reals["fooled"].isna().all() and reals["correct"].all()
    fakes = frame[frame["method"] != "real"]
    assert (~fakes["is_real"].astype(bool)).all() and fakes["fooled"].all() and not fakes["correct"].any()
    assert frame["judged_real"].all()


def test_too_few_images_clips_the_trial_counts_with_a_warning(store, caplog):
    with caplog.at_level("WARNING"):
        make_study(store, n_images=5, practice_trials=3, test_trials=20, one_method_per_image=False)
    assert "Only 5 images" in caplog.text
    protocol = store.get_protocol("s")
    assert protocol.practice_trials + protocol.test_trials == 5 and protocol.practice_trials >= 1
    token = store.start_participant("s")
    store.consent(token)
    assert len(walk(store, token)) == 5


# -- the trials frame, export and status -----------------------------------------------------


def contract_columns() -> list[str]:
    """The trials_frame columns as docs/CONTRACTS.md lists them (so the test follows the contract)."""
    bullet = CONTRACTS.read_text().split("columns:", 1)[1].split("\n- ", 1)[0].split("\n## ", 1)[0]
    while re.search(r"\([^()]*\)", bullet):  # drop the (explanations), innermost first
        bullet = re.sub(r"\([^()]*\)", "", bullet)
    return [name.strip(" `.\n") for name in bullet.split(",")]


def test_trials_frame_has_exactly_the_contract_columns(store):
    make_study(store)
    assert list(store.trials_frame("s").columns) == contract_columns()  # an empty study too
    token = store.start_participant("s")
    store.consent(token)
    walk(store, token)
    store.start_participant("s")  # assigned its practice trials, not answered
    frame = store.trials_frame("s")
    assert list(frame.columns) == contract_columns()
    assert frame["participant_finished"].dtype == bool and frame["answered"].dtype == bool
    assert frame["is_real"].isna().all()  # pair mode
    assert set(frame["real_side"]) == {"left", "right"}
    assert isinstance(frame["answered_at"].dtype, pd.DatetimeTZDtype) and str(frame["answered_at"].dt.tz) == "UTC"
    open_rows = frame[~frame["answered"]]
    assert len(open_rows) == 2 and open_rows["choice"].isna().all() and open_rows["response_ms"].isna().all()
    assert all(v is None for v in open_rows["slow"]) and not frame["reshown"].any() and frame["reshown"].dtype == bool
    assert all(v is None for v in open_rows["correct"]) and all(v is None for v in open_rows["fooled"])
    done = frame[frame["answered"]]
    assert (done["fooled"] == ~done["correct"].astype(bool)).all()
    assert set(done["method"]) <= {"gray", "warm", "cool", "catch"} and (done["phase"] == "catch").sum() == 2
    assert not frame["participant"].str.contains(token[:8]).any()  # pseudonyms, never the token


def test_the_answer_key_and_stored_images_for_simulations_and_reports(store):
    make_study(store, mode="single", methods=("warm",))
    token = store.start_participant("s")
    store.consent(token)
    frame = store.trials_frame("s").set_index("trial_id")
    for trial_id, row in frame.iterrows():
        truth = store.trial_truth(trial_id)
        assert (truth.phase, truth.image_key, truth.method, truth.is_real) == (
            row["phase"], row["image_key"], row["method"], row["is_real"]
        )  # fmt: skip
    view = store.next_trial(token)
    truth = store.trial_truth(view.trial_id)
    # What was shown is the stored stimulus through the trial's presentation, and can be re-rendered.
    assert view.images == store.trial_images(view.trial_id) == store.trial_images(str(view.trial_id))
    assert view.images != (store.stimulus_png("s", truth.image_key, truth.method),)
    assert store.stimulus_png("s", "img00", "no-such-method") is None
    with pytest.raises(SurveyError, match="does not exist"):
        store.trial_truth(10**9)


def test_export_status_and_listing(store, tmp_path):
    make_study(store, name="first")
    make_study(store, name="second", mode="single")
    assert [s.name for s in store.list_studies()] == ["first", "second"]
    summary = store.list_studies()[0]
    assert (summary.mode, summary.images, summary.methods) == ("pair", 16, ("cool", "gray", "warm"))
    tokens = [store.start_participant("first") for _ in range(3)]
    for token in tokens[:2]:
        store.consent(token)
    walk(store, tokens[0])
    trial = store.next_trial(tokens[1])
    store.answer(tokens[1], trial.trial_id, "left")

    status = store.study_status("first")
    assert status["participants_started"] == 3 and status["participants_consented"] == 2
    assert status["participants_finished"] == 1 and status["responses"] == 13
    assert status["trials_assigned"] == 12 + 2 + 2  # test trials come when the test starts
    assert sum(c["responses"] for c in status["per_method"].values()) == 13

    out = tmp_path / "first.csv"
    assert store.export_responses_csv("first", out) == 13
    exported = pd.read_csv(out)
    assert list(exported.columns) == contract_columns() and len(exported) == 13
    buffer = io.StringIO()
    store.export_responses_csv("second", buffer)
    assert buffer.getvalue().splitlines() == [",".join(contract_columns())]


def test_creating_a_study_is_all_or_nothing(store):
    make_study(store)
    stimuli_before = store.study_status("s")
    with pytest.raises(SurveyError, match="already exists"):
        make_study(store)
    with pytest.raises(SurveyError, match="has no cool stimulus"):
        store.create_study(
            "broken",
            Protocol(image_size=SIZE),
            [StimulusImage("a", "real", Image.new("RGB", (SIZE, SIZE))), StimulusImage("a", "warm", Image.new("RGB", (SIZE, SIZE))),
             StimulusImage("b", "real", Image.new("RGB", (SIZE, SIZE))), StimulusImage("b", "cool", Image.new("RGB", (SIZE, SIZE)))],
        )  # fmt: skip
    with pytest.raises(SurveyError, match="pixels"):
        store.create_study("small", Protocol(image_size=SIZE), [StimulusImage("a", "real", Image.new("RGB", (8, 8)))])
    assert [s.name for s in store.list_studies()] == ["s"]
    assert store.study_status("s") == stimuli_before


# -- many people at once -------------------------------------------------------------------


@pytest.mark.slow
def test_fifty_concurrent_participants_lose_and_duplicate_nothing(store):
    # Few trials each: the point is 50 people writing at once, not long sessions.
    make_study(store, n_images=8, practice_trials=1, test_trials=4, catch_rate=0.25)

    def participant(number: int) -> tuple[str, int]:
        token = store.start_participant("s")
        store.consent(token)
        stored = 0
        while (trial := store.next_trial(token)) is not None:
            choice = trial.choices[number % 2]
            stored += store.answer(token, trial.trial_id, choice).stored
            stored += store.answer(token, trial.trial_id, choice).stored  # an impatient second click
        return token, stored

    with ThreadPoolExecutor(max_workers=12) as pool:
        outcomes = list(pool.map(participant, range(50)))

    assert all(stored == 5 for _, stored in outcomes)
    frame = store.trials_frame("s")
    assert frame["participant"].nunique() == 50 and len(frame) == 250
    assert frame["answered"].all() and frame["participant_finished"].all()
    assert frame["trial_id"].is_unique
    assert all(store.is_finished(token) for token, _ in outcomes)
    # The method rotation held up under concurrent starts: every ordinal used once.
    assert sorted(Counter(frame["participant"]).values()) == [5] * 50
    assert sorted(frame["participant"].unique()) == [f"P{i:04d}" for i in range(1, 51)]


# -- what a participant receives: a presentation of its own per trial (issue 14, point 1) -----------


def served_trials(store: Store, participants: int, study: str = "s") -> list[tuple[tuple[bytes, ...], object]]:
    """Every trial that `participants` people are served, as (images, answer key), in order."""
    served = []
    for _ in range(participants):
        token = store.start_participant(study)
        store.consent(token)
        while (trial := store.next_trial(token)) is not None:
            served.append((trial.images, store.trial_truth(trial.trial_id)))
            store.answer(token, trial.trial_id, trial.choices[0])
    return served


def partner_attack(pairs: list[tuple[bytes, bytes]]) -> list[str | None]:
    """The attack of issue 14: over many participations, the real photo of a source image is the one
    image that appears with more than one partner (each fake appears only beside its real photo).
    Images are told apart by their bytes. Returns the guessed real side per pair, None on a tie."""
    partners: dict[bytes, set[bytes]] = defaultdict(set)
    for left, right in pairs:
        partners[left].add(right)
        partners[right].add(left)
    return [
        "left" if len(partners[left]) > len(partners[right]) else "right" if len(partners[right]) > len(partners[left]) else None
        for left, right in pairs
    ]


def attack_accuracy(guesses: list[str | None], truths: list[str], seed: int = 0) -> float:
    """Share of pairs the attack gets right, a fair coin deciding the ties."""
    coin = random.Random(seed)
    return float(np.mean([(guess or coin.choice(("left", "right"))) == truth for guess, truth in zip(guesses, truths)]))


def test_the_partner_and_byte_identity_attacks_score_at_chance(store):
    make_study(store, one_method_per_image=False)
    served = served_trials(store, 8)  # 96 pairs: each photo about 6 times, beside all three methods
    truths = [truth.real_side for _, truth in served]
    as_stored = [
        tuple(store.stimulus_png("s", truth.image_key, m) for m in ((("real", truth.method) if side == "left" else (truth.method, "real"))))
        for (_, truth), side in zip(served, truths)
    ]  # fmt: skip

    # The attacks are real: on the stored bytes (what was sent before presentations) they find the real photo.
    stored_guesses = partner_attack(as_stored)
    assert sum(g is not None for g in stored_guesses) > 0.9 * len(served)
    assert attack_accuracy(stored_guesses, truths) > 0.95

    # On what participants receive, every image has exactly one partner: no evidence, a coin's accuracy.
    guesses = partner_attack([images for images, _ in served])
    assert all(guess is None for guess in guesses)
    assert 0.35 < attack_accuracy(guesses, truths) < 0.65

    # Byte identity: no shown image (real or fake) ever repeats, so two participations share nothing.
    shown = [hashlib.sha256(image).digest() for images, _ in served for image in images]
    assert len(set(shown)) == len(shown)
    stored = {hashlib.sha256(image).digest() for pair in as_stored for image in pair}
    assert not stored & set(shown)  # no stored stimulus is ever sent as it is


def thumbnail_ids(pngs: list[bytes], tolerance: float = 8.0) -> list[int]:
    """Which picture each image is, told apart by eye-like matching instead of bytes: 6x6 colour
    thumbnails within `tolerance` levels (mean absolute difference) are the same picture. The
    presentations' 3% crop and 1-level dither move a thumbnail by 1-3 levels; another method's
    colours or another photo, by tens."""
    thumbnails = [np.asarray(Image.open(io.BytesIO(png)).convert("RGB").resize((6, 6), Image.Resampling.BOX), dtype=float) for png in pngs]
    representatives: list[np.ndarray] = []
    ids = []
    for thumbnail in thumbnails:
        match = next((i for i, known in enumerate(representatives) if np.abs(known - thumbnail).mean() < tolerance), None)
        if match is None:
            representatives.append(thumbnail)
            match = len(representatives) - 1
        ids.append(match)
    return ids


def thumbnail_partner_attack(served: list[tuple[tuple[bytes, ...], object]]) -> list[str | None]:
    """The partner attack on pictures matched by their thumbnails (`thumbnail_ids`), not their bytes."""
    ids = thumbnail_ids([image for images, _ in served for image in images])
    return partner_attack(list(zip(ids[0::2], ids[1::2])))


def test_matching_thumbnails_finds_the_real_photo_unless_each_photo_has_one_method(store):
    """A crop and a dither change every byte but not what the pictures look like: matched by eye (or
    by thumbnails), the real photo is still the one picture seen beside several fakes. With
    `one_method_per_image` every picture has one partner in every participation: a coin's accuracy."""
    make_study(store, "rotating", one_method_per_image=False)
    served = served_trials(store, 8, study="rotating")  # each photo about 6 times, beside its three fakes and catch version
    truths = [truth.real_side for _, truth in served]
    assert attack_accuracy(thumbnail_partner_attack(served), truths) > 0.9

    make_study(store, "tied", one_method_per_image=True)
    # Practice images are a pool of their own, answered with feedback: the attack is on the test trials.
    served = [trial for trial in served_trials(store, 8, study="tied") if trial[1].phase != "practice"]
    truths = [truth.real_side for _, truth in served]
    by_image = defaultdict(set)
    for _, truth in served:
        by_image[truth.image_key].add(truth.method)
    assert all(len(methods) == 1 for methods in by_image.values())  # one partner per photo, catch photos included
    guesses = thumbnail_partner_attack(served)
    assert sum(guess is not None for guess in guesses) <= 0.05 * len(served)
    assert 0.35 < attack_accuracy(guesses, truths) < 0.65


def test_both_images_of_a_pair_get_the_same_presentation_and_single_mode_too(store):
    make_study(store, methods=("copy",))  # every "fake" is a copy of its real photo
    for images, truth in served_trials(store, 2):
        if truth.method == "copy":
            assert images[0] == images[1]  # identical inputs, one transform: identical outputs
        else:
            assert images[0] != images[1]  # a catch trial
    make_study(store, "single", mode="single", methods=("warm",))
    shown = [images[0] for images, _ in served_trials(store, 4, study="single")]
    assert len(set(shown)) == len(shown)


def test_decoded_stimuli_are_cached_within_a_byte_budget_and_trials_render_the_same_either_way(store):
    from survey.store import _PixelCache

    cache = _PixelCache(budget_bytes=2 * 12)
    images = [Image.new("RGB", (2, 2), (value, 0, 0)) for value in range(3)]  # 12 bytes each
    cache.put("a", images[0]), cache.put("b", images[1])
    assert cache.get("a") is images[0]  # used: "b" is now the oldest
    cache.put("c", images[2])
    assert cache.get("b") is None and cache.get("a") is images[0] and cache.get("c") is images[2]
    assert cache.put("big", Image.new("RGB", (4, 4))) is not None and cache.get("big") is None  # over budget: not kept

    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    trial = store.next_trial(token)
    store._pixels = _PixelCache(budget_bytes=0)  # nothing cached: every image decoded from the database
    assert store.trial_images(trial.trial_id) == trial.images


# -- who takes a place in the method rotation (issue 14, point 5) ---------------------------------


def rotation_slots_of(url: str) -> list[int | None]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.scalars(select(Participant.rotation_slot).order_by(Participant.ordinal)))
    finally:
        engine.dispose()


def test_participants_who_leave_before_the_test_do_not_skew_the_method_balance(store, db_url):
    make_study(store, n_images=16, practice_trials=2, test_trials=10, catch_rate=0.2)  # 8 scored trials, 3 methods
    for _ in range(6):
        walk(store, reach_the_test(store))
        store.start_participant("s")  # agrees to nothing
        orphan = store.start_participant("s")  # agrees, answers one practice trial, leaves
        store.consent(orphan)
        store.answer(orphan, store.next_trial(orphan).trial_id, "left")
    # Before, every start took the next slot (0, 3, 6, ...: always slot 0 of 3), so finishers
    # saw the first method 18 times and the third 12 times.
    assert store.finished_balance("s") == {"cool": 16, "gray": 16, "warm": 16}
    assert store.study_status("s")["per_method"]["warm"]["finished_trials"] == 16
    assert [slot for slot in rotation_slots_of(db_url) if slot is not None] == [0, 1, 2] * 2
    frame = store.trials_frame("s")
    assert frame.groupby("participant")["phase"].apply(lambda p: (p != "practice").sum()).tolist() == [10, 0, 0] * 6


def test_a_participant_gone_quiet_frees_their_slot(store, db_url):
    make_study(store)
    reach_the_test(store, now=T0)  # slot 0, then silence
    reach_the_test(store, now=T0 + timedelta(minutes=5))  # the first is still active: slot 1
    walk(store, reach_the_test(store, now=T0 + timedelta(minutes=6)))  # slot 2, finishes (holds it for good)
    reach_the_test(store, now=T0 + timedelta(minutes=40))  # the first two are gone: slot 0 again
    reach_the_test(store, now=T0 + timedelta(minutes=41))  # slot 1
    reach_the_test(store, now=T0 + timedelta(minutes=42))  # all even: the lowest, 0
    assert rotation_slots_of(db_url) == [0, 1, 2, 0, 1, 0]


def test_test_trials_are_assigned_once_when_two_requests_race(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    for _ in range(2):
        store.answer(token, store.next_trial(token).trial_id, "left")
    barrier = threading.Barrier(4)

    def serve(_):
        barrier.wait()
        return store.next_trial(token).trial_id

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert len(set(pool.map(serve, range(4)))) == 1
    frame = store.trials_frame("s")
    assert len(frame) == 12 and frame["position"].is_unique
    assert store.progress(token).test_total == 10


def test_progress_counts_the_test_before_it_is_assigned_and_finishing_needs_it(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    for _ in range(2):
        result = store.answer(token, store.next_trial(token).trial_id, "left")
    assert not result.finished and not store.is_finished(token)  # the test is still to come
    progress = store.progress(token)
    assert (progress.phase, progress.practice_done, progress.test_total) == ("test", 2, 10)


# -- how many participants one client may start (issue 14, point 5) ------------------------------


def test_starts_are_limited_per_client_and_window_and_the_client_is_not_stored(db_url):
    limited = Store(db_url, max_starts_per_client=3, start_window=timedelta(minutes=10))
    try:
        make_study(limited)
        make_study(limited, "other")
        ip = "203.0.113.77"
        for minute in range(3):
            limited.start_participant("s", client_key=ip, now=T0 + timedelta(minutes=minute))
        with pytest.raises(SurveyError, match="too many times from your connection in the last 10 minutes"):
            limited.start_participant("s", client_key=ip, now=T0 + timedelta(minutes=9))
        limited.start_participant("s", client_key="198.51.100.1", now=T0 + timedelta(minutes=9))  # someone else
        limited.start_participant("other", client_key=ip, now=T0 + timedelta(minutes=9))  # another study
        limited.start_participant("s", client_key=ip, now=T0 + timedelta(minutes=10, seconds=1))  # the first has expired
        limited.start_participant("s", now=T0 + timedelta(minutes=10, seconds=2))  # no key: no limit

        assert limited.list_studies()[0].participants == 6
        engine = create_engine(db_url)
        with engine.connect() as connection:
            buckets = list(connection.scalars(select(ClientStart.client_bucket)))
            dumped = [str(row) for table in Base.metadata.sorted_tables for row in connection.execute(select(table))]
        engine.dispose()
        assert all(len(b) == 5 for b in buckets) and len(buckets) <= 6  # expired starts are deleted
        assert not any(ip in row or "198.51.100.1" in row for row in dumped)
    finally:
        limited.close()


def test_simultaneous_starts_from_one_client_stop_at_the_limit(db_url):
    limited = Store(db_url, max_starts_per_client=3)
    try:
        make_study(limited)
        barrier = threading.Barrier(8)

        def start(_):
            barrier.wait()
            try:
                return limited.start_participant("s", client_key="192.0.2.9")
            except SurveyError:
                return None

        with ThreadPoolExecutor(max_workers=8) as pool:
            tokens = list(pool.map(start, range(8)))
        assert sum(t is not None for t in tokens) == 3 and limited.list_studies()[0].participants == 3
    finally:
        limited.close()


# -- inputs (issue 14, point 7) --------------------------------------------------------------------


def test_trial_ids_must_be_whole_numbers_and_errors_quote_only_an_excerpt(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    trial = store.next_trial(token)
    with pytest.raises(SurveyError, match=r"^A trial id is a whole number, not '86\.9'\.$"):
        store.answer(token, 86.9, "left")
    with pytest.raises(SurveyError, match="whole number"):
        store.answer(token, True, "left")
    huge = "x" * 10_000_000
    for call in (lambda: store.answer(token, trial.trial_id, huge), lambda: store.answer(token, huge, "left"),
                 lambda: store.start_participant(huge), lambda: store.get_protocol(huge + "\n<script>")):  # fmt: skip
        with pytest.raises(SurveyError) as error:
            call()
        assert len(str(error.value)) < 200 and re.search(r"\(10,000,0\d\d characters\)", str(error.value))
        assert "\n" not in str(error.value)
    assert count_responses(store, "s") == 0
    assert store.answer(token, str(trial.trial_id), "left").stored  # "86" is fine
    second = store.next_trial(token)
    assert store.answer(token, float(second.trial_id), "left").stored  # and so is 86.0


# -- slow answers and re-shown trials (issue 14, points 4 and 7) ----------------------------------


def test_slow_answers_are_flagged_when_stored_and_counted_in_quality_control(store):
    make_study(store, max_response_ms=5_000)
    token = store.start_participant("s")
    store.consent(token)
    answer_times = []
    clock = T0
    while (trial := store.next_trial(token, now=clock)) is not None:
        seconds = 6 if trial.index == 2 else 1  # the second trial of each phase: slow
        clock += timedelta(seconds=seconds)
        store.answer(token, trial.trial_id, "left", now=clock)
        answer_times.append(seconds)
    frame = store.trials_frame("s")
    assert frame["slow"].tolist() == [t > 5 for t in answer_times] and sum(frame["slow"]) == 2
    qc = analyse(frame, options=ReportOptions(n_boot=20)).participants
    assert qc["slow_answers"].tolist() == [2]


def test_a_trial_served_again_after_its_exposure_is_recorded_and_the_report_flags_or_excludes_it(store, db_url, tmp_path):
    make_study(store, exposure_ms=1000, practice_trials=0, reshown_trials="exclude")
    token = store.start_participant("s")
    store.consent(token)
    first = store.next_trial(token, now=T0)
    assert not first.exposure_over
    again = store.next_trial(token, now=T0 + timedelta(milliseconds=800))  # within the exposure: a double click
    assert not again.exposure_over and not store.trials_frame("s")["reshown"].any()
    reloaded = store.next_trial(token, now=T0 + timedelta(seconds=5))
    assert reloaded.trial_id == first.trial_id and reloaded.exposure_over
    assert len(first.images) == len(again.images) == 2 and reloaded.images == ()  # never sent after the exposure
    assert not store.mark_reshown(token, first.trial_id)  # already recorded
    store.answer(token, first.trial_id, "left", now=T0 + timedelta(seconds=6))
    second = store.next_trial(token, now=T0 + timedelta(seconds=7))
    with pytest.raises(SurveyError, match="not the trial on screen"):
        store.mark_reshown(token, first.trial_id)
    assert store.mark_reshown(token, str(second.trial_id), now=T0 + timedelta(seconds=9))
    walk(store, token)

    frame = store.trials_frame("s")
    reshown = frame.loc[frame["reshown"], "trial_id"].tolist()
    assert sorted(reshown) == sorted([first.trial_id, second.trial_id])
    flagged = analyse(frame, options=ReportOptions(n_boot=20))
    assert flagged.participants["reshown_trials"].tolist() == [2]
    tested = frame[frame["phase"] == "test"]
    assert len(flagged.used) == len(tested)
    excluded = analyse(frame, options=ReportOptions(n_boot=20, exclude_reshown=True))
    assert len(excluded.used) == len(tested) - int(tested["reshown"].sum())
    assert not set(excluded.used["trial_id"]) & set(reshown)
    # The report takes the choice from the study's protocol (reshown_trials="exclude" here).
    assert report_main(["--db", db_url, "--study", "s", "--out", str(tmp_path / "report"), "--bootstrap", "10"]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "trials served again after their exposure window: 2, dropped from the analysis." in text


# -- databases made by the previous version (schema 1) ----------------------------------------------


def copy_as_schema_1(source_url: str, target_url: str) -> None:
    """Write the tables of `source_url` into `target_url` as the first version had them: without
    the columns and tables every later schema added."""
    old = MetaData()
    for table in Base.metadata.sorted_tables:
        if table.name in (ClientStart.__tablename__, SchemaVersion.__tablename__):
            continue
        added = {name for columns in ADDED_COLUMNS.values() for name in columns.get(table.name, ())}
        Table(table.name, old, *[column._copy() for column in table.columns if column.name not in added])
    source, target = create_engine(source_url), create_engine(target_url)
    try:
        old.create_all(target)
        with source.connect() as reading, target.begin() as writing:
            for table in old.sorted_tables:
                rows = [dict(row._mapping) for row in reading.execute(select(*[Base.metadata.tables[table.name].c[c.name] for c in table.columns]))]
                if rows:
                    writing.execute(insert(table), rows)
                if rows and target.dialect.name == "postgresql" and "id" in table.c and table.name != "stimuli":
                    # Rows copied with their ids leave the id sequence behind; a real old database's is not.
                    writing.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), (SELECT max(id) FROM {table.name}))"))
    finally:
        source.dispose()
        target.dispose()


def test_a_database_of_the_previous_version_is_upgraded_in_place(db_url, tmp_path):
    source_url = f"sqlite:///{tmp_path / 'schema2.sqlite'}"
    source = Store(source_url)
    make_study(source)
    finished = reach_the_test(source)
    walk(source, finished)
    midway = reach_the_test(source)
    source.answer(midway, source.next_trial(midway).trial_id, "right")
    before = source.trials_frame("s")
    source.close()
    copy_as_schema_1(source_url, db_url)

    upgraded = Store(db_url)  # upgrades
    try:
        engine = create_engine(db_url)
        with engine.connect() as connection:
            assert connection.scalar(select(SchemaVersion.version)) == SCHEMA_VERSION
            columns = {c["name"] for c in inspect(connection).get_columns("trials")}
            columns |= {f"stimuli.{c['name']}" for c in inspect(connection).get_columns("stimuli")}
        engine.dispose()
        assert {"reshown_at", "crop_size", "dither_seed", "stimuli.pool", "stimuli.record"} <= columns
        after = upgraded.trials_frame("s")
        pd.testing.assert_frame_equal(after.drop(columns=["slow"]), before.drop(columns=["slow"]))
        assert after.loc[after["answered"], "slow"].eq(False).all()
        # The participant half-way resumes; trials stored without a presentation are shown as stored.
        trial = upgraded.next_trial(midway)
        truth = upgraded.trial_truth(trial.trial_id)
        stored = {m: upgraded.stimulus_png("s", truth.image_key, m) for m in ("real", truth.method)}
        assert trial.images == ((stored["real"], stored[truth.method]) if truth.real_side == "left" else (stored[truth.method], stored["real"]))
        walk(upgraded, midway)
        assert upgraded.is_finished(midway) and rotation_slots_of(db_url) == [0, 1]
        walk(upgraded, reach_the_test(upgraded))  # a newcomer: presentation, and the emptiest slot
        assert rotation_slots_of(db_url) == [0, 1, 2]
    finally:
        upgraded.close()
    Store(db_url).close()  # opening an up-to-date database changes nothing


def test_a_newer_or_foreign_database_is_refused_with_a_sentence(db_url):
    Store(db_url).close()
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(SchemaVersion.__table__.update().values(version=99))
    with pytest.raises(SurveyError, match=r"newer version of this program \(tables version 99.*update the program"):
        Store(db_url)
    with engine.begin() as connection:
        connection.execute(SchemaVersion.__table__.update().values(version=2))
        connection.execute(text("ALTER TABLE responses DROP COLUMN answered_at"))
    engine.dispose()
    with pytest.raises(SurveyError, match="'responses' table without answered_at.*move it away"):
        Store(db_url)


# -- issue 27: one transaction per screen, a database that does not answer, secrets -----------------


def test_every_participant_screen_is_one_transaction(store):
    from sqlalchemy import event

    from survey.participant import ParticipantFlow

    make_study(store)
    flow = ParticipantFlow(store)
    begun: list[int] = []
    event.listen(store.engine, "begin", lambda connection: begun.append(1))

    def transactions(step):
        begun.clear()
        result = step()
        return len(begun), result

    assert transactions(lambda: flow.landing(None, {}))[0] == 1
    count, step = transactions(lambda: flow.open("s", {}))
    assert count == 1 and step.screen.kind == "consent"
    count, step = transactions(lambda: flow.consent("s", {}, client_key="203.0.113.9"))
    assert count == 1 and step.screen.kind == "instructions"
    tokens, screens = step.tokens, []
    count, step = transactions(lambda: flow.proceed("s", tokens))
    counts = [count]
    while step.screen.kind != "done":
        screens.append(step.screen.kind)
        if step.screen.kind == "feedback":
            count, step = transactions(lambda: flow.proceed("s", tokens))
        else:
            screen = step.screen.public()
            count, step = transactions(lambda: flow.answer("s", tokens, screen, "left"))
        counts.append(count)
        if len(screens) == 3:  # a reload in the middle of the test
            count, reloaded = transactions(lambda: flow.open("s", tokens))
            assert count == 1 and reloaded.screen.kind == "trial"
            step = reloaded
    assert set(counts) == {1} and "feedback" in screens and screens.count("trial") >= 10
    assert transactions(lambda: flow.open("s", tokens)) [0] == 1


def test_a_database_that_cannot_be_reached_is_one_sentence_with_its_password_masked(tmp_path):
    from survey.store import UNREACHABLE

    with pytest.raises(SurveyError) as raised:
        Store("postgresql://ann:s3cret@127.0.0.1:9/survey")  # nothing listens on port 9
    message = str(raised.value)
    assert "s3cret" not in message and "postgresql://ann:***@127.0.0.1:9/survey" in message
    assert message.startswith("The survey database ") and "check SURVEY_DB_URL (or --db)" in message and "\n" not in message
    with pytest.raises(SurveyError, match=r"^'ann:\*\*\*@host' is not a database URL") as raised:
        Store("ann:s3cret@host")
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SurveyError, match="cannot be created"):
        Store(f"sqlite:///{tmp_path / 'file' / 'survey.sqlite'}")

    # A database that stops answering after the start: every screen says so in one sentence.
    url = f"sqlite:///{tmp_path / 'gone' / 'survey.sqlite'}"
    store = Store(url)
    make_study(store)
    token = store.start_participant("s")
    store.close()
    for path in (tmp_path / "gone").iterdir():
        path.unlink()
    (tmp_path / "gone").rmdir()
    from survey.participant import ParticipantFlow

    flow = ParticipantFlow(store)
    assert flow.open("s", {"s": token}).screen.public()["message"] in (UNREACHABLE, "There is no study called 's'.")
    with pytest.raises(SurveyError, match=f"^{re.escape(UNREACHABLE)}$"):
        store.visit("s", token, action="proceed")
