"""The two settings of the survey: where the database is, and the admin password.

Both come from the environment so the same code runs locally, in CI and on a Hugging Face
Space (where `/data` is the persistent volume) without editing anything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

DB_URL_ENV = "SURVEY_DB_URL"
ADMIN_PASSWORD_ENV = "SURVEY_ADMIN_PASSWORD"
PERSISTENT_DIR = Path("/data")
DB_FILE_NAME = "survey.sqlite"


def database_url(explicit: str | None = None) -> str:
    """The database URL: `explicit` > env SURVEY_DB_URL > /data/survey.sqlite (if writable) > ./survey.sqlite."""
    if explicit:
        return explicit
    from_env = os.environ.get(DB_URL_ENV, "").strip()
    if from_env:
        return from_env
    if PERSISTENT_DIR.is_dir() and os.access(PERSISTENT_DIR, os.W_OK):
        return f"sqlite:///{PERSISTENT_DIR / DB_FILE_NAME}"
    return f"sqlite:///{DB_FILE_NAME}"


def masked_url(url: object) -> str:
    """`url` with any password replaced by ***, whatever shape it has: every URL the program shows
    (an error sentence, the admin view, a report) goes through here.

    Read as text, not parsed: a malformed URL is what gets shown in error messages, and a parser
    may split it where its author did not. Everything between the user name and the last '@' is
    hidden, so a password holding '@' or '/' does not leak either (too much is hidden at worst).
    """
    text = str(url)
    scheme, separator, rest = text.partition("://")
    if not separator:
        scheme, rest = "", text
    if "@" not in rest:
        return text
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{separator}{user}{':***' if colon else ''}@{host}"


def admin_password() -> str | None:
    """The admin password from SURVEY_ADMIN_PASSWORD, or None when it is unset or empty."""
    return os.environ.get(ADMIN_PASSWORD_ENV) or None


def check_admin(password: str | None, *, expected: str | None = None) -> bool:
    """True when `password` is the admin password (`expected`, default the configured one); always
    False if none is configured. See `survey.access.AdminGate` for the delay and lockout around it."""
    expected = expected or admin_password()
    if expected is None or not password:
        return False
    # Digests of equal length compared in constant time: the time taken says nothing about how
    # many leading characters were right, nor about the password's length.
    given = hashlib.sha256(password.encode("utf-8", "replace")).digest()
    return hmac.compare_digest(given, hashlib.sha256(expected.encode("utf-8")).digest())
