"""The Gradio app: colorize photos, colorize archives, and run the "Real or fake?" study.

    python app.py [--host 0.0.0.0] [--port 7860] [--models-dir models] [--db sqlite:///survey.sqlite]

UI only: pictures are coloured by `colorize`, every survey read and write goes through
`survey.store.Store`. Settings come from flags or the environment (see `Settings`).
"""

from __future__ import annotations

import argparse
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
from colorize.imageio import DEFAULT_MAX_PIXELS, ImageLoadError, load_image

logger = logging.getLogger("app")

SHIPPED = "shipped"
UNTRAINED_WARNING = "No trained weights found: showing an untrained model"
RENDER_SIZES = (128, 1024)
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
    queue_size: int = 32

    @classmethod
    def from_args(cls, argv: list[str] | None = None, environ: dict[str, str] | None = None) -> "Settings":
        environ = dict(os.environ if environ is None else environ)
        on_spaces = bool(environ.get("SPACE_ID"))
        parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
        parser.add_argument(
            "--host",
            default=environ.get("COLORIZE_HOST") or ("0.0.0.0" if on_spaces else "127.0.0.1"),
            help="interface to listen on (env COLORIZE_HOST; 0.0.0.0 on Hugging Face Spaces, else 127.0.0.1)",
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
        parser.add_argument("--queue-size", type=int, default=32, help="requests that may wait in the queue")
        args = parser.parse_args(argv)
        return cls(host=args.host, port=args.port, models_dir=args.models_dir, db_url=args.db, queue_size=args.queue_size)


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


def _stem(path: str | None) -> str:
    stem = Path(path).stem if path else "image"
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem).strip("-")
    return keep[:60] or "image"


def write_examples(folder: Path) -> list[Path]:
    """Gray versions of a few skimage.data photos, written once into `folder` (a cache, not the repo)."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in EXAMPLES:
        path = folder / f"{name}.png"
        if not path.is_file():
            Image.fromarray(getattr(data, name)()).convert("L").save(path)
        paths.append(path)
    return paths


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
#survey-stimulus img {max-height: 60vh; object-fit: contain;}
#survey-progress {text-align: center; font-size: 1.1rem;}
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
        render_size: float = 256,
        saturation: float = 1.0,
        seed: float | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict]:
        """Colorize one image; returns the full-size PNG (the API's answer) and what the slider shows."""
        photo = self._open(image)
        colorizer = self.catalog.get(model)
        progress(0.1, desc="Colorizing")
        result = colorizer.colorize(
            photo, render_size=int(render_size), saturation=float(saturation), seed=self._seed(seed)
        )
        folder = self.scratch.folder()
        before = folder / f"{_stem(image)}-original.png"
        after = folder / f"{_stem(image)}-colorized.png"
        photo.save(before, compress_level=1)
        result.save(after, compress_level=3)
        return str(after), {"before": str(before), "after": str(after)}

    def variations(
        self,
        image: str | None,
        model: str = SHIPPED,
        render_size: float = 256,
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
        before = folder / f"{_stem(image)}-original.png"
        photo.save(before, compress_level=1)
        items = []
        for offset in progress.tqdm(range(count), desc="Variations"):
            result = colorizer.colorize(
                photo, render_size=int(render_size), saturation=float(saturation), seed=first + offset
            )
            path = folder / f"{_stem(image)}-seed{first + offset}.png"
            result.save(path, compress_level=1)
            items.append((str(path), f"seed {first + offset}"))
        return items, {"before": str(before), "items": [path for path, _ in items]}

    def batch(
        self,
        files: list[str] | None,
        model: str = SHIPPED,
        render_size: float = 256,
        saturation: float = 1.0,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, str]:
        """Images and ZIP archives in; a ZIP of full-size PNGs (with report.txt) and the report out."""
        if not files:
            raise user_error("Add some images or a ZIP archive of images first.")
        colorizer = self.catalog.get(model)
        output = self.scratch.folder() / "colorized.zip"
        result = colorize_batch(
            colorizer, files, output, render_size=int(render_size), saturation=float(saturation)
        )
        if not result.colorized:
            gr.Warning("None of the files could be colorized; the report says why.")
        return str(output), result.report()

    # -- layout -----------------------------------------------------------------------------

    def _controls(self, prefix: str) -> tuple[gr.Dropdown, gr.Slider, gr.Slider]:
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
            value=256,
            step=32,
            label="Render size",
            info="The network's working resolution: larger keeps finer colour detail but is slower.",
            elem_id=f"{prefix}-render-size",
        )
        saturation = gr.Slider(
            0.0, 2.0, value=1.0, step=0.05, label="Colour strength", info="0 is gray, 1 as predicted, 2 doubled.",
            elem_id=f"{prefix}-saturation",
        )
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
                return gr.skip(), gr.skip()
            return (state["before"], state["after"]), gr.DownloadButton(value=state["after"], visible=True)

        def pick(state: dict | None, event: gr.SelectData):
            if not state or event.index is None:
                return gr.skip(), gr.skip()
            chosen = state["items"][event.index]
            return (state["before"], chosen), gr.DownloadButton(value=chosen, visible=True)

        # The button is the public API endpoint /colorize: image in, full-size PNG out. The slider
        # is filled by a follow-up step, so API callers get the one file and nothing else.
        button.click(
            self.colorize, inputs, [download, result], api_name="colorize", concurrency_id="model", concurrency_limit=1
        ).success(show, [result], [slider, download], api_visibility="private", queue=False)
        examples.load_input_event.then(
            self.colorize, inputs, [download, result], api_visibility="private", concurrency_id="model", concurrency_limit=1
        ).success(show, [result], [slider, download], api_visibility="private", queue=False)

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
    models_dir: str | Path = "models",
    examples_dir: str | Path | None = None,
) -> gr.Blocks:
    """The whole app. Loads the shipped model now; other models load on first use."""
    from colorize import Colorizer

    catalog = ModelCatalog(
        Path(models_dir),
        loader=colorizer_loader or (lambda path: Colorizer.from_pretrained(path)),
        fallback=untrained_loader or Colorizer.untrained,
    )
    examples = write_examples(Path(examples_dir) if examples_dir else default_cache_dir() / "examples")
    colorize_ui = ColorizeUI(catalog, Scratch(), examples)

    with gr.Blocks(title="Colorize: black-and-white photos in colour", delete_cache=(3600, 7200)) as demo:
        gr.Markdown(
            "# Colorize\n"
            "Black-and-white photos in colour, by a conditional GAN (pix2pix family) that predicts the "
            "colour channels from the lightness. Your photo keeps its size and every detail of its tones."
        )
        gr.Markdown(f"⚠️ {UNTRAINED_WARNING}.", visible=catalog.untrained, elem_id="warning-banner")
        model_menus: list[gr.Dropdown] = []
        with gr.Tabs():
            with gr.Tab("Colorize", id="colorize"):
                model_menus += colorize_ui.build_colorize_tab()
            with gr.Tab("Batch", id="batch"):
                model_menus += colorize_ui.build_batch_tab()

        def refresh_models():
            return [gr.Dropdown(choices=catalog.choices()) for _ in model_menus]

        demo.load(refresh_models, None, model_menus, api_visibility="private", queue=False)
    demo.catalog = catalog  # for tests and main()
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
        **kwargs,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = Settings.from_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # both cores of a small Space, for one request at a time
    demo = build_app(models_dir=settings.models_dir)
    launch(demo, settings)


if __name__ == "__main__":
    main()
