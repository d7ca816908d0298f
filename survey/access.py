"""Who may see a study's results: the admin password, with a delay on every wrong guess, lockouts per address, and a global brake.

    gate = AdminGate()                       # the password from SURVEY_ADMIN_PASSWORD
    gate.check(password, client_key="203.0.113.7")   # returns, or raises SurveyError with one sentence
    await gate.check_async(password, client_key=...)  # the same, waiting without holding a thread

The comparison takes the same time whatever was typed (`settings.check_admin`). A wrong password
is answered no sooner than `delay_s` after it arrived. Per address: `max_failures` wrong guesses
lock it out for `lockout_s`, and every further wrong guess after that doubles the lockout, up to
`max_lockout_s`; a locked-out address is refused at once, without looking at the password. Its
failures are forgotten `forget_s` after its last one, or as soon as it gives the right password.

For everyone together: once `max_failures_all` wrong guesses arrived within `window_s` (someone
guessing from many addresses), wrong answers are given out one at a time, `spacing_s` apart, so
guessing slows to one answer per `spacing_s` however many addresses it comes from. The right
password from an address that is not locked out is never held back or refused: other people's
guessing cannot lock the admin out. Only failures are remembered, in memory: a restart forgets them.

Which address a request comes from is the app's to say (`ui.survey_tab.client_key`, which believes
X-Forwarded-For only from configured proxies). Gradio-free, so front ends and tests share it.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from typing import Callable

from . import SurveyError
from .settings import admin_password, check_admin
from .texts import plural

__all__ = ["AdminGate", "WRONG_PASSWORD", "ADMIN_OFF"]

WRONG_PASSWORD = "That is not the admin password."
ADMIN_OFF = "The admin view is off."


class AdminGate:
    """The admin password check of one app process (thread-safe)."""

    def __init__(
        self,
        password: str | None = None,
        *,
        delay_s: float = 1.0,
        max_failures: int = 5,
        lockout_s: float = 60.0,
        max_lockout_s: float = 900.0,
        forget_s: float = 3600.0,
        max_failures_all: int = 50,
        window_s: float = 900.0,
        spacing_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.password = password if password is not None else admin_password()
        self.delay_s = delay_s
        self.max_failures = max_failures
        self.lockout_s = lockout_s
        self.max_lockout_s = max_lockout_s
        self.forget_s = forget_s
        self.max_failures_all = max_failures_all
        self.window_s = window_s
        self.spacing_s = spacing_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()
        self._next_answer = -math.inf  # when the next wrong answer may go out while guessing is braked

    @property
    def enabled(self) -> bool:
        return bool(self.password)

    def check(self, password: object, *, client_key: str | None) -> None:
        """Return if `password` is the admin password; else raise SurveyError with one sentence (after the delay)."""
        wait, error = self._judge(password, client_key)
        if error is None:
            return
        if wait > 0:
            self._sleep(wait)
        raise error

    async def check_async(self, password: object, *, client_key: str | None) -> None:
        """`check` for an event loop: a wrong guess waits its turn without holding a thread."""
        wait, error = self._judge(password, client_key)
        if error is None:
            return
        if wait > 0:
            await asyncio.sleep(wait)
        raise error

    def _judge(self, password: object, client_key: str | None) -> tuple[float, SurveyError | None]:
        """(seconds to wait before answering, the error to answer with; None when the password is right)."""
        if not self.enabled:
            return 0.0, SurveyError(ADMIN_OFF)
        arrived = self._clock()
        key = client_key or "unknown"
        with self._lock:
            self._forget(arrived)
            locked = self._locked_until(key)
        if locked is not None:
            return 0.0, SurveyError(f"Too many wrong admin passwords from your connection; try again in {_wait_text(locked - arrived)}.")
        if check_admin(password if isinstance(password, str) else None, expected=self.password):
            with self._lock:
                self._failures.pop(key, None)
            return 0.0, None
        with self._lock:
            self._failures.setdefault(key, deque()).append(arrived)
            self._all.append(arrived)
            answer_at = arrived + self.delay_s
            if len(self._all) >= self.max_failures_all:  # guessing from many addresses: one wrong answer at a time
                answer_at = max(answer_at, self._next_answer)
                self._next_answer = answer_at + self.spacing_s
        return max(0.0, answer_at - self._clock()), SurveyError(WRONG_PASSWORD)

    def _forget(self, now: float) -> None:
        while self._all and self._all[0] < now - self.window_s:
            self._all.popleft()
        for key in [key for key, times in self._failures.items() if times[-1] < now - self.forget_s]:
            del self._failures[key]

    def _locked_until(self, key: str) -> float | None:
        """When `key`'s lockout ends, or None when it is not locked out: `lockout_s` after its
        `max_failures`-th failure, doubled by each failure since, up to `max_lockout_s`."""
        failures = self._failures.get(key, ())
        extra = len(failures) - self.max_failures
        if extra < 0:
            return None
        ends = failures[-1] + min(self.max_lockout_s, self.lockout_s * 2.0**extra)
        return ends if ends > self._clock() else None


def _wait_text(seconds: float) -> str:
    return plural(max(1, math.ceil(seconds / 60)), "minute")
