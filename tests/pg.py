"""A throwaway PostgreSQL server for the storage tests: Debian's binaries, a temporary data folder.

The server listens on 127.0.0.1 at a free port (and on a socket inside the temporary folder),
trusts local connections, runs without fsync (the data is thrown away) and is stopped and
deleted at the end. As root it runs as the `postgres` user, because PostgreSQL refuses root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SUPERUSER = "postgres"


class PostgresUnavailable(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl."""
    candidates = [Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")]
    candidates = [c for c in candidates if (c / "pg_ctl").is_file()]
    if not candidates:
        raise PostgresUnavailable(
            "No PostgreSQL server binaries under /usr/lib/postgresql/*/bin; "
            "install them with `bash scripts/install-system-deps.sh` (Debian package postgresql)."
        )
    return max(candidates, key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresUnavailable("Running as root, but there is no 'postgres' user to run the server as.") from None
    return ["runuser", "-u", SUPERUSER, "--", *command]


def _run(command: list[str], *, what: str) -> None:
    result = subprocess.run(_as_server_user(command), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise PostgresUnavailable(f"{what} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}")


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a server, yield the URL of its `survey_test` database, stop and delete it afterwards."""
    bin_dir = find_bin_dir()
    root = Path(tempfile.mkdtemp(prefix="survey-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SUPERUSER)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    started = False
    try:
        _run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--no-sync"],
            what="initdb",
        )
        options = f"-h 127.0.0.1 -p {port} -k {root} -F -c max_connections=200"
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60", "start"],
            what="Starting PostgreSQL",
        )
        started = True
        admin_url = f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/postgres"
        yield create_database(admin_url, "survey_test")
    finally:
        if started:
            subprocess.run(
                _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


def create_database(url: str, name: str | None = None) -> str:
    """Create a new empty database on the server of `url`; return its URL (same user, host, port)."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database or "postgres", autocommit=True
    ) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return parsed.set(database=name).render_as_string(hide_password=False)
