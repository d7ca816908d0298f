"""The Gradio app: colorize photos, colorize archives, and run the "Real or fake?" study.

    python app.py [--host 0.0.0.0] [--port 7860] [--models-dir models] [--db sqlite:///survey.sqlite]

UI only: pictures are coloured by `colorize`, every survey read and write goes through
`survey.store.Store`. Settings come from flags or the environment (see `Settings`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import html
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from colorize.batch import colorize_batch
from colorize.checkpoint import CONFIG_FILE, WEIGHTS_FILE, CheckpointError
from colorize.defaults import RENDER_SIZE_STEP
from colorize.imageio import DEFAULT_MAX_PIXELS, ImageLoadError, load_image
from colorize.png import save_png
from survey import SurveyError
from survey.settings import database_url
from survey.store import Store
from survey.texts import score_text

logger = logging.getLogger("app")

SHIPPED = "shipped"
UNTRAINED_WARNING = "No trained weights found: showing an untrained model"
RENDER_SIZES = (64, 1024)
MAX_VARIATIONS = 8
# skimage.data photos for the examples gallery: "camera" is a real black-and-white photo,
# the colour ones are turned gray when the app starts.
EXAMPLES = ("camera", "astronaut", "chelsea", "coffee", "rocket")


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


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
        parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
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


# ---------------------------------------------------------------------------------------------
# Small helpers (files, messages)
# ---------------------------------------------------------------------------------------------


def user_error(error: BaseException | str) -> gr.Error:
    """A gr.Error showing one plain sentence; the modal renders HTML, so escape what came from a file name."""
    return gr.Error(html.escape(str(error), quote=False), print_exception=False)


class Scratch:
    """A private folder for the files the app hands to Gradio; each request gets a random sub-folder."""

    def __init__(self, max_age_s: float = 3600.0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="colorize-app-"))
        self.max_age_s = max_age_s
        atexit.register(shutil.rmtree, self.root, ignore_errors=True)

    def folder(self) -> Path:
        self._sweep()
        path = self.root / secrets.token_hex(12)
        path.mkdir()
        return path

    def _sweep(self) -> None:
        limit = time.time() - self.max_age_s
        for child in self.root.iterdir():
            try:
                if child.stat().st_mtime < limit:
                    shutil.rmtree(child, ignore_errors=True)
            except FileNotFoundError:
                pass


def _render_size(value: float | None) -> int | None:
    """The slider's value as a render size; empty means the model's own."""
    return None if value is None or value == "" or value == 0 else int(value)


def _stem(path: str | None) -> str:
    stem = Path(path).stem if path else "image"
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-")
    return keep[:60] or "image"


def write_examples(folder: Path) -> list[Path]:
    """Gray versions of a few skimage.data photos, written once into `folder` (a cache, not the repo)."""
    from PIL import Image
    from skimage import data

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: any writable place will do
        folder = Path(tempfile.mkdtemp(prefix="colorize-examples-"))
    paths = []
    for name in EXAMPLES:
        path = folder / f"{name}.png"
        if not path.is_file():
            Image.fromarray(getattr(data, name)()).convert("L").save(path)
        paths.append(path)
    return paths


@contextlib.contextmanager
def _out_of_memory_as_user_error():
    """A photo too big for this machine's memory gets a sentence, not Gradio's bare "Error"."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:  # torch reports allocation failures as RuntimeError
        logger.exception("Colorizing failed")
        raise user_error(
            "This photo could not be colorized here, most likely for lack of memory; try a smaller render size or photo."
        ) from error


def _save_for_display(photo, path: Path) -> None:
    """The "before" side of the slider is only looked at, never downloaded: a JPEG is written
    several times faster than a PNG (`python -m colorize.bench`, "Writing the full-size PNG")."""
    photo.save(path, format="JPEG", quality=95, subsampling=0)


def default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "colorize-study"


# ---------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------


