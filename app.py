"""The Gradio app, and the Hugging Face Spaces entry point: colorize photos, colorize archives, run the "Real or fake?" study.

    python app.py [--mode full|survey] [--host 0.0.0.0] [--port 7860] [--models-dir models] [--db sqlite:///survey.sqlite]

Wiring only: the tabs live in `ui`, pictures are coloured by `colorize`, every survey read and
write goes through `survey`. Settings come from flags or the environment (`ui.settings.Settings`).
`--mode survey` serves the study alone: no colorizer is loaded (torch is not even imported) and
there is no colorize API to reproduce the study's fakes with.
"""

from __future__ import annotations

import os

# Before anything can load torch: its OpenMP threads sleep between operations instead of spinning
# for milliseconds on a core the compose kernel's threads need (colorize.bench, "OpenMP wait
# policy"). A value set in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.middleware import Middleware
from gradio.route_utils import FnIndexInferError

from survey import SurveyError
from survey.access import AdminGate
from survey.participant import ParticipantFlow
from survey.settings import database_url
from survey.store import MAX_STARTS_PER_CLIENT, Store
from ui.components import STATIC
from ui.files import Scratch
from ui.limits import RequestLimits
from ui.settings import Settings
from ui.survey_tab import SurveyTab

logger = logging.getLogger("app")

UNTRAINED_WARNING = "No trained weights found: showing an untrained model"
THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="sky", neutral_hue="slate")
ADMIN_PATH = "admin"


# What participants read while the study's database cannot be opened; its details (which database,
# why, what to fix) are the admin's to read, after the password.
STUDY_UNAVAILABLE = "The study is not available right now; please try again later."
# Request bodies the app reads: a study's screens send a few hundred bytes; the Colorize tab's JSON
# (hints, a webcam frame as a data URL) stays far below 32 MB; photos come as uploads.
MAX_BODY_BYTES = {"survey": 64 * 1024, "full": 32 * 2**20}
MAX_UPLOAD_BYTES = {"survey": 0, "full": 200 * 2**20}


def open_store(db_url: str | None, **options) -> tuple[Store | None, str | None]:
    """The survey's store, or None and the reason (password masked, with what to fix); the rest of the app works without it."""
    try:
        return Store(database_url(db_url), **options), None
    except SurveyError as error:
        logger.error("The survey is off: %s", error)
        return None, str(error)


def build_app(
    *,
    store: Store | None = None,
    db_url: str | None = None,
    mode: str = "full",
    models_dir: str | Path = "models",
    shipped_model: str | Path | None = None,
    examples_dir: str | Path | None = None,
    max_starts_per_client: int | None = MAX_STARTS_PER_CLIENT,
) -> gr.Blocks:
    """The whole app (`mode="full"`: the shipped model loads now, others on first use), or the
    study alone (`mode="survey"`). Its admin page is at /admin (in survey mode only when
    SURVEY_ADMIN_PASSWORD is set).

    store: a `survey.store.Store`; by default one is opened at `db_url` (or wherever
    `survey.settings.database_url` points). If that fails the app still starts: participants
    read that the study is not available, the admin (after the password) why and what to fix.
    """
    scratch = Scratch()
    problem = None
    if store is None:
        store, problem = open_store(db_url, max_starts_per_client=max_starts_per_client)
    study = SurveyTab(ParticipantFlow(store, unavailable=STUDY_UNAVAILABLE if problem else None), gate=AdminGate(), problem=problem)
    catalog = photos = None
    if mode == "full":
        from colorize.catalog import ModelCatalog
        from ui.colorize_tabs import ColorizeTabs
        from ui.files import example_photos

        catalog = ModelCatalog(models_dir, shipped=shipped_model, warm_up=True)
        photos = ColorizeTabs(catalog, scratch, example_photos(Path(examples_dir) if examples_dir else None, scratch))

    with gr.Blocks(
        title="Real or fake? A study" if photos is None else "Colorize: black-and-white photos in colour",
        delete_cache=(3600, 7200),
        analytics_enabled=False,  # a study app does not report its visitors to anyone
    ) as demo:
        # The survey tokens, one per study, in the browser. Declared here, outside the tabs, so it
        # is read from localStorage when the page loads, not only once its tab is opened.
        # Gradio encrypts it with `secret`, which the page itself carries: that keeps the token out
        # of casual view, no more. A fixed secret keeps tokens readable across app restarts.
        tokens = gr.BrowserState({}, storage_key="colorize-survey-tokens", secret="colorize-survey-v1")
        if photos is None:
            study.build(demo, None, tokens)
        else:
            gr.Markdown(
                "# Colorize\n"
                "Black-and-white photos in colour, by a conditional GAN (pix2pix family) that predicts the "
                "colour channels from the lightness. Your photo keeps its size and every detail of its tones."
            )
            gr.Markdown(f"⚠️ {UNTRAINED_WARNING}.", visible=catalog.untrained is not None, elem_id="warning-banner")
            with gr.Tabs() as tabs:
                with gr.Tab("Colorize", id="colorize"):
                    menus = [photos.build_colorize_tab()]
                with gr.Tab("Batch", id="batch"):
                    menus.append(photos.build_batch_tab())
                with gr.Tab("Real or fake?", id="survey"):
                    study.build(demo, tabs, tokens)

            def refresh_models():  # checkpoint folders added since start-up appear on the next page load
                return [gr.Dropdown(choices=photos.model_choices()) for _ in menus]

            demo.load(refresh_models, None, menus, api_visibility="private", queue=False)
    if photos is not None or study.gate.enabled:
        # Reached by its address only: no page of the app links to it (app.css hides Gradio's page bar).
        with demo.route("Study admin", ADMIN_PATH, show_in_navbar=False):
            study.build_admin(demo)
    demo.catalog, demo.store, demo.scratch, demo.mode = catalog, store, scratch, mode  # for main() and the tests
    return demo


