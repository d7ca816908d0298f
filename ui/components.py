"""What the tabs share: a photo input that hands over the file itself, plain error sentences, the static files."""

from __future__ import annotations

import html
from pathlib import Path

import gradio as gr

STATIC = Path(__file__).resolve().parent / "static"


def static_text(name: str) -> str:
    """A CSS or JS file of `ui/static`, as text."""
    return (STATIC / name).read_text(encoding="utf-8")


def user_error(error: BaseException | str) -> gr.Error:
    """A gr.Error showing one plain sentence; the modal renders HTML, so what came from a file name is escaped."""
    return gr.Error(html.escape(str(error), quote=False), print_exception=False)


class PhotoInput(gr.Image):
    """`gr.Image(type="filepath", image_mode=None)` that hands the uploaded file itself to the handler, unopened.

    Gradio's own preprocessing opens an upload with PIL first, so a non-image or a
    decompression bomb would fail there with a message we cannot word. The handlers read the
    file with `colorize.imageio.load_image` instead (CMYK, 16-bit, EXIF, plain errors). The
    path is still one Gradio has checked to be inside its upload folder.
    """

    # Gradio's mark for a subclass drawn in the browser by its parent's component (gr.Image's).
    # No __init__ of its own: Gradio sends the browser the parameters of the class's __init__.
    is_template = True

    def preprocess(self, payload):
        if payload is None or payload.path is None or (payload.url or "").startswith("data:"):
            return super().preprocess(payload)  # a data: URL from the webcam or the clipboard
        return str(payload.path)
