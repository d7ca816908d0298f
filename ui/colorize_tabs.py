"""The Colorize and Batch tabs: their handlers (also the API endpoints /colorize, /variations, /colorize_batch) and layout."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import gradio as gr

from colorize.batch import colorize_batch
from colorize.catalog import SHIPPED, ModelCatalog
from colorize.checkpoint import CheckpointError
from colorize.defaults import RENDER_SIZE_STEP
from colorize.imageio import DEFAULT_MAX_PIXELS, ImageLoadError, load_image
from colorize.infer import Colorizer
from colorize.pixels import gray_image
from colorize.png import save_png
from survey.inputs import quoted

from .components import PhotoInput, static_text, user_error
from .files import Scratch, stem

logger = logging.getLogger(__name__)

RENDER_SIZES = (64, 1024)
MAX_VARIATIONS = 8


def render_size_value(value: float | None) -> int | None:
    """The slider's value as a render size; empty means the model's own."""
    return None if value is None or value == "" or value == 0 else int(value)


def seed_value(seed: str | float | None) -> int | None:
    """The Seed field's value (text, or a number from an API call); empty means no seed (the model's steady colours)."""
    text = "" if seed is None else str(seed).strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise user_error(f"{quoted(text)} is not a seed; a seed is a whole number such as 7, or empty for the model's steady colours.")
    return int(value)


@contextlib.contextmanager
def out_of_memory_as_user_error():
    """A photo too big for this machine's memory gets a sentence, not Gradio's bare "Error"."""
    try:
        yield
    except (MemoryError, RuntimeError) as error:  # torch reports allocation failures as RuntimeError
        logger.exception("Colorizing failed")
        raise user_error(
            "This photo could not be colorized here, most likely for lack of memory; try a smaller render size or photo."
        ) from error


def interactive(*buttons: gr.Button, on: bool) -> list[gr.Button]:
    return [gr.Button(interactive=on) for _ in buttons]


class ColorizeTabs:
    """The Colorize and Batch tabs over one model catalog; the files they hand out live in `scratch`."""

    def __init__(self, catalog: ModelCatalog, scratch: Scratch, examples: list[Path]) -> None:
        self.catalog = catalog
        self.scratch = scratch
        self.examples = examples

    # -- handlers -------------------------------------------------------------------------------

    @staticmethod
    def open_photo(source: str | None):
        if not source:
            raise user_error("Add a photo first: upload one, paste one or take one with the webcam.")
        try:
            return load_image(source, max_pixels=DEFAULT_MAX_PIXELS)
        except ImageLoadError as error:
            raise user_error(error) from None

    def colorizer(self, model: str | None) -> Colorizer:
        if isinstance(model, str) and model and model not in self.catalog.names():
            # Said here rather than by the catalog, so that the name is quoted as an excerpt.
            raise user_error(f"There is no model called {quoted(model)}; pick one from the list.")
        try:
            return self.catalog.get(model)
        except CheckpointError as error:
            raise user_error(error) from None

    def _gray(self, photo, name: str | None) -> Path:
        """The photo as the model sees it (its Lab lightness), in a fresh scratch folder.

        Only looked at, never downloaded: a JPEG is written several times faster than a PNG
        (`python -m colorize.bench`, "Writing the full-size PNG").
        """
        path = self.scratch.folder() / f"{stem(name)}.jpg"
        gray_image(photo).save(path, format="JPEG", quality=95, subsampling=0)
        return path

    def show_gray(self, image: str | None):
        """An upload is shown gray, as the model sees it: a colour photo's colours play no part."""
        if not image:
            return gr.skip()
        return str(self._gray(self.open_photo(image), image))

    def colorize(
        self,
        image: str | None,
        model: str = SHIPPED,
        render_size: float | None = None,
        saturation: float = 1.0,
        seed: str | float | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict]:
        """Colorize one image; returns the full-size PNG (the API's answer) and what the slider shows."""
        photo = self.open_photo(image)
        colorizer = self.colorizer(model)
        progress(0.1, desc="Colorizing")
        with out_of_memory_as_user_error():
            result = colorizer.colorize(
                photo, render_size=render_size_value(render_size), saturation=float(saturation), seed=seed_value(seed)
            )
        before = self._gray(photo, image)
        after = before.with_name(f"{stem(image)}-colorized.png")
        save_png(result, after)  # Pillow's encoder took longer than colorizing (colorize.png)
        return str(after), {"before": str(before), "after": str(after)}

    def variations(
        self,
        image: str | None,
        model: str = SHIPPED,
        render_size: float | None = None,
        saturation: float = 1.0,
        seed: str | float | None = None,
        count: float = 4,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[list[tuple[str, str]], dict]:
        """`count` samples of the model's noise, seeds seed, seed+1, ...; a gallery to pick from."""
        photo = self.open_photo(image)
        colorizer = self.colorizer(model)
        first = seed_value(seed) or 0
        count = max(1, min(MAX_VARIATIONS, int(count)))
        progress(0.1, desc=f"{count} variations")
        with out_of_memory_as_user_error():
            results = colorizer.colorize_variations(
                photo, count=count, seed=first, render_size=render_size_value(render_size), saturation=float(saturation)
            )
        before = self._gray(photo, image)
        items = []
        for offset, result in enumerate(results):
            path = before.with_name(f"{stem(image)}-seed{first + offset}.png")
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
        colorizer = self.colorizer(model)
        output = self.scratch.folder() / "colorized.zip"
        result = colorize_batch(
            colorizer, files, output, render_size=render_size_value(render_size), saturation=float(saturation)
        )
        if not result.colorized:
            gr.Warning("None of the files could be colorized; the report says why.")
        return str(output), result.report()

    def render_note(self, model: str | None, render_size: float | None) -> str:
        """The model's one-line note when the render size leaves the range it was trained for, else ''."""
        try:
            settings = self.catalog.get(model).settings
        except CheckpointError:
            return ""
        return settings.render_size_note(render_size_value(render_size)) or ""

    def model_defaults(self, model: str | None):
        """The render slider set to the chosen model's own render size, and no note."""
        try:
            settings = self.catalog.get(model).settings
        except CheckpointError:
            return gr.skip(), gr.skip()
        return gr.Slider(value=settings.render_size), ""

    def model_choices(self) -> list[tuple[str, str]]:
        """The model menu: (label, name); the shipped entry says when the untrained generator stands in."""
        shipped = f"{SHIPPED} (untrained)" if self.catalog.untrained else SHIPPED
        return [(shipped if name == SHIPPED else name, name) for name in self.catalog.names()]

    # -- layout -----------------------------------------------------------------------------------

    def _controls(self, prefix: str) -> tuple[gr.Dropdown, gr.Slider, gr.Slider]:
        model = gr.Dropdown(
            choices=self.model_choices(),
            value=SHIPPED,
            label="Model",
            info="The shipped model, or a checkpoint folder from the models directory.",
            allow_custom_value=True,  # the catalog checks names, so folders added later work from the API too
            elem_id=f"{prefix}-model",
        )
        render_size = gr.Slider(
            *RENDER_SIZES,
            value=self.catalog.get(SHIPPED).settings.render_size,
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
        instant = dict(api_visibility="private", queue=False, show_progress="hidden")
        render_size.change(self.render_note, [model, render_size], [note], **instant)
        model.change(self.model_defaults, [model], [render_size, note], **instant)
        return model, render_size, saturation

    def build_colorize_tab(self) -> gr.Dropdown:
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                image = PhotoInput(
                    sources=["upload", "clipboard", "webcam"],
                    type="filepath",
                    image_mode=None,
                    format="png",
                    label="Black-and-white photo (a colour one is shown as the model sees it)",
                    elem_id="input-image",
                    height=360,
                )
                model, render_size, saturation = self._controls("colorize")
                button = gr.Button("Colorize", variant="primary", elem_id="colorize-button")
                with gr.Accordion("Variations", open=False, elem_id="variations"):
                    gr.Markdown(
                        "The network has a little built-in randomness (its noise). "
                        "Sample it a few times and pick the colours you like."
                    )
                    with gr.Row():
                        # A textbox, not gr.Number: Gradio's number field shows an empty value as 0.
                        seed = gr.Textbox(
                            value="",
                            label="Seed",
                            placeholder="none",
                            info="Empty: the model's steady colours. A number: one sample of its noise.",
                            elem_id="seed",
                        )
                        count = gr.Slider(2, MAX_VARIATIONS, value=4, step=1, label="Variations", elem_id="variations-count")
                    variations_button = gr.Button("Make variations", elem_id="variations-button")
            with gr.Column(scale=1):
                slider = gr.ImageSlider(
                    label="Before (as the model sees it) / after", type="filepath", format="png", elem_id="result-slider", max_height=600
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
        image.input(self.show_gray, [image], [image], api_visibility="private", show_progress="minimal")

        result, picked = gr.State(), gr.State()
        inputs = [image, model, render_size, saturation, seed]
        buttons = [button, variations_button]
        reveal = f"() => ({static_text('reveal.js')})('#result-slider')"

        def show(state: dict | None):
            if not state:
                return gr.skip(), gr.skip(), gr.skip()
            # A new result puts away the variations of the previous one.
            return (state["before"], state["after"]), gr.DownloadButton(value=state["after"], visible=True), gr.Gallery(visible=False)

        def show_variations(state: dict | None):
            """The first variation on the slider and behind the download button, beside the gallery of all."""
            if not state:
                return gr.skip(), gr.skip(), gr.skip()
            first = state["items"][0]
            return (state["before"], first), gr.DownloadButton(value=first, visible=True), gr.Gallery(visible=True, selected_index=0)

        def pick(state: dict | None, event: gr.SelectData):
            if not state or event.index is None:
                return gr.skip(), gr.skip()
            chosen = state["items"][event.index]
            return (state["before"], chosen), gr.DownloadButton(value=chosen, visible=True)

        def run(first_step, fn, inputs, outputs, then, **api):
            """Buttons off, `fn` with its progress on the slider, `then` on success (and the result in view), buttons on."""
            off = first_step(lambda: interactive(*buttons, on=False), None, buttons, api_visibility="private", queue=False)
            done = off.then(fn, inputs, outputs, show_progress_on=[slider], concurrency_id="model", concurrency_limit=1, **api)
            done.success(then, outputs[-1:], [slider, download, gallery], api_visibility="private", queue=False).then(
                None, None, None, js=reveal, api_visibility="private", queue=False
            )
            done.then(lambda: interactive(*buttons, on=True), None, buttons, api_visibility="private", queue=False)

        # The button is the public API endpoint /colorize: image in, full-size PNG out. The slider
        # is filled by a follow-up step, so API callers get the one file and nothing else.
        run(button.click, self.colorize, inputs, [download, result], show, api_name="colorize")
        run(examples.load_input_event.then, self.colorize, inputs, [download, result], show, api_visibility="private")
        run(variations_button.click, self.variations, [*inputs, count], [gallery, picked], show_variations, api_name="variations")
        gallery.select(pick, [picked], [slider, download], api_visibility="private", queue=False)
        return model

    def build_batch_tab(self) -> gr.Dropdown:
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
        button.click(lambda: gr.Button(interactive=False), None, [button], api_visibility="private", queue=False).then(
            self.batch,
            inputs=[files, model, render_size, saturation],
            outputs=[archive, report],
            api_name="colorize_batch",
            concurrency_id="model",
            concurrency_limit=1,
        ).then(lambda: gr.Button(interactive=True), None, [button], api_visibility="private", queue=False)
        return model
