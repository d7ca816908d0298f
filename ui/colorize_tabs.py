"""The Colorize and Batch tabs: their handlers (also the API endpoints /colorize, /variations, /colorize_batch) and layout.

In the Colorize tab a person also places colour points on the photo (`colorize.hint_editing`
holds them); every change colours the photo again at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from typing import NamedTuple

import gradio as gr
from PIL import Image

from colorize.batch import colorize_batch
from colorize.catalog import SHIPPED, ModelCatalog
from colorize.checkpoint import CheckpointError
from colorize.defaults import RENDER_SIZE_STEP
from colorize.hint_editing import (
    DEFAULT_COLOUR, MAX_JSON_BYTES, HintEditor, draw_markers, marker_reach, preview_size, to_photo,
)
from colorize.hints import Hint, HintError, hints_from_json
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
SUGGESTIONS = 8
NO_PHOTO = "Add a photo first: upload one, paste one or take one with the webcam."


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


def hints_value(hints: str | None) -> list[Hint] | None:
    """The hints argument (JSON: a list of {"x", "y", "color", "radius"}, or a points file); empty means none."""
    if hints is None or not str(hints).strip():
        return None
    try:
        return hints_from_json(str(hints), source="The hints argument")
    except HintError as error:
        raise user_error(error) from None


@contextlib.contextmanager
def colorizing_errors():
    """Hints that do not fit the photo or the model, and a photo too big for this machine's memory,
    get a sentence, not Gradio's bare "Error"."""
    try:
        yield
    except HintError as error:
        raise user_error(error) from None
    except (MemoryError, RuntimeError) as error:  # torch reports allocation failures as RuntimeError
        logger.exception("Colorizing failed")
        raise user_error(
            "This photo could not be colorized here, most likely for lack of memory; try a smaller render size or photo."
        ) from error


def interactive(*buttons: gr.Button, on: bool) -> list[gr.Button]:
    return [gr.Button(interactive=on) for _ in buttons]


class PointsView(NamedTuple):
    """What the Colorize tab shows of the colour points, in the order of its `view` outputs."""

    photo: object  # the input: the gray preview with the points drawn on it
    editor: object  # the HintEditor kept for the visitor
    rows: object  # the list of points
    hints: object  # the hints JSON colouring takes (also the API's argument)
    points_file: object  # the points file's download button
    note: object  # the line above the points
    colour: object  # the colour picker: the selected point's colour
    suggested: object  # the suggested colours: emptied until those of the point now selected come

    @classmethod
    def unchanged(cls, **shown) -> "PointsView":
        """Nothing changes on the page but `shown`."""
        return cls(**{field: shown.get(field, gr.skip()) for field in cls._fields})


def slider_view(state: dict | None):
    """A new result on the slider and behind the download button; it puts away the variations of the previous one."""
    if not state:
        return gr.skip(), gr.skip(), gr.skip()
    return (state["before"], state["after"]), gr.DownloadButton(value=state["after"], visible=True), gr.Gallery(visible=False)


