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


def test_five_wrong_guesses_lock_that_address_out_with_a_lockout_that_doubles_and_no_one_else():
    clock = Clock()
    admin = gate(clock)
    for _ in range(5):
        with pytest.raises(SurveyError, match="not the admin password"):
            admin.check("guess", client_key="203.0.113.7")
    with pytest.raises(SurveyError, match=r"^Too many wrong admin passwords from your connection; try again in 1 minute.$"):
        admin.check("s3cret pass", client_key="203.0.113.7")  # even the right one, and without waiting
    assert len(clock.slept) == 5
    admin.check("s3cret pass", client_key="198.51.100.1")  # another address is not locked out
    lockouts = []
    for _ in range(6):  # each wrong guess after a lockout doubles the next one, up to 15 minutes
        clock.now += 60 * 15 + 1
        with pytest.raises(SurveyError, match="not the admin password"):
            admin.check("guess", client_key="203.0.113.7")
        with pytest.raises(SurveyError, match="try again in") as refused:
            admin.check("s3cret pass", client_key="203.0.113.7")
        lockouts.append(int(str(refused.value).split(" in ")[1].split(" ")[0]))
    assert lockouts == [2, 4, 8, 15, 15, 15]
    clock.now += 15 * 60 + 1
    admin.check("s3cret pass", client_key="203.0.113.7")  # the lockout has passed; the right password clears the record


def test_guessing_from_many_addresses_is_slowed_for_all_but_never_locks_the_admin_out():
    """The issue's attack: 50 wrong guesses from about 10 addresses used to lock the real admin out for 15 minutes."""
    clock = Clock()
    admin = gate(clock, max_failures_all=10)
    for guess in range(60):
        with pytest.raises(SurveyError, match="not the admin password"):
            admin.check("guess", client_key=f"10.0.0.{guess % 12}")
    # Once 10 had come in, wrong answers go out one at a time, 5 s apart, whichever address asks.
    assert clock.slept[:9] == [1.0] * 9 and clock.slept[10:] == [5.0] * 50
    slept = len(clock.slept)
    admin.check("s3cret pass", client_key="198.51.100.1")  # the admin, from an address that has not failed: at once
    assert len(clock.slept) == slept
    clock.now += 3601
    with pytest.raises(SurveyError, match="not the admin password"):
        admin.check("guess", client_key="10.0.0.1")
    assert clock.slept[-1] == 1.0  # the guessing has been forgotten


def test_waiting_for_a_wrong_answer_holds_no_thread():
    import asyncio

    admin = AdminGate("pw", delay_s=0.2)

    async def many():
        started = asyncio.get_running_loop().time()
        results = await asyncio.gather(*(admin.check_async("nope", client_key=f"a{i}") for i in range(20)), return_exceptions=True)
        await admin.check_async("pw", client_key="admin")
        return asyncio.get_running_loop().time() - started, results

    took, results = asyncio.run(many())
    assert all(isinstance(r, SurveyError) for r in results) and took < 1.0  # twenty waits side by side, not in a row


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
