"""The app's settings: where it listens and what it serves. Each one: a flag, else an environment variable, else a default."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Where the app listens and what it serves. Each field: a flag, else an env var, else a default."""

    host: str
    port: int
    models_dir: Path
    db_url: str | None  # None: survey.settings.database_url() decides
    shipped_model: Path | None = None  # None: the weights inside the colorize package
    queue_size: int = 32
    create_demo: bool = False

    @classmethod
    def from_args(cls, argv: list[str] | None = None, environ: dict[str, str] | None = None) -> "Settings":
        environ = dict(os.environ if environ is None else environ)
        on_spaces = bool(environ.get("SPACE_ID"))
        parser = argparse.ArgumentParser(prog="python app.py", description="The colorize app: colorize photos and run the real-or-fake study.")
        parser.add_argument(
            "--host",
            default=environ.get("COLORIZE_HOST") or environ.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if on_spaces else "127.0.0.1"),
            help="interface to listen on (env COLORIZE_HOST or GRADIO_SERVER_NAME; 0.0.0.0 on Hugging Face Spaces, else 127.0.0.1)",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=int(environ.get("GRADIO_SERVER_PORT") or 7860),
            help="port (env GRADIO_SERVER_PORT; default 7860)",
        )
        parser.add_argument(
            "--models-dir",
            type=Path,
            default=Path(environ.get("COLORIZE_MODELS_DIR") or "models"),
            help="folder of extra checkpoint folders offered in the model menu (env COLORIZE_MODELS_DIR)",
        )
        parser.add_argument(
            "--db",
            default=environ.get("SURVEY_DB_URL") or None,
            help="survey database URL (env SURVEY_DB_URL; default: /data on Spaces, else ./survey.sqlite)",
        )
        parser.add_argument(
            "--shipped-model",
            type=Path,
            default=Path(environ["COLORIZE_SHIPPED_MODEL"]) if environ.get("COLORIZE_SHIPPED_MODEL") else None,
            help="checkpoint folder offered as 'shipped' (env COLORIZE_SHIPPED_MODEL; default: the weights in the package)",
        )
        parser.add_argument("--queue-size", type=int, default=32, help="requests that may wait in the queue")
        parser.add_argument(
            "--create-demo",
            action=argparse.BooleanOptionalAction,
            default=environ.get("SURVEY_CREATE_DEMO", "1" if on_spaces else "0").lower() in ("1", "true", "yes"),
            help="build the 'demo' study in the background if it is missing (env SURVEY_CREATE_DEMO; on by default on Spaces)",
        )
        args = parser.parse_args(argv)
        return cls(
            host=args.host,
            port=args.port,
            models_dir=args.models_dir,
            db_url=args.db,
            shipped_model=args.shipped_model,
            queue_size=args.queue_size,
            create_demo=args.create_demo,
        )
