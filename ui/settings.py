"""The app's settings: where it listens and what it serves. Each one: a flag, else an environment variable, else a default."""

from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from survey.store import MAX_STARTS_PER_CLIENT

MODES = ("full", "survey")  # full: Colorize, Batch and the study; survey: the study alone
TRUE = ("1", "true", "yes", "on")
# On Hugging Face Spaces a visitor's request reaches the app through the platform's proxy, from its
# internal network (a peer such as 10.16.3.80, never a visitor's own address), which appends the
# visitor's address to X-Forwarded-For.
SPACES_PROXIES = ("10.0.0.0/8",)


@dataclass(frozen=True)
class Settings:
    """Where the app listens and what it serves. Each field: a flag, else an env var, else a default."""

    host: str
    port: int
    models_dir: Path
    db_url: str | None  # None: survey.settings.database_url() decides
    shipped_model: Path | None = None  # None: the weights inside the colorize package
    queue_size: int = 512
    create_demo: bool = False
    mode: str = "full"
    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-For names the visitor (addresses or networks)
    max_starts_per_client: int | None = MAX_STARTS_PER_CLIENT

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
        parser.add_argument(
            "--queue-size",
            type=int,
            default=512,
            help="requests that may wait in Gradio's queue (colorizing, the admin view, API clients); "
            "the study's pages do not queue",
        )
        parser.add_argument(
            "--create-demo",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="build the 'demo' study in the background if it is missing (env SURVEY_CREATE_DEMO; on by default "
            "on Spaces in full mode)",
        )
        parser.add_argument(
            "--mode",
            choices=MODES,
            default=(environ.get("COLORIZE_MODE") or "full").strip().lower(),
            help="full: the Colorize and Batch tabs and the study; survey: the study alone, no colorizer "
            "loaded and no colorize API, for a public study (env COLORIZE_MODE)",
        )
        parser.add_argument(
            "--trusted-proxies",
            default=environ.get("COLORIZE_TRUSTED_PROXIES", ",".join(SPACES_PROXIES) if on_spaces else ""),
            metavar="ADDRESSES",
            help="comma-separated addresses or networks (10.0.0.0/8) of the proxies in front of the app: from them, and "
            "only from them, X-Forwarded-For names the visitor, whose address the study's start limit and the admin "
            f"lockout count (env COLORIZE_TRUSTED_PROXIES; default none, {','.join(SPACES_PROXIES)} on Hugging Face Spaces)",
        )
        parser.add_argument(
            "--max-starts-per-client",
            type=int,
            default=int(environ.get("SURVEY_MAX_STARTS_PER_CLIENT") or MAX_STARTS_PER_CLIENT),
            help=f"participants one address may start per study in 10 minutes; 0 = no limit (env "
            f"SURVEY_MAX_STARTS_PER_CLIENT; default {MAX_STARTS_PER_CLIENT}: raise it for a class behind one router)",
        )
        args = parser.parse_args(argv)
        if args.mode not in MODES:
            parser.error(f"--mode (or COLORIZE_MODE) is one of {', '.join(MODES)}")
        if args.max_starts_per_client < 0:
            parser.error("--max-starts-per-client is 0 (no limit) or more")
        proxies = tuple(entry.strip() for entry in args.trusted_proxies.split(",") if entry.strip())
        for entry in proxies:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                parser.error(f"--trusted-proxies (or COLORIZE_TRUSTED_PROXIES): {entry[:40]!r} is not an address or a network such as 10.0.0.0/8")
        if args.create_demo is None:  # the demo study is made with the colorizer, which survey mode does not load
            default = "1" if on_spaces and args.mode == "full" else "0"
            args.create_demo = environ.get("SURVEY_CREATE_DEMO", default).lower() in TRUE
        return cls(
            host=args.host,
            port=args.port,
            models_dir=args.models_dir,
            db_url=args.db,
            shipped_model=args.shipped_model,
            queue_size=args.queue_size,
            create_demo=args.create_demo,
            mode=args.mode,
            trusted_proxies=proxies,
            max_starts_per_client=args.max_starts_per_client or None,
        )
