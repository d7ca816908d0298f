"""Shared pytest fixtures. Keep this small: fixtures used by one test file live in that file."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def postgres_url():
    """URL (postgresql+psycopg://) of an empty database on a throwaway local PostgreSQL server.

    Fails, rather than skips, when the server binaries are missing: the suite is meant to test
    PostgreSQL for real (`make system-deps` installs them). Deselect with `-m "not postgres"`.
    """
    from pg import PostgresUnavailable, postgres_server  # tests/pg.py

    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailable as error:
        pytest.fail(str(error), pytrace=False)