class ColorizeTabs:
    """The Colorize and Batch tabs over one model catalog; the files they hand out live in `scratch`.

    On the page, the Colorize tab keeps two things per visitor (gr.State): `photo`, the uploaded
    file as it came ("source"), its gray preview ("base", what the input shows and the slider's
    "before"), its size, name and folder; and the `HintEditor` of its colour points.
    """

    def __init__(self, catalog: ModelCatalog, scratch: Scratch, examples: list[Path]) -> None:
        self.catalog = catalog
        self.scratch = scratch
        self.examples = examples
        # a recoloured point keeps its suggestions: only its place and the other points change them
        self._suggestions = functools.lru_cache(maxsize=64)(self._suggest)

    # -- handlers -------------------------------------------------------------------------------

    @staticmethod
    def open_photo(source: str | None):
        if not source:
            raise user_error(NO_PHOTO)
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

    @staticmethod
    def _gray(photo, folder: Path, name: str) -> Path:
        """The photo as the model sees it (its Lab lightness), at most `preview_size`, in `folder`.

        Only looked at, never downloaded: a JPEG is written several times faster than a PNG
        (`python -m colorize.bench`, "Writing the full-size PNG").
        """
        path = folder / f"{name}.jpg"
        gray = gray_image(photo).convert("L")  # exactly: its three channels are equal
        size = preview_size(gray.size)
        if size != gray.size:
            gray = gray.resize(size, Image.Resampling.LANCZOS)
        gray.save(path, format="JPEG", quality=95, subsampling=0)
        return path

    def _photo(self, image: str | None, photo: dict | None):
        """(the photo to colour, the gray "before" or None, its name): on the page the uploaded file
        itself, kept in `photo`, not the gray preview the input shows; from the API `image`."""
        if photo:
            return self.open_photo(photo["source"]), Path(photo["base"]), photo["name"]
        return self.open_photo(image), None, stem(image)

    def hints_for(self, colorizer: Colorizer, hints: str | None, *, on_page: bool) -> list[Hint] | None:
        """The hints to colour with. On the page a model that takes none colours without them (the
        points panel says so); an API caller who sends hints to such a model is told in one sentence."""
        parsed = hints_value(hints)
        if on_page and not colorizer.takes_hints:
            return None
        return parsed

    def colorize(
        self,
        image: str | None,
        model: str = SHIPPED,
        render_size: float | None = None,
        saturation: float = 1.0,
        seed: str | float | None = None,
        hints: str | None = None,
        photo: dict | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[str, dict]:
        """Colorize one image; returns the full-size PNG (the API's answer) and what the slider shows.

        hints: optional colour hints as JSON, a list of {"x": .., "y": .., "color": "#rrggbb", "radius": ..}
        in the photo's own pixels (x right, y down), for a model that takes hints.
        """
        picture, before, name = self._photo(image, photo)
        colorizer = self.colorizer(model)
        chosen = self.hints_for(colorizer, hints, on_page=photo is not None)
        made_from = [photo["source"] if photo else image, model, render_size, saturation, seed, hints]
        progress(0.1, desc="Colorizing")
        with colorizing_errors():
            result = colorizer.colorize(
                picture, render_size=render_size_value(render_size), saturation=float(saturation), seed=seed_value(seed),
                hints=chosen,
            )
        before = before or self._gray(picture, self.scratch.folder(), name)
        after = before.with_name(f"{name}-colorized.png")
        save_png(result, after)  # Pillow's encoder took longer than colorizing (colorize.png)
        return str(after), {"before": str(before), "after": str(after), "made_from": made_from}

    def variations(
        self,
        image: str | None,
        model: str = SHIPPED,
        render_size: float | None = None,
        saturation: float = 1.0,
        seed: str | float | None = None,
        count: float = 4,
        hints: str | None = None,
        photo: dict | None = None,
        progress: gr.Progress = gr.Progress(track_tqdm=True),
    ) -> tuple[list[tuple[str, str]], dict]:
        """`count` samples of the model's noise, seeds seed, seed+1, ...; a gallery to pick from. `hints` as for /colorize."""
        picture, before, name = self._photo(image, photo)
        colorizer = self.colorizer(model)
        chosen = self.hints_for(colorizer, hints, on_page=photo is not None)
        first = seed_value(seed) or 0
        count = max(1, min(MAX_VARIATIONS, int(count)))
        progress(0.1, desc=f"{count} variations")
        with colorizing_errors():
            results = colorizer.colorize_variations(
                picture, count=count, seed=first, render_size=render_size_value(render_size), saturation=float(saturation),
                hints=chosen,
            )
        before = before or self._gray(picture, self.scratch.folder(), name)
        items = []
        for offset, result in enumerate(results):
            path = before.with_name(f"{name}-seed{first + offset}.png")
            save_png(result, path)
            items.append((str(path), f"seed {first + offset}"))
        return items, {"before": str(before), "items": [path for path, _ in items]}

    def recolorize(self, shown: dict | None, image, model, render_size, saturation, seed, hints, photo):
        """The result again after the points changed, straight onto the slider; nothing to do when
        the result shown was made from these very settings (a point only selected, say), or when
        there is no result yet and no point either."""
        made_from = [photo["source"] if photo else None, model, render_size, saturation, seed, hints]
        if not photo or (shown.get("made_from") == made_from if shown else not hints):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        state = self.colorize(image, model, render_size, saturation, seed, hints, photo)[1]
        # the whole result in view: the gray "before" is what the photo beside it shows already
        return gr.ImageSlider((state["before"], state["after"]), slider_position=0), *slider_view(state)[1:], state

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

    # -- colour points --------------------------------------------------------------------------

    def hints_note(self, model: str | None, editor: HintEditor | None = None) -> str:
        """The line above the colour points: what a click does, or that the chosen model takes no hints."""
        try:
            colorizer = self.catalog.get(model)
        except CheckpointError:
            return ""
        if not colorizer.takes_hints:
            kept = " and colours without the points listed below" if editor is not None and editor.hints else ""
            return (
                f"The model {quoted(model or SHIPPED)} takes no colour hints, so a click on the photo places no point{kept}; "
                "choose a model trained with hints to colour by points."
            )
        return (editor or HintEditor((1, 1))).instruction()

    def takes_hints(self, model: str | None) -> bool:
        try:
            return self.catalog.get(model).takes_hints
        except CheckpointError:
            return False

    def _view(self, photo: dict | None, editor: HintEditor | None, model: str | None, *, keep_suggestions: bool = False) -> PointsView:
        """The page's view of `editor`'s points on `photo` (none: no photo, no points); `keep_suggestions`:
        the selected point and the others are where they were (a colour changed), so its suggestions hold."""
        if not photo or editor is None:
            return PointsView(None, None, [], "", gr.DownloadButton(value=None, visible=False), self.hints_note(model), gr.skip(), [])
        folder, name = Path(photo["folder"]), photo["name"]
        shown, points_file = photo["base"], None
        if editor.hints:
            shown = folder / f"{name}-points.jpg"
            draw_markers(Image.open(photo["base"]), editor).save(shown, format="JPEG", quality=90)
            points_file = folder / f"{name}.hints.json"
            points_file.write_text(editor.to_json(), encoding="utf-8")
        colour = editor.point(editor.selected).color if editor.selected is not None else gr.skip()
        return PointsView(
            str(shown),
            editor,
            editor.rows(),
            editor.hints_json(),
            gr.DownloadButton(value=str(points_file) if points_file else None, visible=points_file is not None),
            self.hints_note(model, editor),
            colour,
            gr.skip() if keep_suggestions else [],
        )

    def new_photo(self, image: str | None, model: str | None):
        """A new photo in the input (an upload, a paste, the webcam, an example): kept as it came,
        shown gray as the model sees it, with no points yet. No photo (the input cleared): nothing kept."""
        if not image:
            return self.forget_photo(model)
        picture = self.open_photo(image)
        folder, name = self.scratch.folder(), stem(image)
        base = self._gray(picture, folder, name)
        photo = {"source": image, "base": str(base), "size": list(picture.size), "name": name, "folder": str(folder)}
        return photo, *self._view(photo, HintEditor(picture.size), model)

    def forget_photo(self, model: str | None):
        return None, *self._view(None, None, model)

    def _edit(self, photo: dict | None, editor: HintEditor | None, model: str | None, change, *, keep_suggestions: bool = False):
        """`change(editor)` applied, and the page's view of the points after it; a mistake is one sentence."""
        if not photo or editor is None:
            raise user_error(NO_PHOTO)
        try:
            return self._view(photo, change(editor), model, keep_suggestions=keep_suggestions)
        except HintError as error:
            raise user_error(error) from None

    def place(self, photo: dict | None, editor: HintEditor | None, colour: str, model: str | None, event: gr.SelectData):
        """A click on the photo: a new point of the picker's colour, a point's marker selected, or the selected point moved there."""
        if not photo or editor is None or event.index is None:
            return PointsView.unchanged()
        if not self.takes_hints(model):  # said beside the points, in bold now that it was tried
            return PointsView.unchanged(note=f"**{self.hints_note(model, editor)}**")
        size = tuple(photo["size"])
        shown = preview_size(size)
        x, y = to_photo(tuple(event.index), shown, size)
        return self._edit(photo, editor, model, lambda e: e.click(x, y, colour or DEFAULT_COLOUR, reach=marker_reach(shown, size)))

    def recolour(self, photo: dict | None, editor: HintEditor | None, colour: str, model: str | None):
        """The picker's colour changed: the selected point takes it (with none selected, the next new point will)."""
        if not photo or editor is None or editor.selected is None:
            return PointsView.unchanged()
        return self._edit(photo, editor, model, lambda e: e.recolour(e.selected, colour), keep_suggestions=True)

    def pick_suggestion(self, photo: dict | None, editor: HintEditor | None, model: str | None, event: gr.EventData):
        """A suggested colour clicked: the selected point's colour, and the picker's."""
        if not photo or editor is None or editor.selected is None:
            return PointsView.unchanged(colour=event.color)
        return self.recolour(photo, editor, event.color, model)

    def choose_point(self, photo: dict | None, editor: HintEditor | None, model: str | None, event: gr.EventData):
        return self._edit(photo, editor, model, lambda e: e.select(int(event.index)))

    def remove_point(self, photo: dict | None, editor: HintEditor | None, model: str | None, event: gr.EventData):
        return self._edit(photo, editor, model, lambda e: e.remove(int(event.index)))

    def start_moving(self, photo: dict | None, editor: HintEditor | None, model: str | None):
        return self._edit(photo, editor, model, HintEditor.start_moving, keep_suggestions=True)

    def undo(self, photo: dict | None, editor: HintEditor | None, model: str | None):
        return self._edit(photo, editor, model, HintEditor.undo)

    def clear(self, photo: dict | None, editor: HintEditor | None, model: str | None):
        return self._edit(photo, editor, model, HintEditor.clear)

    def load_points(self, file: str | None, photo: dict | None, editor: HintEditor | None, model: str | None):
        """A points file (as downloaded from here, or a hints JSON of the command line) in place of the points."""
        if not file:
            return PointsView.unchanged()
        path = Path(file)
        if path.stat().st_size > MAX_JSON_BYTES:
            raise user_error(f"{quoted(path.name)} is not a points file: it is far larger than one.")
        text = path.read_bytes()
        return self._edit(photo, editor, model, lambda e: e.load_json(text))

    def suggest(self, photo: dict | None, editor: HintEditor | None, model: str | None, render_size: float | None) -> list[str]:
        """Colours the model finds plausible for the selected point, given the other points ([] when there is no point to suggest for)."""
        if not photo or editor is None or editor.selected is None:
            return []
        hint = editor.point(editor.selected)
        try:
            others = tuple(editor.others(editor.selected))
            return list(self._suggestions(photo["source"], model or SHIPPED, render_size_value(render_size), hint.x, hint.y, others))
        except (CheckpointError, HintError, ImageLoadError) as error:  # the point stays; only its suggestions are missing
            logger.warning("No colours to suggest: %s", error)
            return []

    def _suggest(self, source: str, model: str, render_size: int | None, x: float, y: float, others: tuple[Hint, ...]) -> tuple[str, ...]:
        colorizer = self.catalog.get(model)
        if not colorizer.takes_hints:
            return ()
        return tuple(colorizer.suggest_colours(source, x, y, hints=list(others), count=SUGGESTIONS, render_size=render_size))

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
        # ids for hints.css: on a phone the result comes right under the photo one taps
        with gr.Row(equal_height=False, elem_id="colorize-row"):
            with gr.Column(scale=1, elem_id="colorize-input-column"):
                image = PhotoInput(
                    sources=["upload", "clipboard", "webcam"],
                    type="filepath",
                    image_mode=None,
                    format="png",
                    label="Photo (as the model sees it)",
                    elem_id="input-image",
                    height=360,
                )
                with gr.Accordion("Colour points", open=True, elem_id="hints"):
                    hint_note = gr.Markdown(self.hints_note(SHIPPED), elem_id="hints-note")
                    with gr.Row(equal_height=True):
                        picker = gr.ColorPicker(DEFAULT_COLOUR, label="Colour", elem_id="hint-colour", scale=0, min_width=90)
                        suggestions = gr.HTML(
                            [], html_template=static_text("hint_suggestions.html"), js_on_load=static_text("hint_suggestions.js"),
                            elem_id="hint-suggestions", scale=1,
                        )
                    points = gr.HTML(
                        [], html_template=static_text("hint_points.html"), js_on_load=static_text("hint_points.js"),
                        elem_id="hint-points",
                    )
                    with gr.Row():
                        # narrow enough to stay one row on a phone
                        move = gr.Button("Move", size="sm", min_width=70, elem_id="hint-move")
                        undo = gr.Button("Undo", size="sm", min_width=70, elem_id="hint-undo")
                        clear = gr.Button("Clear all", size="sm", min_width=70, elem_id="hint-clear")
                    with gr.Row():
                        points_file = gr.DownloadButton("Download points", visible=False, size="sm", min_width=100, elem_id="hint-download")
                        upload_points = gr.UploadButton(
                            "Upload points", file_types=[".json"], type="filepath", size="sm", min_width=100, elem_id="hint-upload"
                        )
                    # The API's `hints` argument; on the page it carries the points to the colorizer.
                    hints = gr.Textbox("", label="Hints (JSON)", visible="hidden", elem_id="hints-json")
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
            with gr.Column(scale=1, elem_id="colorize-result-column"):
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

        photo, editor = gr.State(), gr.State()
        result, picked = gr.State(), gr.State()
        inputs = [image, model, render_size, saturation, seed]
        buttons = [button, variations_button]
        view = [image, editor, points, hints, points_file, hint_note, picker, suggestions]
        private = dict(api_visibility="private")
        instant = dict(private, queue=False, show_progress="hidden")
        one_at_a_time = dict(concurrency_id="model", concurrency_limit=1)
        reveal = f"() => ({static_text('reveal.js')})('#result-slider')"

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
            """Buttons off, `fn` with its progress on the slider, `then` on success (and the result in view), buttons on.

            Gradio 6 runs no `.then` step after a failed one, so the buttons come back in a `.failure`
            step too; that step also names the slider, which takes away the failed step's "Error" badge."""
            off = first_step(lambda: interactive(*buttons, on=False), None, buttons, **instant)
            done = off.then(fn, inputs, outputs, show_progress_on=[slider], **one_at_a_time, **api)
            done.success(then, outputs[-1:], [slider, download, gallery], **instant).then(None, None, None, js=reveal, **private, queue=False)
            done.then(lambda: interactive(*buttons, on=True), None, buttons, **instant)
            done.failure(lambda: (*interactive(*buttons, on=True), gr.skip()), None, [*buttons, slider], **instant)

        def recolour_after(event, *, recolour: bool = True) -> None:
            """After a change of the points: the result again, then the colours to suggest for the selected
            point. After a mistake, a step naming the same outputs takes away the "Error" badges on them."""
            event.failure(PointsView.unchanged, None, view, **instant)
            if not recolour:
                return
            event.success(
                self.recolorize, [result, *inputs, hints, photo], [slider, download, gallery, result], show_progress_on=[slider],
                show_progress="minimal", trigger_mode="always_last", **one_at_a_time, **private,
            ).then(
                self.suggest, [photo, editor, model, render_size], [suggestions], show_progress="hidden",
                trigger_mode="always_last", **one_at_a_time, **private,
            )

        loaded = image.input(self.new_photo, [image, model], [photo, *view], show_progress="minimal", **private)
        loaded.failure(self.forget_photo, [model], [photo, *view], **instant)  # a broken file: out of the input, and no stale photo kept
        # The button is the public API endpoint /colorize: image in, full-size PNG out. The slider
        # is filled by a follow-up step, so API callers get the one file and nothing else.
        run(button.click, self.colorize, [*inputs, hints, photo], [download, result], slider_view, api_name="colorize")
        example = examples.load_input_event.then(self.new_photo, [image, model], [photo, *view], **instant)
        run(example.success, self.colorize, [*inputs, hints, photo], [download, result], slider_view, **private)
        run(variations_button.click, self.variations, [*inputs, count, hints, photo], [gallery, picked], show_variations, api_name="variations")
        gallery.select(pick, [picked], [slider, download], **instant)

        # A click on the photo skips the queue (it is what the person waits on, and it says nothing
        # wrong: a click that cannot place a point changes nothing). The other edits queue, because
        # only a queued step can show its mistake as a sentence (a failed step that skipped the
        # queue puts a bare "Error" on its outputs).
        points_of = [photo, editor, model]
        edit = dict(private, show_progress="hidden")
        recolour_after(image.select(self.place, [photo, editor, picker, model], view, **instant))
        # .change, not .input: the picker's hex box sets its value without an input event. The change
        # the page itself makes (a point chosen shows its colour) recolours that point with its own
        # colour, which changes nothing.
        recolour_after(picker.change(self.recolour, [photo, editor, picker, model], view, trigger_mode="always_last", **edit))
        recolour_after(suggestions.pick(self.pick_suggestion, points_of, view, **edit))
        recolour_after(points.choose(self.choose_point, points_of, view, **edit))
        recolour_after(points.remove(self.remove_point, points_of, view, **edit))
        recolour_after(move.click(self.start_moving, points_of, view, **edit), recolour=False)
        recolour_after(undo.click(self.undo, points_of, view, **edit))
        recolour_after(clear.click(self.clear, points_of, view, **edit))
        recolour_after(upload_points.upload(self.load_points, [upload_points, *points_of], view, **edit))
        model.change(self.hints_note, [model, editor], [hint_note], **instant)
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
        instant = dict(api_visibility="private", queue=False, show_progress="hidden")
        done = button.click(lambda: gr.Button(interactive=False), None, [button], **instant).then(
            self.batch,
            inputs=[files, model, render_size, saturation],
            outputs=[archive, report],
            api_name="colorize_batch",
            concurrency_id="model",
            concurrency_limit=1,
        )
        done.then(lambda: gr.Button(interactive=True), None, [button], **instant)
        # Gradio 6 runs no `.then` after a failed step: the button comes back here, and naming the
        # outputs takes away the failed step's "Error" badges.
        done.failure(lambda: (gr.Button(interactive=True), gr.skip(), gr.skip()), None, [button, archive, report], **instant)
        return model
