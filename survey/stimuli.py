"""Study images: the square crop, the gray and catch versions, and the anonymised PNG encoding.

Every stimulus, real or fake, leaves through `encode_png`, so nothing but the pixels can tell
them apart: same format (PNG), same size, mode RGB, no metadata chunks (no tEXt, eXIf, iCCP,
pHYs, gAMA), and no compression, which makes the byte length depend only on the image size.
A compressed fake would otherwise be smaller or larger than its real photo, which leaks the
answer to anyone who looks at the file sizes in the browser's network panel.

The gray fake is `colorize.pixels.gray_image`: the photo's Lab lightness with no colour, exactly
what the colorization models see (`colorize.pixels` is torch-free, like this module).

numpy, Pillow and scikit-image only: this module must never import torch.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from colorize.pixels import lab, mean_chroma, to_8bit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Catch trials are only useful when the hue flip is obvious; below this mean Lab chroma (a
# near-gray photo) a flipped photo looks much like the original.
MIN_CATCH_CHROMA = 8.0


def _rgb_array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def square_crop(image: Image.Image, size: int) -> Image.Image:
    """The centred square of `image`, resized to size x size (Lanczos), as a fresh RGB image."""
    fitted = ImageOps.fit(image.convert("RGB"), (size, size), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    # Rebuild from the pixels so no metadata of the source file rides along.
    return Image.fromarray(_rgb_array(fitted), mode="RGB")


def _from_lab(lab_values: np.ndarray) -> Image.Image:
    from skimage.color import lab2rgb

    with warnings.catch_warnings():
        # A flipped hue can leave the sRGB gamut; clipping it is what we want, not news.
        warnings.filterwarnings("ignore", message=".*negative Z values", category=UserWarning)
        rgb = to_8bit(lab2rgb(lab_values))
    return Image.fromarray(rgb, mode="RGB")


def catch_version(image: Image.Image) -> Image.Image:
    """An obvious fake for catch trials: the hue turned by 180 degrees (a and b negated in Lab).

    Lightness is kept, so it is the colours alone (blue faces, green-purple skies) that give it away.
    """
    lab_values = lab(image)
    lab_values[..., 1:] *= -1.0
    return _from_lab(lab_values)


def suits_catch(image: Image.Image) -> bool:
    """Whether the hue-flipped version of `image` is an obvious fake (the photo has enough colour)."""
    return mean_chroma(image) >= MIN_CATCH_CHROMA


def encode_png(image: Image.Image) -> bytes:
    """The anonymised encoding of a stimulus: RGB PNG, no metadata, stored (uncompressed) pixels."""
    clean = Image.fromarray(_rgb_array(image), mode="RGB")
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG", compress_level=0, optimize=False)
    return buffer.getvalue()


def png_chunk_types(data: bytes) -> list[str]:
    """The chunk types of a PNG file in order (IHDR, IDAT, ..., IEND), for checking what it carries."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("Not a PNG file.")
    types, offset = [], len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        types.append(data[offset + 4 : offset + 8].decode("latin-1"))
        offset += 12 + length  # length, type, data, CRC
    return types
