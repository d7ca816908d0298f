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


@pytest.fixture(scope="module")
def single_torch_thread():
    """For modules of tiny models: extra threads only add synchronisation on a busy 2-core machine."""
    import torch  # here, not at the top: the survey tests must not need torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