class ModelCatalog:
    """The shipped model plus every checkpoint folder under `models_dir`, each loaded once, on first use.

    The shipped model is loaded at start-up; if it is missing the untrained generator stands in
    and `untrained` is True, so the UI can say so.
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        loader: Callable[[Path | None], Any],
        fallback: Callable[[], Any],
    ) -> None:
        self.models_dir = Path(models_dir)
        self._loader = loader
        self._cache: dict[str, Any] = {}
        self._lock = threading.Lock()
        try:
            self._cache[SHIPPED] = loader(None)
            self.untrained = False
        except CheckpointError as error:
            logger.warning("%s (%s)", UNTRAINED_WARNING, error)
            self._cache[SHIPPED] = fallback()
            self.untrained = True

    def names(self) -> list[str]:
        found = []
        if self.models_dir.is_dir():
            for child in sorted(self.models_dir.iterdir()):
                if child.name != SHIPPED and (child / CONFIG_FILE).is_file() and (child / WEIGHTS_FILE).is_file():
                    found.append(child.name)
        return [SHIPPED, *found]

    def choices(self) -> list[tuple[str, str]]:
        shipped = f"{SHIPPED} (untrained)" if self.untrained else SHIPPED
        return [(shipped if name == SHIPPED else name, name) for name in self.names()]

    def get(self, name: str | None):
        name = name or SHIPPED
        with self._lock:
            if name in self._cache:
                return self._cache[name]
            if name not in self.names():  # also refuses "../x": only listed folder names load
                raise user_error(f"There is no model called '{name}'; pick one from the list.")
            try:
                model = self._loader(self.models_dir / name)
            except CheckpointError as error:
                raise user_error(error) from None
            self._cache[name] = model
            return model


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------

CSS = """
#warning-banner {background: #fff4e5; border: 1px solid #f0a030; border-radius: 8px; padding: 0.4rem 1rem;}
#warning-banner p {color: #7a4500; margin: 0; font-weight: 600;}
.dark #warning-banner {background: #3d2a0f;} .dark #warning-banner p {color: #ffd08a;}
#survey-progress, #survey-prompt {text-align: center;}
.stimulus {display: flex; gap: 2rem; justify-content: center; flex-wrap: wrap; position: relative; padding: 0.5rem 0;}
.stimulus figure {margin: 0; text-align: center;}
.stimulus img {width: min(42vw, 360px); height: auto; display: block; border-radius: 6px; image-rendering: auto;}
.stimulus figcaption {font-weight: 600; margin-top: 0.4rem; min-height: 1.2em;}
.stimulus .stimulus-note {display: none;}
.stimulus.expired img {visibility: hidden;}
.stimulus.expired figure {background: var(--block-background-fill); border-radius: 6px;}
.stimulus.expired .stimulus-note {display: block; position: absolute; top: 45%; left: 0; right: 0; text-align: center;
  color: var(--body-text-color-subdued); margin: 0;}
