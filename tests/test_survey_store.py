"""The survey database through `Store`, on a SQLite file and on a real PostgreSQL server.

Studies are made from small synthetic photos with `Store.create_study` (the writer the builder
uses); participants go through the same calls the app makes.
"""

from __future__ import annotations

import dataclasses
import io
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sqlalchemy import create_engine

from colorize.pixels import gray_image
from survey import SurveyError
from survey.models import Base
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
    """A study of `n_images` synthetic photos, with a fake per method and a catch version each."""
    protocol = Protocol(**{"practice_trials": 2, "test_trials": 10, "catch_rate": 0.2, "image_size": SIZE, **protocol})
    rng = np.random.default_rng(seed)
    stimuli = []
    for i in range(n_images):
        real = synthetic_photo(rng)
        gray = gray_image(real)
        stimuli.append(StimulusImage(f"img{i:02d}", "real", real))
        stimuli.append(StimulusImage(f"img{i:02d}", "catch", catch_version(real)))
        stimuli += [StimulusImage(f"img{i:02d}", m, FAKE_METHODS[m](gray)) for m in methods]
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
    scored = frame[frame["phase"] == "test"]
    assert store.participant_score(token).correct == int(scored["correct"].sum())
    assert store.participant_score(token).answered == 8  # 10 test trials, 2 of them catch
    assert frame.loc[frame["phase"] == "practice", "correct"].tolist() == [r.correct for r in practice]


def test_trial_view_reveals_nothing_about_the_answer(store):
    make_study(store)
    token = store.start_participant("s")
    store.consent(token)
    assert {f.name for f in dataclasses.fields(TrialView)} == {
        "trial_id", "phase", "index", "total", "mode", "prompt", "choices", "exposure_ms", "images"
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
        again = reopened.next_trial(token, now=T0 + timedelta(minutes=5))
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
    with pytest.raises(SurveyError, match="does not exist"):
        store.answer(token, "seven", "left")
    with pytest.raises(SurveyError, match="no study called"):
        store.start_participant("nope")
    intruder = store.start_participant("s")
    store.consent(intruder)
    with pytest.raises(SurveyError, match="does not belong"):
        store.answer(intruder, trial.trial_id, "left")
    assert count_responses(store, "s") == 0


# -- study assignment ----------------------------------------------------------------------


def test_thirty_participants_get_balanced_plans(store):
    make_study(store, n_images=20, practice_trials=3, test_trials=14, catch_rate=0.1)
    for _ in range(30):
        store.start_participant("s")
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
        make_study(store, n_images=5, practice_trials=3, test_trials=20)
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
    store.start_participant("s")  # assigned, not answered
    frame = store.trials_frame("s")
    assert list(frame.columns) == contract_columns()
    assert frame["participant_finished"].dtype == bool and frame["answered"].dtype == bool
    assert frame["is_real"].isna().all()  # pair mode
    assert set(frame["real_side"]) == {"left", "right"}
    assert isinstance(frame["answered_at"].dtype, pd.DatetimeTZDtype) and str(frame["answered_at"].dt.tz) == "UTC"
    open_rows = frame[~frame["answered"]]
    assert len(open_rows) == 12 and open_rows["choice"].isna().all() and open_rows["response_ms"].isna().all()
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
    assert view.images == (store.stimulus_png("s", truth.image_key, truth.method),)
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
    assert status["trials_assigned"] == 36
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