async def no_such_endpoint(request: Request, error: FnIndexInferError) -> JSONResponse:
    """A call of an endpoint the app does not have (in survey mode /colorize, which scanners try):
    one log line and a 404, where Gradio's failed lookup gave uvicorn's traceback and a 500."""
    logger.warning("No such endpoint: %s %s", request.method, request.url.path)
    return JSONResponse({"error": str(error)}, status_code=404)


CALL_ROUTES = ("/queue/join", "/run/predict", "/api/predict")  # where Gradio looks a call's fn_index up


async def unknown_function_index(request: Request, error: KeyError) -> JSONResponse:
    """A queue/join (or predict) call naming a function index the app lacks: Gradio's lookup
    raises KeyError, which uvicorn turns into a traceback and a 500; this is one log line and a
    404. A KeyError anywhere else is a bug: logged with its traceback, a 500 as before."""
    if request.url.path.endswith(CALL_ROUTES):
        logger.warning("No such endpoint: %s %s (function index %s)", request.method, request.url.path, error)
        return JSONResponse({"error": "There is no such endpoint."}, status_code=404)
    logger.error("Unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return JSONResponse({"error": "Internal server error."}, status_code=500)


def launch(demo: gr.Blocks, settings: Settings, **kwargs) -> Any:
    """Start the server with the app's theme, queue and limits (also used by the tests).

    Colorizing runs one request at a time in its own concurrency group ("model"); the study's
    participant events skip the queue (`ui.survey_tab`), so they never wait behind it. Request
    bodies are bounded before anything parses them, and survey mode takes no uploads
    (`ui.limits`). X-Forwarded-For is believed from `settings.trusted_proxies` only: uvicorn,
    which puts the visitor's address in each request, reads its list of trusted proxies from
    FORWARDED_ALLOW_IPS (its own default would trust any connection from this machine).
    """
    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(settings.trusted_proxies)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4)
    limits = Middleware(RequestLimits, max_body_bytes=MAX_BODY_BYTES[settings.mode], max_upload_bytes=MAX_UPLOAD_BYTES[settings.mode])
    return demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        show_error=False,  # only gr.Error sentences reach the browser, never a traceback
        max_file_size=MAX_UPLOAD_BYTES[settings.mode] or 1,
        theme=THEME,
        css_paths=[STATIC / "app.css", STATIC / "hints.css"],
        footer_links=["api"],
        run_history=False,  # it would keep every answer and image in the browser's localStorage
        app_kwargs={"exception_handlers": {FnIndexInferError: no_such_endpoint, KeyError: unknown_function_index}, "middleware": [limits]},
        **kwargs,
    )


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM (a container or Space stopping) and SIGINT end the app like Ctrl-C: the server
    closes, the scratch folder goes. SIGINT is set explicitly because a process started in the
    background by a non-interactive shell inherits it ignored, and Python then never raises
    KeyboardInterrupt."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings.from_args(argv)
    if settings.mode == "full":
        from colorize.compose import resolve_kernel
        from colorize.fastpath import use_recommended_threads

        logger.info("Colorizing with %d torch threads (the physical cores this process may use)", use_recommended_threads())
        # numba loads the compiled full-resolution kernel in about a second (and compiles it, once per
        # machine, in about ten): in the background, while the model loads, not in the first request.
        threading.Thread(target=resolve_kernel, args=("auto",), daemon=True).start()
    else:
        logger.info("Survey mode: the study alone, no colorizer")
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    demo = build_app(
        mode=settings.mode,
        models_dir=settings.models_dir,
        db_url=settings.db_url,
        shipped_model=settings.shipped_model,
        max_starts_per_client=settings.max_starts_per_client,
    )
    try:
        if settings.create_demo and demo.store is not None:
            from survey.demo import create_demo

            # In the background: the page is up at once, the study appears on the next page load.
            threading.Thread(target=create_demo, args=(demo.store,), kwargs={"progress": False}, daemon=True).start()
        launch(demo, settings)
    finally:
        demo.scratch.remove()


if __name__ == "__main__":
    main()