#survey-choice-0, #survey-choice-1 {min-height: 3.2rem; font-size: 1.1rem;}
footer {visibility: hidden;}
"""

THEME = gr.themes.Soft(primary_hue="orange", secondary_hue="sky", neutral_hue="slate")


class ColorizeUI:
    """The Colorize and Batch tabs: event handlers plus their layout."""

    def __init__(self, catalog: ModelCatalog, scratch: Scratch, examples: list[Path]) -> None:
        self.catalog = catalog
        self.scratch = scratch
        self.examples = examples

    # -- handlers ---------------------------------------------------------------------------

    @staticmethod
    def _open(source: str | None):
        if not source:
            raise user_error("Add a photo first: upload one, paste one or take one with the webcam.")
        try:
            return load_image(source, max_pixels=DEFAULT_MAX_PIXELS)
        except ImageLoadError as error:
            raise user_error(error) from None

    @staticmethod
    def _seed(seed: float | None) -> int | None:
        if seed is None or seed == "":
            return None
        return int(seed)

    def colorize(
        self,
        image: str | None,
        model: str = SHIPPED,
        render_size: float | None = None,
        saturation: float = 1.0,
        seed: float | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict]:
        """Colorize one image; returns the full-size PNG (the API's answer) and what the slider shows."""
        photo = self._open(image)
        colorizer = self.catalog.get(model)
        progress(0.1, desc="Colorizing")
        with _out_of_memory_as_user_error():
            result = colorizer.colorize(
                photo, render_size=_render_size(render_size), saturation=float(saturation), seed=self._seed(seed)
            )
        folder = self.scratch.folder()
        before = folder / f"{_stem(image)}-original.jpg"
        after = folder / f"{_stem(image)}-colorized.png"
        _save_for_display(photo, before)
        save_png(result, after)  # Pillow's encoder took longer than colorizing (colorize.png)
        return str(after), {"before": str(before), "after": str(after)}

    def variations(
        self,
        image: str | None,
        model: str = SHIPPED,
        render_size: float | None = None,
        saturation: float = 1.0,
        seed: float | None = None,
        count: float = 4,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[list[tuple[str, str]], dict]:
        """`count` samples of the model's dropout noise, seeds seed, seed+1, ...; a gallery to pick from."""
        photo = self._open(image)
        colorizer = self.catalog.get(model)
        first = self._seed(seed) or 0
        count = max(1, min(MAX_VARIATIONS, int(count)))
        folder = self.scratch.folder()
        before = folder / f"{_stem(image)}-original.jpg"
        _save_for_display(photo, before)
        items = []
        for offset in progress.tqdm(range(count), desc="Variations"):
            with _out_of_memory_as_user_error():
                result = colorizer.colorize(
                    photo, render_size=_render_size(render_size), saturation=float(saturation), seed=first + offset
                )
            path = folder / f"{_stem(image)}-seed{first + offset}.png"
            save_png(result, path)
            items.append((str(path), f"seed {first + offset}"))
        return items, {"before": str(before), "items": [path for path, _ in items]}

    def batch(
        self,
        files: list[str] | None,
        model: str = SHIPPED,
        render_size: float | None = None,
        saturation: float = 1.0,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, str]:
        """Images and ZIP archives in; a ZIP of full-size PNGs (with report.txt) and the report out."""
        if not files:
            raise user_error("Add some images or a ZIP archive of images first.")
        colorizer = self.catalog.get(model)
        output = self.scratch.folder() / "colorized.zip"
        result = colorize_batch(
            colorizer, files, output, render_size=_render_size(render_size), saturation=float(saturation)
        )
        if not result.colorized:
            gr.Warning("None of the files could be colorized; the report says why.")
        return str(output), result.report()

    # -- layout -----------------------------------------------------------------------------

    def render_note(self, model: str | None, render_size: float | None) -> str:
        """The model's one-line note when the render size leaves the range it was trained for, else ''."""
        try:
            settings = self.catalog.get(model).settings
        except gr.Error:
            return ""
        return settings.render_size_note(_render_size(render_size)) or ""

    def model_defaults(self, model: str | None):
        """The render slider set to the chosen model's own render size, and no note."""
        try:
            settings = self.catalog.get(model).settings
        except gr.Error:
            return gr.skip(), gr.skip()
        return gr.Slider(value=settings.render_size), ""

    def _controls(self, prefix: str) -> tuple[gr.Dropdown, gr.Slider, gr.Slider]:
        default = self.catalog.get(SHIPPED).settings
        model = gr.Dropdown(
            choices=self.catalog.choices(),
            value=SHIPPED,
            label="Model",
            info="The shipped model, or a checkpoint folder from the models directory.",
            allow_custom_value=True,  # the catalog checks names, so folders added later work from the API too
            elem_id=f"{prefix}-model",
        )
        render_size = gr.Slider(
            *RENDER_SIZES,
            value=default.render_size,
            step=RENDER_SIZE_STEP,
            label="Render size",
            info="The network's working resolution; the model's own size (where the slider starts) gives its most reliable colours.",
            elem_id=f"{prefix}-render-size",
        )
        note = gr.Markdown("", elem_id=f"{prefix}-render-note")
        saturation = gr.Slider(
            0.0, 2.0, value=1.0, step=0.05, label="Colour strength", info="0 is gray, 1 as the model was calibrated, 2 doubled.",
            elem_id=f"{prefix}-saturation",
        )
        render_size.change(self.render_note, [model, render_size], [note], api_visibility="private", queue=False)
        model.change(self.model_defaults, [model], [render_size, note], api_visibility="private", queue=False)
        return model, render_size, saturation

    def build_colorize_tab(self) -> list[gr.Dropdown]:
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                image = gr.Image(
                    sources=["upload", "clipboard", "webcam"],
                    type="filepath",
                    image_mode=None,
                    format="png",
                    label="Black-and-white photo",
                    elem_id="input-image",
                    height=360,
                )
                _pass_original_file(image)
                model, render_size, saturation = self._controls("colorize")
                button = gr.Button("Colorize", variant="primary", elem_id="colorize-button")
                with gr.Accordion("Variations", open=False):
                    gr.Markdown(
                        "The network has a little built-in randomness (pix2pix's dropout noise). "
                        "Sample it a few times and pick the colours you like."
                    )
                    with gr.Row():
                        seed = gr.Number(
                            value=None,
                            precision=0,
                            label="Seed",
                            info="Empty: the model's steady colours. A number: one sample of its noise.",
                            elem_id="seed",
                        )
                        count = gr.Slider(2, MAX_VARIATIONS, value=4, step=1, label="Variations")
                    variations_button = gr.Button("Make variations", elem_id="variations-button")
            with gr.Column(scale=1):
                slider = gr.ImageSlider(
                    label="Before / after", type="filepath", format="png", elem_id="result-slider", max_height=600
                )
                download = gr.DownloadButton(
                    "Download full-size PNG", visible=False, variant="primary", elem_id="download-button"
                )
                gallery = gr.Gallery(
                    label="Variations: pick one", visible=False, columns=4, height="auto", format="png",
                    elem_id="variations-gallery", allow_preview=False,
                )
        examples = gr.Examples(
            examples=[[str(path)] for path in self.examples],
            inputs=[image],
            label="Real black-and-white and grayed photos: click one to colorize it",
            examples_per_page=len(self.examples),
            api_visibility="private",
        )

        result = gr.State()
        picked = gr.State()
        inputs = [image, model, render_size, saturation, seed]

        def show(state: dict | None):
            if not state:
                return gr.skip(), gr.skip(), gr.skip()
            after = state["after"]
            # A new result puts away the variations of the previous one.
            return (state["before"], after), gr.DownloadButton(value=after, visible=True), gr.Gallery(visible=False)

        def pick(state: dict | None, event: gr.SelectData):
            if not state or event.index is None:
                return gr.skip(), gr.skip()
            chosen = state["items"][event.index]
            return (state["before"], chosen), gr.DownloadButton(value=chosen, visible=True)

        # The button is the public API endpoint /colorize: image in, full-size PNG out. The slider
        # is filled by a follow-up step, so API callers get the one file and nothing else.
        button.click(
            self.colorize, inputs, [download, result], api_name="colorize", concurrency_id="model", concurrency_limit=1
        ).success(show, [result], [slider, download, gallery], api_visibility="private", queue=False)
        examples.load_input_event.then(
            self.colorize, inputs, [download, result], api_visibility="private", concurrency_id="model", concurrency_limit=1
        ).success(show, [result], [slider, download, gallery], api_visibility="private", queue=False)

        variations_button.click(
            self.variations,
            inputs=[*inputs, count],
            outputs=[gallery, picked],
            api_name="variations",
            concurrency_id="model",
            concurrency_limit=1,
        ).success(
            lambda: gr.Gallery(visible=True), None, [gallery], api_visibility="private", queue=False
        )
        gallery.select(pick, [picked], [slider, download], api_visibility="private", queue=False)
        return [model]

    def build_batch_tab(self) -> list[gr.Dropdown]:
        gr.Markdown(
            "Colorize many photos at once: drop image files or ZIP archives of images. "
            "You get one ZIP of full-size PNGs; files that cannot be read are skipped and listed in "
            "`report.txt` inside it."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                files = gr.File(file_count="multiple", label="Images or ZIP archives", elem_id="batch-files")
                model, render_size, saturation = self._controls("batch")
                button = gr.Button("Colorize all", variant="primary", elem_id="batch-button")
            with gr.Column(scale=1):
                archive = gr.File(label="Colorized images (ZIP)", elem_id="batch-output", interactive=False)
                report = gr.Textbox(label="Report", lines=6, elem_id="batch-report", interactive=False)
        button.click(
            self.batch,
            inputs=[files, model, render_size, saturation],
            outputs=[archive, report],
            api_name="colorize_batch",
            concurrency_id="model",
            concurrency_limit=1,
        )
        return [model]


# ---------------------------------------------------------------------------------------------
# Real or fake? (the survey)
# ---------------------------------------------------------------------------------------------

# Hides the stimulus `exposure` ms after it is first on screen (in view, images decoded); the
# answer buttons stay. In a background tab or scrolled away, the clock has not started yet.
STIMULUS_JS = """
const arm = () => {
  const box = element.querySelector('.stimulus');
  if (!box || box.dataset.armed) return;
  box.dataset.armed = '1';
  const ms = Number(box.dataset.exposure || 0);
  if (!ms) return;
  const images = Array.from(box.querySelectorAll('img'));
  const seen = new IntersectionObserver((entries) => {
    if (!entries.some((entry) => entry.isIntersecting)) return;
    seen.disconnect();
    Promise.all(images.map((img) => img.decode().catch(() => null))).then(() => {
      setTimeout(() => box.classList.add('expired'), ms);
    });
  });
  seen.observe(box);
};
arm();
watch('value', arm);
"""


def stimulus_html(images: tuple[bytes, ...] | list[bytes], *, exposure_ms: int | None, mode: str) -> str:
    """The images of one trial inline as PNG data (no file name, no URL to compare), hidden after exposure_ms."""
    import base64

    captions = ("Left", "Right") if mode == "pair" and len(images) == 2 else ("",) * len(images)
    figures = "".join(
        f'<figure><img alt="{caption or "Photo"}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{caption}</figcaption></figure>"
        for png, caption in zip(images, captions)
    )
    exposure = int(exposure_ms or 0)
    note = "The photos are hidden now: answer below." if len(images) > 1 else "The photo is hidden now: answer below."
    return (
        f'<div class="stimulus" data-exposure="{exposure}" data-nonce="{secrets.token_hex(4)}">{figures}'
        f'<p class="stimulus-note">{note}</p></div>'
    )


class SurveyUI:
    """The "Real or fake?" tab: consent, instructions, practice with feedback, test, thank-you, admin.

    Every handler is one short call into `survey.store.Store`. What reaches the browser is the
    `screen` (what to show, with opaque trial ids) and the images as inline PNG data: never
    which image is real or which method made a fake. The participant's token lives in the
    browser (gr.BrowserState), one per study, so a reload resumes where they left off.
    """

    def __init__(self, store: Any, *, scratch: Scratch, store_problem: str | None = None) -> None:
        self.store = store
        self.scratch = scratch
        self.store_problem = store_problem

    # -- helpers ----------------------------------------------------------------------------

    def studies(self) -> list[str]:
        if self.store is None:
            return []
        return [study.name for study in self.store.list_studies()]

    def default_study(self) -> str | None:
        names = self.studies()
        return "demo" if "demo" in names else (names[-1] if names else None)

    def _closed(self, message: str | None = None) -> dict:
        return {"screen": "closed", "message": message or self.store_problem or "No study is running at the moment."}

    @staticmethod
    def _token(saved: Any, study: str | None) -> str | None:
        if isinstance(saved, dict) and study and isinstance(saved.get(study), str):
            return saved[study]
        return None

    def _current(self, study: str, token: str) -> tuple[dict, str, tuple]:
        """The participant's screen now: their next trial or, when all are answered, the thank-you page."""
        trial = self.store.next_trial(token)
        if trial is None:
            return self._done(study, token), "", ()
        screen = {
            "screen": "trial",
            "study": study,
            "trial_id": trial.trial_id,
            "phase": trial.phase,
            "progress": f"Practice {trial.index} / {trial.total}" if trial.phase == "practice" else f"{trial.index} / {trial.total}",
            "mode": trial.mode,
            "prompt": trial.prompt,
            "choices": list(trial.choices),
            "exposure_ms": trial.exposure_ms,
        }
        images = (tuple(trial.images), trial.mode)
        return screen, stimulus_html(trial.images, exposure_ms=trial.exposure_ms, mode=trial.mode), images

    def _done(self, study: str, token: str) -> dict:
        score = self.store.participant_score(token)
        result = score_text(self.store.get_protocol(study).mode, score.correct, score.answered)
        return {"screen": "done", "study": study, "score": result}

    def _unfinished(self, saved: Any, study: str) -> bool:
        token = self._token(saved, study)
        try:
            return token is not None and not self.store.is_finished(token)
        except SurveyError:
            return False

    def _guard(self, study: str | None) -> str:
        if self.store is None:
            raise user_error(self.store_problem or "The study database is not available.")
        if not study:
            raise user_error("No study is running at the moment.")
        return study

    # -- handlers (each is also an API endpoint) ---------------------------------------------

    def _where(self, study: str, token: str | None) -> tuple[dict, str, tuple]:
        """The screen for `token` in `study` now: consent, instructions, its current trial, or done."""
        protocol = self.store.get_protocol(study)
        progress = self.store.progress(token) if token is not None else None
        if progress is None or progress.phase == "consent":
            return {"screen": "consent", "study": study, "text": protocol.consent}, "", ()
        if progress.phase == "finished":
            return self._done(study, token), "", ()
        if progress.practice_done == 0 and progress.test_done == 0:
            return {"screen": "instructions", "study": study, "text": protocol.instructions}, "", ()
        return self._current(study, token)

    def open(self, study: str | None, saved: Any) -> tuple[Any, dict, str, tuple]:
        """Where this browser stands in `study` (on page load, and when another study is picked).

        The saved tokens come back unchanged (gr.skip) unless the one for `study` is unknown to
        the database (a reset database): then it is dropped and the participant starts afresh.
        """
        if self.store is None or not study:
            return gr.skip(), self._closed(), "", ()
        token, keep = self._token(saved, study), gr.skip()
        try:
            if token is not None:
                try:
                    self.store.progress(token)
                except SurveyError:
                    token, keep = None, {k: v for k, v in saved.items() if k != study}
            return keep, *self._where(study, token)
        except SurveyError as error:
            return keep, self._closed(str(error)), "", ()

    def consent(self, study: str | None, saved: Any) -> tuple[Any, dict, str, tuple]:
        """The participant agrees: they are registered (all trials assigned) and see the instructions.

        A browser that already has a valid token for the study keeps it, so agreeing twice (two
        tabs, a double click) registers one participant; a finished one stays finished.
        """
        study = self._guard(study)
        saved = dict(saved) if isinstance(saved, dict) else {}
        try:
            token = self._token(saved, study)
            if token is not None:
                try:
                    self.store.progress(token)
                except SurveyError:
                    token = None
            if token is None:
                token = self.store.start_participant(study)
                saved[study] = token
            self.store.consent(token)
            return saved, *self._where(study, token)
        except SurveyError as error:
            raise user_error(error) from None

    def proceed(self, study: str | None, saved: Any) -> tuple[Any, dict, str, tuple]:
        """Show the participant's current trial (after the instructions, or after practice feedback)."""
        study = self._guard(study)
        token = self._token(saved, study)
        if token is None:
            raise user_error("Please agree to take part first.")
        try:
            screen, html_, images = self._current(study, token)
        except SurveyError as error:
            raise user_error(error) from None
        return saved, screen, html_, images

    def answer(self, study: str | None, saved: Any, screen: dict | None, choice: str, shown: tuple = ()) -> tuple[Any, dict, str, tuple]:
        """Store the answer to the trial on screen (the first answer wins); practice gets feedback."""
        study = self._guard(study)
        token = self._token(saved, study)
        if token is None or not isinstance(screen, dict) or screen.get("screen") != "trial":
            raise user_error("There is no trial on screen to answer; reload the page to continue.")
        try:
            result = self.store.answer(token, screen.get("trial_id"), str(choice).strip().lower())
            if result.feedback is not None:
                feedback = {**screen, "screen": "feedback", "feedback": result.feedback, "correct": result.correct}
                again = stimulus_html(shown[0], exposure_ms=None, mode=shown[1]) if shown else ""
                return saved, feedback, again, ()
            screen, html_, images = self._current(study, token)
        except SurveyError as error:
            raise user_error(error) from None
        return saved, screen, html_, images

    def _button_answer(self, index: int) -> Callable:
        """The handler of the index-th answer button: its choice is the screen's index-th choice."""

        def handler(study: str | None, saved: Any, screen: dict | None, shown: tuple):
            choices = screen.get("choices") if isinstance(screen, dict) else None
            return self.answer(study, saved, screen, choices[index] if choices else "", shown)

        return handler

    def answer_api(self, study: str, saved: dict, screen: dict, choice: str) -> tuple[dict, dict, str]:
        """Answer the trial on `screen` with `choice` ("left" | "right" in pair mode, "real" | "fake" in
        single mode); returns the saved tokens, the next screen and its images as HTML."""
        saved_out, next_screen, images, _ = self.answer(study, saved, screen, choice)
        return saved_out, next_screen, images

    # -- admin --------------------------------------------------------------------------------

    def admin(self, password: str, study: str | None) -> tuple[str, Any, Any, str | None]:
        """Status, summary table, main plot and a CSV export of `study`, for the admin password only."""
        from survey.report import ReportOptions, export_responses, fooling_rate_figure, study_options, summary_table
        from survey.settings import check_admin

        if not check_admin(password):
            raise user_error("That is not the admin password.")
        study = self._guard(study)
        try:
            status = self.store.study_status(study)
            frame = self.store.trials_frame(study)
            options = study_options(ReportOptions(n_boot=500), self.store.get_protocol(study))  # 500: it refreshes live
        except SurveyError as error:
            raise user_error(error) from None
        lines = [
            f"**{status['study']}**: {status['mode']} mode, {status['images']} images, methods "
            f"{', '.join(status['methods'])}.",
            f"Participants: {status['participants_started']} started, {status['participants_consented']} consented, "
            f"{status['participants_finished']} finished. Responses: {status['responses']} of "
            f"{status['trials_assigned']} assigned trials.",
        ]
        table = figure = None
        try:
            summary = summary_table(frame, n_boot=options.n_boot, exclude_reshown=options.exclude_reshown)
            table = _display_summary(summary)
            figure = fooling_rate_figure(summary, title=f"{study}: fooling rate per method")
        except SurveyError as error:
            lines.append(f"No summary yet: {error}")
        except ValueError as error:  # a plotting corner case must not hide the status and the export
            logger.warning("The fooling-rate plot of %s failed: %s", study, error)
            lines.append("The plot could not be drawn for these numbers.")
        export = self.scratch.folder() / f"{_stem(study)}-responses.csv"
        export_responses(frame, export, options=options)  # with the report's quality-control decision on every answer
        return "\n\n".join(lines), table, figure, str(export)

    # -- layout -------------------------------------------------------------------------------

    def build_tab(self, demo: gr.Blocks, tabs: gr.Tabs, saved: gr.BrowserState) -> None:
        names = self.studies()
        screen = gr.JSON(visible=False)
        shown = gr.State(())
        study = gr.Dropdown(
            choices=names, value=self.default_study(), label="Study", visible=len(names) > 1, elem_id="survey-study"
        )
        with gr.Column(visible=True, elem_id="survey-closed") as closed_box:
            closed_text = gr.Markdown(self._closed()["message"])
        with gr.Column(visible=False, elem_id="survey-consent") as consent_box:
            gr.Markdown("## Real or fake?\nCan you tell real colour photos from ones coloured by a computer?")
            consent_text = gr.Markdown(elem_id="survey-consent-text")
            agree = gr.Button("I agree, take part", variant="primary", elem_id="survey-agree")
        with gr.Column(visible=False, elem_id="survey-instructions") as instructions_box:
            gr.Markdown("## How it works")
            instructions_text = gr.Markdown(elem_id="survey-instructions-text")
            begin = gr.Button("Start", variant="primary", elem_id="survey-begin")
        with gr.Column(visible=False, elem_id="survey-trial") as trial_box:
            progress = gr.Markdown(elem_id="survey-progress")
            stimulus = gr.HTML(elem_id="survey-stimulus", js_on_load=STIMULUS_JS)
            prompt = gr.Markdown(elem_id="survey-prompt")
            with gr.Row(visible=True) as answer_row:
                first = gr.Button("Left", variant="secondary", elem_id="survey-choice-0", size="lg")
                second = gr.Button("Right", variant="secondary", elem_id="survey-choice-1", size="lg")
            with gr.Column(visible=False) as feedback_box:
                feedback = gr.Markdown(elem_id="survey-feedback")
                next_button = gr.Button("Next", variant="primary", elem_id="survey-next")
        with gr.Column(visible=False, elem_id="survey-done") as done_box:
            gr.Markdown("## Thank you!\nYour answers are saved.")
            score = gr.Markdown(elem_id="survey-score")

        boxes = [closed_box, consent_box, instructions_box, trial_box, done_box]
        texts = [closed_text, consent_text, instructions_text, progress, prompt, first, second, answer_row, feedback_box, feedback, score]

        def render(state: dict | None):
            state = state or self._closed()
            kind = state.get("screen", "closed")
            visible = {"closed": 0, "consent": 1, "instructions": 2, "trial": 3, "feedback": 3, "done": 4}.get(kind, 0)
            choices = state.get("choices") or ["left", "right"]
            return [
                *(gr.Column(visible=i == visible) for i in range(len(boxes))),
                state.get("message", ""),
                state.get("text", "") if kind == "consent" else "",
                state.get("text", "") if kind == "instructions" else "",
                f"**{state.get('progress', '')}**",
                f"### {state.get('prompt', '')}",
                gr.Button(choices[0].capitalize()),
                gr.Button(choices[1].capitalize()),
                gr.Row(visible=kind == "trial"),
                gr.Column(visible=kind == "feedback"),
                f"### {state.get('feedback', '')}" if kind == "feedback" else "",
                state.get("score", ""),
            ]

        outputs = [saved, screen, stimulus, shown]
        common = dict(outputs=outputs, concurrency_id="survey", concurrency_limit=8)
        then = dict(fn=render, inputs=[screen], outputs=[*boxes, *texts], api_visibility="private", queue=False)

        study.change(self.open, [study, saved], api_name="survey_open", **common).then(**then)
        # On every page load: the list of studies, then where this browser stands (resume).
        def pick_study(saved: Any, request: gr.Request):
            """The study named in the link (?study=NAME), else one this browser is part-way through, else the default."""
            names = self.studies()
            wanted = request.query_params.get("study") if request else None
            if wanted not in names:
                wanted = next((name for name in names if self._unfinished(saved, name)), self.default_study())
            return gr.Dropdown(choices=names, value=wanted, visible=len(names) > 1)

        def show_tab(state: dict | None, request: gr.Request):
            """Open this tab for a participant who is mid-study or came by a study link."""
            linked = bool(request and request.query_params.get("study"))
            busy = isinstance(state, dict) and state.get("screen") in ("instructions", "trial", "feedback")
            return gr.Tabs(selected="survey") if linked or busy else gr.skip()

        demo.load(pick_study, [saved], [study], api_visibility="private", queue=False).then(
            self.open, [study, saved], api_visibility="private", **common
        ).then(**then).then(show_tab, [screen], [tabs], api_visibility="private", queue=False)
        agree.click(self.consent, [study, saved], api_name="survey_consent", **common).success(**then)
        begin.click(self.proceed, [study, saved], api_name="survey_next", **common).success(**then)
        next_button.click(self.proceed, [study, saved], api_visibility="private", **common).success(**then)
        for index, button in enumerate((first, second)):
            button.click(
                self._button_answer(index), [study, saved, screen, shown], api_visibility="private", **common
            ).success(**then)
        gr.api(self.answer_api, api_name="survey_answer", concurrency_id="survey", concurrency_limit=8)

        with gr.Accordion("Study admin", open=False, elem_id="survey-admin"):
            from survey.settings import admin_password

            if admin_password() is None:
                gr.Markdown("The admin view is off: set the `SURVEY_ADMIN_PASSWORD` environment variable to turn it on.")
                return
            with gr.Row():
                password = gr.Textbox(type="password", label="Admin password", elem_id="admin-password", scale=3)
                admin_study = gr.Dropdown(choices=names, value=self.default_study(), label="Study", scale=2, elem_id="admin-study")
                show = gr.Button("Show", elem_id="admin-show", scale=1)
            status = gr.Markdown(elem_id="admin-status")
            table = gr.Dataframe(label="Summary", interactive=False, elem_id="admin-table")
            plot = gr.Plot(label="Fooling rate", elem_id="admin-plot")
            export = gr.DownloadButton("Download responses (CSV)", visible=False, elem_id="admin-export")
            timer = gr.Timer(15, active=False)
            admin_outputs = [status, table, plot, export]
            show.click(
                self.admin, [password, admin_study], admin_outputs, api_name="survey_admin", api_visibility="undocumented"
            ).success(lambda: (gr.DownloadButton(visible=True), gr.Timer(active=True)), None, [export, timer], api_visibility="private", queue=False)
            timer.tick(self.admin, [password, admin_study], admin_outputs, api_visibility="private", show_progress="hidden")


def _display_summary(summary: Any) -> Any:
    """The summary table as people read it: percentages and intervals as text.

    `rate` is the fooling rate for fakes (pair: picked as the real photo; single: judged real)
    and, in single mode, the share of real photos judged real.
    """

    def pct(value: float) -> str:
        return "n/a" if value != value else f"{100 * value:.0f}%"

    rows = []
    for _, row in summary.iterrows():
        rows.append(
            {
                "method": row["method"],
                "trials": int(row["n_trials"]),
                "participants": int(row["n_participants"]),
                "shown": row["stimulus"],
                "rate": pct(row["rate"]),
                "95% interval": f"{pct(row['ci_low'])} to {pct(row['ci_high'])}",
                "interval from": row["ci_method"],
                "Wilson 95% (trials independent)": f"{pct(row['wilson_low'])} to {pct(row['wilson_high'])}",
                "p (clustered)": "n/a" if row["p_cluster"] != row["p_cluster"] else f"{row['p_cluster']:.3g}",
                "verdict": row["verdict"],
            }
        )
    import pandas as pd

    return pd.DataFrame(rows)



def _pass_original_file(component: gr.Image) -> gr.Image:
    """Hand the uploaded file itself to the handler, unopened.

    Gradio's own preprocessing opens the upload with PIL first, so a non-image or a
    decompression bomb would fail there with a message we cannot word. Our handlers read
    the file with `colorize.imageio.load_image` instead (CMYK, 16-bit, EXIF, plain errors).
    The path is still one Gradio has checked to be inside its upload folder.
    """
    convert = component.preprocess

    def preprocess(payload):
        if payload is None or getattr(payload, "path", None) is None:
            return convert(payload)  # a data: URL from the webcam or the clipboard
        return str(payload.path)

    component.preprocess = preprocess
    return component


def build_app(
    *,
    colorizer_loader: Callable[[Path | None], Any] | None = None,
    untrained_loader: Callable[[], Any] | None = None,
    store: Any = None,
    db_url: str | None = None,
    models_dir: str | Path = "models",
    shipped_model: str | Path | None = None,
    examples_dir: str | Path | None = None,
) -> gr.Blocks:
    """The whole app. Loads the shipped model now; other models load on first use.

    store: a `survey.store.Store`; by default one is opened at `db_url` (or wherever
    `survey.settings.database_url` points). If that fails the app still starts and the
    survey tab says why.
    """
    from colorize import Colorizer

    catalog = ModelCatalog(
        Path(models_dir),
        loader=colorizer_loader or (lambda path: Colorizer.from_pretrained(shipped_model if path is None else path)),
        fallback=untrained_loader or Colorizer.untrained,
    )
    examples = write_examples(Path(examples_dir) if examples_dir else default_cache_dir() / "examples")
    scratch = Scratch()
    colorize_ui = ColorizeUI(catalog, scratch, examples)
    problem = None
    if store is None:
        try:
            store = Store(database_url(db_url))
        except SurveyError as error:
            logger.error("The survey is off: %s", error)
            problem = f"The study is not available right now: {error}"
    survey_ui = SurveyUI(store, scratch=scratch, store_problem=problem)

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
        gr.Markdown(f"⚠️ {UNTRAINED_WARNING}.", visible=catalog.untrained, elem_id="warning-banner")
        # The survey tokens, one per study, in the browser. Declared here, outside the tabs, so it
        # is read from localStorage when the page loads, not only once its tab is opened.
        # Gradio encrypts it with `secret`, which the page itself carries: that keeps the token out
        # of casual view, no more. A fixed secret keeps tokens readable across app restarts.
        saved_tokens = gr.BrowserState({}, storage_key="colorize-survey-tokens", secret="colorize-survey-v1")
        model_menus: list[gr.Dropdown] = []
        with gr.Tabs() as tabs:
            with gr.Tab("Colorize", id="colorize"):
                model_menus += colorize_ui.build_colorize_tab()
            with gr.Tab("Batch", id="batch"):
                model_menus += colorize_ui.build_batch_tab()
            with gr.Tab("Real or fake?", id="survey"):
                survey_ui.build_tab(demo, tabs, saved_tokens)

        def refresh_models():
            return [gr.Dropdown(choices=catalog.choices()) for _ in model_menus]

        demo.load(refresh_models, None, model_menus, api_visibility="private", queue=False)
    demo.catalog, demo.store = catalog, store  # for main() and tests
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
        css=CSS,
        footer_links=["api"],
        run_history=False,  # it would keep every answer and image in the browser's localStorage
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings.from_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # both cores of a small Space, for one request at a time
    from colorize.compose import resolve_kernel

    # numba loads the compiled full-resolution kernel in about a second (and compiles it, once per
    # machine, in about ten): in the background, while the model loads, not in the first request.
    threading.Thread(target=resolve_kernel, args=("auto",), daemon=True).start()
    demo = build_app(models_dir=settings.models_dir, db_url=settings.db_url, shipped_model=settings.shipped_model)
    if settings.create_demo and demo.store is not None:
        from survey.demo import create_demo

        # In the background: the page is up at once, the study appears on the next page load.
        threading.Thread(target=create_demo, args=(demo.store,), kwargs={"progress": False}, daemon=True).start()
    launch(demo, settings)


if __name__ == "__main__":
    main()
