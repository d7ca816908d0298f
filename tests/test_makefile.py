"""The Makefile's run targets as the README gives them, read with `make --dry-run` (nothing is installed or started)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def planned(target: str, *variables: str, env: dict[str, str] | None = None) -> list[str]:
    """The commands `make TARGET VARIABLES...` would run, in the environment `env` adds to this one's."""
    environment = {key: value for key, value in os.environ.items() if key not in ("GRADIO_SERVER_PORT", "COLORIZE_HOST", "PORT", "HOST")}
    run = subprocess.run(["make", "--dry-run", "--always-make", target, *variables], cwd=ROOT, env={**environment, **(env or {})},
                         capture_output=True, text=True, check=True)  # fmt: skip
    return run.stdout.splitlines()


def app_command(lines: list[str]) -> str:
    (line,) = [line for line in lines if " app.py " in f"{line} "]
    return line


def test_demo_and_app_listen_on_localhost_7860_by_default():
    assert app_command(planned("demo")).endswith("app.py --host 127.0.0.1 --port 7860")
    app = planned("app")
    assert app_command(app).endswith("app.py --host 127.0.0.1 --port 7860") and not [line for line in app if "survey.demo" in line]


def test_the_port_and_host_come_from_make_variables_or_the_app_s_own_environment():
    assert app_command(planned("demo", "PORT=8080", "HOST=0.0.0.0")).endswith("app.py --host 0.0.0.0 --port 8080")
    assert app_command(planned("demo", env={"GRADIO_SERVER_PORT": "8123", "COLORIZE_HOST": "0.0.0.0"})).endswith("--host 0.0.0.0 --port 8123")
    assert app_command(planned("app", "PORT=9000", env={"GRADIO_SERVER_PORT": "8123"})).endswith("--port 9000")  # the command line wins
