"""Who may see a study's results: the admin password, with a delay on every wrong guess and a lockout.

    gate = AdminGate()                       # the password from SURVEY_ADMIN_PASSWORD
    gate.check(password, client_key="203.0.113.7")   # returns, or raises SurveyError with one sentence

The comparison takes the same time whatever was typed (`settings.check_admin`). A wrong password
is answered no sooner than `delay_s` after it arrived, so guessing runs at one guess per second
per connection at best; `max_failures` wrong guesses from one client within `window_s` lock that
client out for the rest of the window, and `max_failures_all` from everyone together lock the
admin view for everyone (a guesser with many addresses), again for the rest of the window. A
locked-out request is refused at once, without looking at the password. Only failures are
remembered, in memory, per client key, for `window_s`: a restart forgets them.

Gradio-free, so front ends and tests share it.
"""

from __future__ import annotations

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
        max_failures_all: int = 50,
        window_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.password = password if password is not None else admin_password()
        self.delay_s = delay_s
        self.max_failures = max_failures
        self.max_failures_all = max_failures_all
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    @property
    def enabled(self) -> bool:
        return bool(self.password)

    def check(self, password: object, *, client_key: str | None) -> None:
        """Return if `password` is the admin password; else raise SurveyError with one sentence."""
        if not self.enabled:
            raise SurveyError(ADMIN_OFF)
        arrived = self._clock()
        key = client_key or "unknown"
        with self._lock:
            self._forget(arrived)
            locked = self._locked_until(key)
            if locked is not None:
                minutes = max(1, math.ceil((locked - arrived) / 60))
                raise SurveyError(f"Too many wrong admin passwords; try again in {plural(minutes, 'minute')}.")
        if check_admin(password if isinstance(password, str) else None, expected=self.password):
            with self._lock:
                self._failures.pop(key, None)
            return
        with self._lock:
            self._failures.setdefault(key, deque()).append(arrived)
            self._all.append(arrived)
        self._sleep(max(0.0, arrived + self.delay_s - self._clock()))
        raise SurveyError(WRONG_PASSWORD)

    def _forget(self, now: float) -> None:
        since = now - self.window_s
        while self._all and self._all[0] < since:
            self._all.popleft()
        for key in [key for key, times in self._failures.items() if times[-1] < since]:
            del self._failures[key]
        for times in self._failures.values():
            while times[0] < since:
                times.popleft()

    def _locked_until(self, key: str) -> float | None:
        """When the lockout that applies to `key` ends, or None when there is none."""
        mine = self._failures.get(key, ())
        ends = []
        if len(mine) >= self.max_failures:
            ends.append(mine[-self.max_failures] + self.window_s)
        if len(self._all) >= self.max_failures_all:
            ends.append(self._all[-self.max_failures_all] + self.window_s)
        return max(ends) if ends else None
