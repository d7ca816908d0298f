"""The admin password gate (survey.access): constant-time check, a delay on each wrong guess, lockouts."""

from __future__ import annotations

import pytest

from survey import SurveyError
from survey.access import AdminGate
from survey.settings import check_admin


class Clock:
    """A clock the test moves; `sleep` moves it too and records how long was slept."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def gate(clock: Clock, **options) -> AdminGate:
    return AdminGate("s3cret pass", clock=clock, sleep=clock.sleep, **options)


def test_the_right_password_passes_at_once_and_a_wrong_one_waits_a_second():
    clock = Clock()
    admin = gate(clock)
    admin.check("s3cret pass", client_key="a")
    assert clock.slept == []
    for wrong in ("s3cret pas", "s3cret pass ", "", None, 12345, "x" * 10_000_000):
        with pytest.raises(SurveyError, match="^That is not the admin password.$"):
            admin.check(wrong, client_key=f"client-{len(str(wrong))}")
    assert clock.slept == [1.0] * 6


def test_five_wrong_guesses_lock_that_client_out_for_the_window_and_no_one_else():
    clock = Clock()
    admin = gate(clock)
    for _ in range(5):
        with pytest.raises(SurveyError, match="not the admin password"):
            admin.check("guess", client_key="203.0.113.7")
    with pytest.raises(SurveyError, match=r"^Too many wrong admin passwords; try again in 15 minutes.$"):
        admin.check("s3cret pass", client_key="203.0.113.7")  # even the right one, and without waiting
    assert len(clock.slept) == 5
    admin.check("s3cret pass", client_key="198.51.100.1")  # another client is not locked out
    clock.now += 600
    with pytest.raises(SurveyError, match="try again in 5 minutes"):
        admin.check("s3cret pass", client_key="203.0.113.7")
    clock.now += 301
    admin.check("s3cret pass", client_key="203.0.113.7")  # the window has passed


def test_many_clients_guessing_together_lock_the_admin_view_for_everyone():
    clock = Clock()
    admin = gate(clock, max_failures_all=10)
    for address in range(10):
        with pytest.raises(SurveyError, match="not the admin password"):
            admin.check("guess", client_key=f"10.0.0.{address}")
    with pytest.raises(SurveyError, match="Too many wrong admin passwords"):
        admin.check("s3cret pass", client_key="198.51.100.1")
    clock.now += 901
    admin.check("s3cret pass", client_key="198.51.100.1")


def test_a_right_password_clears_that_clients_earlier_mistakes():
    clock = Clock()
    admin = gate(clock)
    for _ in range(4):
        with pytest.raises(SurveyError):
            admin.check("typo", client_key="a")
    admin.check("s3cret pass", client_key="a")
    with pytest.raises(SurveyError, match="not the admin password"):
        admin.check("typo", client_key="a")  # counted from zero again: not locked out


def test_without_a_password_the_admin_view_is_off(monkeypatch):
    monkeypatch.delenv("SURVEY_ADMIN_PASSWORD", raising=False)
    off = AdminGate()
    assert not off.enabled
    with pytest.raises(SurveyError, match="^The admin view is off.$"):
        off.check("", client_key=None)
    assert not check_admin("anything") and not check_admin(None)
    monkeypatch.setenv("SURVEY_ADMIN_PASSWORD", "pw")
    assert AdminGate().enabled and check_admin("pw") and not check_admin("pw2") and not check_admin("p")
