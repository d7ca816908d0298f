"""Reading images of any format and mode into RGB, with one plain sentence when that fails.

Everything that takes an image from a user (training folders, the CLI, the app, the survey
builder) goes through `load_image`, so they all accept and refuse the same things.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

# 50 megapixels: a 12 MP phone photo and an 8K frame pass; a decompression bomb does not.
DEFAULT_MAX_PIXELS = 50_000_000

_ROTATED = range(2, 9)  # EXIF orientations other than "upright" (1)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image]


class ImageLoadError(ValueError):
    """An input that is not a usable image; the message is one sentence for the user."""


def _describe(source: ImageSource) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{Path(source).name}'"
    return "the uploaded file"


def _open(source: ImageSource) -> Image.Image:
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageLoadError("The file is empty.")
        return Image.open(io.BytesIO(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageLoadError(f"There is no file at {path}.")
        if path.stat().st_size == 0:
            raise ImageLoadError(f"{_describe(source)} is empty.")
    return Image.open(source)


def _to_8bit_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float gray: scale by the type's range, not by the image's own max,
        # so a dark 16-bit photo stays dark.
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if mode == "F" and values.max() <= 1.0 else (255.0 if mode == "F" else 65535.0)
        if mode == "I" and values.max() <= 255:
            top = 255.0
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS, keep_alpha: bool = False) -> Image.Image:
    """Open `source` as an 8-bit RGB image, upright as its EXIF says.

    Accepts a path, bytes, a binary file object or a PIL image; any mode (L, LA, P, RGBA,
    CMYK, I;16, I, F, YCbCr). Raises ImageLoadError for anything else. `keep_alpha`: RGBA
    instead, for a picture whose transparency means something (a hint image); one without
    transparency is refused.
    """
    name = _describe(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(source)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageLoadError(
                    f"{name} is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
                    f"the limit is {max_pixels / 1e6:.0f} megapixels."
                )
            if width < 1 or height < 1:
                raise ImageLoadError(f"{name} has no pixels.")
            image.load()
            if image.getexif().get(ExifTags.Base.Orientation, 1) in _ROTATED:
                # only then: otherwise exif_transpose returns a copy (0.1 s for a 12 MP photo)
                image = ImageOps.exif_transpose(image)
            if keep_alpha:
                if not _has_transparency(image):
                    raise ImageLoadError(f"{name} has no transparency; save it as a PNG with an alpha channel.")
                return image.convert("RGBA")
            return _to_8bit_rgb(image)
    except ImageLoadError:
        raise
    except UnidentifiedImageError:
        raise ImageLoadError(f"{name} is not an image this program can read.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(
            f"{name} is too large to open safely; the limit is {max_pixels / 1e6:.0f} megapixels."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # PIL reports truncated or corrupt data as OSError ("image file is truncated").
        raise ImageLoadError(f"{name} is damaged or truncated and cannot be read ({error}).") from None


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def find_images(root: Path) -> list[Path]:
    """Every image file under `root` (recursively), sorted for a stable order."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))
