"""survey.participant (the screens a participant goes through) and survey.admin.dashboard, without any UI."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from colorize.pixels import gray_image
from survey import SurveyError
from survey.admin import dashboard
from survey.build import build_study
from survey.participant import ParticipantFlow, Screen, token_for
from survey.store import Store
from survey.study import Protocol

ANSWER_KEYS = {"method", "is_real", "real_side", "image_key", "correct_choice", "stimulus_id", "images"}


def colourful(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([np.sin(2 * np.pi * (f * x + g * y) + p) for f, g, p in rng.uniform(0.3, 1.5, (3, 3))], -1)
    return Image.fromarray(((rgb * 0.5 + 0.5) * 255).astype(np.uint8))


@pytest.fixture
def store() -> Store:
    store = Store("sqlite://")
    sources = [(f"photo{i}", colourful(i)) for i in range(8)]
    for name, mode in (("pair-study", "pair"), ("single-study", "single")):
        protocol = Protocol(mode=mode, exposure_ms=400, practice_trials=1, test_trials=3, catch_rate=0.0, image_size=24)
        build_study(store, name=name, sources=sources, makers={"gray": gray_image}, protocol=protocol, progress=False)
    return store


def public(step) -> dict:
    shown = step.screen.public()
    assert not ANSWER_KEYS & set(shown)  # nothing that tells real from fake reaches the browser
    return shown


def test_consent_instructions_practice_feedback_test_done(store):
    flow = ParticipantFlow(store)
    first = flow.open("pair-study", {})
    assert first.tokens == {} and public(first)["screen"] == "consent"
    assert store.study_status("pair-study")["participants_started"] == 0  # nobody is registered before agreeing

    agreed = flow.consent("pair-study", {"other-study": "kept"})
    tokens = agreed.tokens
    assert set(tokens) == {"other-study", "pair-study"} and public(agreed)["screen"] == "instructions"

    trial = flow.proceed("pair-study", tokens).screen
    assert (trial.kind, trial.progress, trial.choices, len(trial.images)) == ("trial", "Practice 1 / 1", ("left", "right"), 2)
    assert trial.images[0].startswith(b"\x89PNG")

    feedback = flow.answer("pair-study", tokens, trial.public(), "Left").screen
    assert feedback.kind == "feedback" and feedback.feedback.startswith(("Correct!", "Not quite."))
    assert feedback.images == trial.images and feedback.trial_id == trial.trial_id  # shown again with the feedback
    assert feedback.images == store.trial_images(trial.trial_id)  # the trial's own presentation, not a stored stimulus
    assert feedback.progress == "Practice 1 / 1" and feedback.choices == ("left", "right")
    assert public(flow.open("pair-study", tokens))["progress"] == "1 / 3"  # answered: a reload goes on

    screen = flow.proceed("pair-study", tokens).screen
    for expected in ("2 / 3", "3 / 3"):
        screen = flow.answer("pair-study", tokens, screen.public(), "right").screen
        assert screen.kind == "trial" and screen.progress == expected  # no feedback in the test phase
    done = flow.answer("pair-study", tokens, screen.public(), "left").screen
    assert done.kind == "done" and done.score.startswith("You picked the real photo in ") and "of 3 test trials" in done.score
    assert store.is_finished(token_for(tokens, "pair-study"))

    # finished: opening or agreeing again shows the thank-you screen, with the same participant
    assert flow.open("pair-study", tokens).screen.kind == "done"
    again = flow.consent("pair-study", tokens)
    assert again.screen.kind == "done" and again.tokens["pair-study"] == tokens["pair-study"]
    assert store.study_status("pair-study")["participants_started"] == 1


def test_single_mode_scores_in_its_own_words(store):
    flow = ParticipantFlow(store)
    tokens = flow.consent("single-study", {}).tokens
    screen = flow.proceed("single-study", tokens).screen
    assert screen.choices == ("real", "fake") and len(screen.images) == 1
    while screen.kind in ("trial", "feedback"):
        screen = flow.proceed("single-study", tokens).screen if screen.kind == "feedback" else (
            flow.answer("single-study", tokens, screen.public(), "real").screen
        )
    assert screen.score.startswith("You were right in ")


def test_wrong_answers_and_missing_consent_are_one_sentence(store):
    flow = ParticipantFlow(store)
    with pytest.raises(SurveyError, match="^Please agree to take part first.$"):
        flow.proceed("pair-study", {})
    tokens = flow.consent("single-study", {}).tokens
    screen = flow.proceed("single-study", tokens).screen.public()
    with pytest.raises(SurveyError, match="'left' is not an answer here; choose real or fake."):
        flow.answer("single-study", tokens, screen, "left")
    with pytest.raises(SurveyError, match="^There is no trial on screen to answer; reload the page to continue.$"):
        flow.answer("single-study", tokens, {"screen": "done"}, "real")
    with pytest.raises(SurveyError, match="This participant code is unknown"):
        flow.answer("single-study", {"single-study": "made-up"}, screen, "real")


def test_a_reload_after_the_exposure_gets_no_images_and_is_asked_to_answer_from_memory(store):
    flow = ParticipantFlow(store)
    tokens = flow.consent("pair-study", {}).tokens
    trial = flow.proceed("pair-study", tokens).screen
    assert len(trial.images) == 2 and not trial.notice and "notice" not in trial.public()
    time.sleep(0.5)  # the page is reloaded after the study's 400 ms exposure
    assert flow.open("pair-study", tokens).screen.kind == "instructions"  # nothing answered yet: the instructions again
    again = flow.proceed("pair-study", tokens).screen
    assert again.kind == "trial" and again.trial_id == trial.trial_id and again.images == ()
    assert again.public()["notice"] == "These photos were already shown and are not shown again: please answer from memory."
    assert flow.answer("pair-study", tokens, again.public(), "left").screen.kind == "feedback"
    assert store.trials_frame("pair-study")["reshown"].tolist()[0]  # recorded, for the report to flag or exclude


def test_starts_count_against_the_visitors_address(store):
    store.max_starts_per_client = 2
    flow = ParticipantFlow(store)
    for _ in range(2):
        assert flow.consent("pair-study", {}, client_key="203.0.113.7").screen.kind == "instructions"
    with pytest.raises(SurveyError, match="started too many times from your connection"):
        flow.consent("pair-study", {}, client_key="203.0.113.7")
    assert flow.consent("pair-study", {}, client_key="198.51.100.1").screen.kind == "instructions"  # someone else


def test_a_token_the_database_forgot_is_dropped_and_the_participant_starts_afresh(store):
    flow = ParticipantFlow(store)
    step = flow.open("pair-study", {"pair-study": "from-a-reset-database", "single-study": "x"})
    assert step.tokens == {"single-study": "x"} and step.screen.kind == "consent"


def test_the_study_a_visitor_lands_in(store):
    flow = ParticipantFlow(store)
    assert flow.default_study() == "single-study"  # the newest, when there is no "demo"
    assert flow.pick_study("pair-study", {}) == "pair-study"  # the link's study
    tokens = flow.consent("pair-study", {}).tokens
    assert flow.pick_study(None, tokens) == "pair-study"  # the one they are part-way through
    assert flow.pick_study("no-such-study", {}) == "single-study"
    assert flow.open(None, {}).screen == Screen("closed", message="No study is running at the moment.")


def test_without_a_database_every_screen_is_closed_with_the_reason():
    flow = ParticipantFlow(None, unavailable="The study is not available right now: the disk is full.")
    assert flow.studies() == [] and flow.pick_study("x", {}) is None
    assert flow.open("x", {}).screen.public() == {"screen": "closed", "message": "The study is not available right now: the disk is full."}
    with pytest.raises(SurveyError, match="the disk is full"):
        flow.consent("x", {})


def test_dashboard_says_no_answers_yet_then_shows_table_and_plot(store):
    empty = dashboard(store, "single-study")
    assert "single mode" in empty.status and "No answers yet" in empty.status
    assert empty.table is None and empty.figure is None

    flow = ParticipantFlow(store)
    for answers in (("real", "fake"), ("fake", "real")):
        tokens = flow.consent("single-study", {}).tokens
        screen, turn = flow.proceed("single-study", tokens).screen, 0
        while screen.kind != "done":
            if screen.kind == "feedback":
                screen = flow.proceed("single-study", tokens).screen
                continue
            screen = flow.answer("single-study", tokens, screen.public(), answers[turn % 2]).screen
            turn += 1
    full = dashboard(store, "single-study", n_boot=50)
    assert "2 finished" in full.status and "No answers yet" not in full.status
    assert "Method balance among the 2 who finished (test trials, catch trials aside): gray 3, real 3; even." in full.status
    assert "Method balance: nobody has finished yet." in empty.status
    assert full.table.columns.tolist() == ["method", "gray", "real"]  # each fake method, and the real photos
    rows = full.table.set_index("method")
    assert rows.loc["trials"].tolist() == [3, 3]
    assert all(rate.endswith("%") for rate in rows.loc["rate"])
    axes = full.figure.axes[0]
    assert [label.get_text().split("\n")[0] for label in axes.get_xticklabels()] == ["gray", "real"]


def test_the_admin_view_explains_the_recurrence_risk_of_showing_every_method_with_every_photo():
    store = Store("sqlite://")
    sources = [(f"photo{i}", colourful(i)) for i in range(8)]
    for name, tied in (("tied", True), ("rotating", False)):
        protocol = Protocol(practice_trials=1, test_trials=3, catch_rate=0.0, image_size=24, one_method_per_image=tied)
        build_study(store, name=name, sources=sources, makers={"gray": gray_image, "copy": lambda gray: gray.copy()},
                    protocol=protocol, progress=False)  # fmt: skip
    assert "comes back beside changing fakes" in dashboard(store, "rotating").status
    assert "comes back beside changing fakes" not in dashboard(store, "tied").status
