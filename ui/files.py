"""The files the app writes: a private scratch folder removed on every exit, and the example photos."""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

# skimage.data photos for the examples gallery: "camera" is a real black-and-white photo, the
# colour ones are shown as the colorizer sees them (`colorize.pixels.gray_image`).
EXAMPLES = ("camera", "astronaut", "chelsea", "coffee", "rocket")


class Scratch:
    """A private temporary folder for the files the app hands to Gradio; each request gets a random sub-folder.

    Sub-folders older than `max_age_s` are swept as new ones are made; the whole folder goes when
    the process exits (normally, on an exception, or on SIGTERM / Ctrl-C, which `app.main` turns
    into an orderly shutdown) or when `remove()` is called.
    """

    def __init__(self, max_age_s: float = 3600.0) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="colorize-app-"))
        self.max_age_s = max_age_s
        atexit.register(self.remove)

    def folder(self) -> Path:
        self._sweep()
        path = self.root / secrets.token_hex(12)
        path.mkdir()
        return path

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def _sweep(self) -> None:
        limit = time.time() - self.max_age_s
        for child in self.root.iterdir():
            try:
                if child.stat().st_mtime < limit:
                    shutil.rmtree(child, ignore_errors=True)
            except FileNotFoundError:
                pass


def stem(path: str | os.PathLike | None) -> str:
    """A file name's stem, safe to reuse in the names of the files the app writes."""
    name = Path(path).stem if path else "image"
    keep = "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")
    return keep[:60] or "image"


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorize-study"


def example_photos(folder: Path | None, scratch: Scratch) -> list[Path]:
    """The examples as 8-bit gray PNGs, written once into `folder` (a cache; the scratch folder if it is not writable)."""
    from PIL import Image
    from skimage import data

    from colorize.pixels import gray_image

    folder = folder or cache_dir() / "gray-examples"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: the scratch folder will do
        folder = scratch.folder()
    paths = []
    for name in EXAMPLES:
        path = folder / f"{name}.png"
        if not path.is_file():
            gray_image(Image.fromarray(getattr(data, name)())).save(path)
        paths.append(path)
    return paths
