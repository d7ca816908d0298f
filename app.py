"""The Gradio app, and the Hugging Face Spaces entry point: colorize photos, colorize archives, run the "Real or fake?" study.

    python app.py [--host 0.0.0.0] [--port 7860] [--models-dir models] [--db sqlite:///survey.sqlite]

Wiring only: the tabs live in `ui`, pictures are coloured by `colorize`, every survey read and
write goes through `survey`. Settings come from flags or the environment (`ui.settings.Settings`).
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

import gradio as gr

from colorize.catalog import ModelCatalog
from survey import SurveyError
from survey.participant import ParticipantFlow
from survey.settings import database_url
from survey.store import Store
from ui.colorize_tabs import ColorizeTabs
from ui.components import STATIC
from ui.files import Scratch, example_photos
from ui.settings import Settings
from ui.survey_tab import SurveyTab

logger = logging.getLogger("app")

UNTRAINED_WARNING = "No trained weights found: showing an untrained model"
THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="sky", neutral_hue="slate")


def open_store(db_url: str | None) -> tuple[Store | None, str | None]:
    """The survey's store, or None and the reason; the rest of the app works without it."""
    try:
        return Store(database_url(db_url)), None
    except SurveyError as error:
        logger.error("The survey is off: %s", error)
        return None, f"The study is not available right now: {error}"


def build_app(
    *,
    store: Store | None = None,
    db_url: str | None = None,
    models_dir: str | Path = "models",
    shipped_model: str | Path | None = None,
    examples_dir: str | Path | None = None,
) -> gr.Blocks:
    """The whole app. Loads the shipped model now; other models load on first use.

    store: a `survey.store.Store`; by default one is opened at `db_url` (or wherever
    `survey.settings.database_url` points). If that fails the app still starts and the survey
    tab says why.
    """
    catalog = ModelCatalog(models_dir, shipped=shipped_model)
    scratch = Scratch()
    problem = None
    if store is None:
        store, problem = open_store(db_url)
    photos = ColorizeTabs(catalog, scratch, example_photos(Path(examples_dir) if examples_dir else None, scratch))
    study = SurveyTab(ParticipantFlow(store, unavailable=problem), scratch=scratch)

    with gr.Blocks(
        title="Colorize: black-and-white photos in colour",
        delete_cache=(3600, 7200),
        analytics_enabled=False,  # a study app does not report its visitors to anyone
    ) as demo:
        gr.Markdown(
            "# Colorize\n"
            "Black-and-white photos in colour, by a conditional GAN (pix2pix family) that predicts the "
            "colour channels from the lightness. Your photo keeps its size and every detail of its tones."
        )
        gr.Markdown(f"⚠️ {UNTRAINED_WARNING}.", visible=catalog.untrained is not None, elem_id="warning-banner")
        # The survey tokens, one per study, in the browser. Declared here, outside the tabs, so it
        # is read from localStorage when the page loads, not only once its tab is opened.
        # Gradio encrypts it with `secret`, which the page itself carries: that keeps the token out
        # of casual view, no more. A fixed secret keeps tokens readable across app restarts.
        tokens = gr.BrowserState({}, storage_key="colorize-survey-tokens", secret="colorize-survey-v1")
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
    demo.catalog, demo.store, demo.scratch = catalog, store, scratch  # for main() and the tests
    return demo


def launch(demo: gr.Blocks, settings: Settings, **kwargs) -> Any:
    """Start the server with the app's theme, queue and limits (also used by the tests)."""
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=4)
    return demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        show_error=False,  # only gr.Error sentences reach the browser, never a traceback
        max_file_size="200mb",
        theme=THEME,
        css_paths=[STATIC / "app.css"],
        footer_links=["api"],
        run_history=False,  # it would keep every answer and image in the browser's localStorage
        **kwargs,
    )


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM (a container or Space stopping) ends the app like Ctrl-C: the server closes, the scratch folder goes."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings.from_args(argv)
    from colorize.fastpath import use_recommended_threads

    logger.info("Colorizing with %d torch threads (the physical cores this process may use)", use_recommended_threads())
    signal.signal(signal.SIGTERM, _stop)
    from colorize.compose import resolve_kernel

    # numba loads the compiled full-resolution kernel in about a second (and compiles it, once per
    # machine, in about ten): in the background, while the model loads, not in the first request.
    threading.Thread(target=resolve_kernel, args=("auto",), daemon=True).start()
    demo = build_app(models_dir=settings.models_dir, db_url=settings.db_url, shipped_model=settings.shipped_model)
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
