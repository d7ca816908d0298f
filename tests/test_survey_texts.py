"""What participants read: texts written from the protocol, with the numbers and the grammar right."""

from __future__ import annotations

import re

import pytest

from survey import SurveyError
from survey.inputs import parse_id, quoted
from survey.store import Store
from survey.study import Protocol
from survey.texts import consent_text, estimated_minutes, instructions_text, plural, score_text
from test_survey_store import make_study, walk


def test_counts_have_their_singular_and_plural():
    assert (plural(1, "trial"), plural(0, "trial"), plural(3, "trial")) == ("1 trial", "0 trials", "3 trials")
    one = instructions_text(Protocol(practice_trials=1, test_trials=1, catch_rate=0.0))
    assert "The first trial is practice" in one and "Then comes 1 test trial, without feedback." in one
    assert "1 trials" not in one and "first 1" not in one
    many = instructions_text(Protocol(practice_trials=3, test_trials=20))
    assert "The first 3 trials are practice" in many and "Then come 20 test trials, without feedback." in many
    none = instructions_text(Protocol(practice_trials=0, test_trials=12))
    assert "practice" not in none and "There are 12 test trials, without feedback." in none


def test_single_mode_speaks_of_one_photo_and_the_exposure_comes_from_the_protocol():
    single = instructions_text(Protocol(mode="single", exposure_ms=1500))
    assert "The photo disappears after 1.5 seconds; you can answer after it is gone" in single
    assert "photos" not in single
    pair = instructions_text(Protocol(mode="pair", exposure_ms=1000))
    assert "The photos disappear after 1 second; you can answer after they are gone" in pair
    unlimited = instructions_text(Protocol(mode="single", exposure_ms=None))
    assert "disappear" not in unlimited and "Go with your first impression." in unlimited
    own = Protocol(instructions_text="Look closely.", consent_text="Agree?")
    assert (own.instructions, own.consent) == ("Look closely.", "Agree?")


def test_the_duration_is_estimated_from_exposure_trials_and_answer_time():
    default = Protocol()  # 3 practice + 20 test trials of 1 s: 45 s of reading and 90 s of trials, rounded up
    assert estimated_minutes(default) == 3 and "It takes about 3 minutes." in consent_text(default)
    short = Protocol(practice_trials=0, test_trials=1)
    assert estimated_minutes(short) == 1 and "about 1 minute." in consent_text(short)
    long = Protocol(practice_trials=5, test_trials=120, exposure_ms=None)
    assert estimated_minutes(long) > estimated_minutes(Protocol(practice_trials=5, test_trials=120))
    assert "five minutes" not in consent_text(long) and f"about {estimated_minutes(long)} minutes" in consent_text(long)


def test_the_end_screen_counts_the_test_trials_the_instructions_announced(tmp_path):
    """Catch trials look like test trials: the instructions' count and the end screen's are the same."""
    store = Store(f"sqlite:///{tmp_path / 'texts.sqlite'}")
    try:
        make_study(store, practice_trials=1, test_trials=4, catch_rate=0.25)  # one of the 4 is a catch trial
        protocol = store.get_protocol("s")
        announced = int(re.search(r"Then come (\d+) test trials", protocol.instructions).group(1))
        token = store.start_participant("s")
        store.consent(token)
        walk(store, token, choose=lambda trial: "left")
        score = store.participant_score(token)
        end = score_text(protocol.mode, score.correct, score.answered)
        assert announced == 4 and re.fullmatch(r"You picked the real photo in \d of 4 test trials \(\d+%\)\.", end)
    finally:
        store.close()
    assert score_text("single", 1, 1) == "You were right in 1 of 1 test trial (100%)."
    assert score_text("pair", 0, 0) == ""


def test_ids_and_quotes_of_what_was_sent():
    assert [parse_id(v) for v in (86, "86", " 86 ", 86.0, "+86")] == [86] * 5
    for bad in (86.9, "86.0", "seven", True, None, -1, "1" * 40, [86]):
        with pytest.raises(SurveyError, match="is a whole number"):
            parse_id(bad)
    assert quoted("left") == "'left'"
    assert quoted("a\nb\tc") == "'a b c'"
    long = quoted("y" * 10**6)
    assert long.startswith("'yyy") and long.endswith("…' (1,000,000 characters)") and len(long) < 70
