"""Study images: the square crop, the gray and catch versions, the anonymised PNG encoding, and
the per-trial `Presentation` that makes every shown pair unique.

Every stimulus, real or fake, leaves through `encode_png`, so nothing but the pixels can tell
them apart: same format (PNG), same size, mode RGB, no metadata chunks (no tEXt, eXIf, iCCP,
pHYs, gAMA), and no compression, which makes the byte length depend only on the image size.
A compressed fake would otherwise be smaller or larger than its real photo, which leaks the
answer to anyone who looks at the file sizes in the browser's network panel.

Stored stimuli are never sent as they are: the real photo of an image is the same in every
pair, its fakes differ, so comparing files between two participations would find the real one.
Each trial gets its own `Presentation` (a crop of at most 3% and a +-1-level dither), applied
identically to both images of the pair: no pixel of a shown image repeats its stored value
predictably, and no two trials send the same bytes. The dither moves a pixel's three channels
alike, so it changes lightness and adds no colour noise of its own: a colour dither would put
the same chroma noise floor under a vivid and a muted image, and a script comparing chroma
texture would read that as the muted one's (`chroma_detail` is what such a script measures).

The gray fake is `colorize.pixels.gray_image`: the photo's Lab lightness with no colour, exactly
what the colorization models see (`colorize.pixels` is torch-free, like this module).

numpy, Pillow and scikit-image only: this module must never import torch.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import warnings
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from colorize.pixels import lab, mean_chroma, to_8bit

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A Presentation crops away at most this share of the side before scaling back: at 256 pixels
# that is an 8-pixel shift and a 3% zoom, which nobody notices in a one-second look.
MAX_TRIM_FRACTION = 0.03
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


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: Image.Image | np.ndarray) -> bytes:
    """The anonymised encoding of a stimulus: RGB PNG, no metadata, stored (uncompressed) pixels.

    `image`: a PIL image, or its RGB pixels (height x width x 3, uint8). Written directly (IHDR,
    one IDAT of stored deflate blocks with filter 0 on every row, IEND): every byte but the
    pixels is fixed by the size, and it is over ten times faster than Pillow's encoder, which
    matters because every trial served encodes its images afresh.
    """
    pixels = image if isinstance(image, np.ndarray) else _rgb_array(image)
    height, width, _ = pixels.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # a leading 0 per row: filter "none"
    rows[:, 1:] = pixels.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 0))
        + _png_chunk(b"IEND", b"")
    )


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


@dataclass(frozen=True)
class Presentation:
    """How one trial's images are shown; applied identically to every image of the trial.

    The square (crop_left, crop_top, crop_size) of the stored image is scaled back to the full
    size (Lanczos), then every pixel moves by -1, 0 or +1 level, from a noise field that
    `dither_seed` alone determines (SHAKE-256, so it never changes with a library version): all
    three channels by the same step (`dither_channels` 1), or each by its own (3: trials stored
    before schema 3 were shown so). Stored with the trial, so the analysis can re-render exactly
    what was shown.
    """

    crop_left: int
    crop_top: int
    crop_size: int
    dither_seed: int
    dither_channels: int = 1

    @classmethod
    def draw(cls, image_size: int, rng: random.Random) -> "Presentation":
        """A random presentation for images of image_size x image_size: always some crop, any dither."""
        trim = rng.randint(1, max(1, round(image_size * MAX_TRIM_FRACTION)))
        return cls(
            crop_left=rng.randint(0, trim),
            crop_top=rng.randint(0, trim),
            crop_size=image_size - trim,
            dither_seed=rng.getrandbits(31),
        )

    def render(self, png: bytes) -> bytes:
        """The PNG a participant receives for the stored stimulus `png` (same size, `encode_png`)."""
        return self.render_all([decode_png(png)])[0]

    def render_all(self, images: Sequence[Image.Image]) -> tuple[bytes, ...]:
        """The PNGs of a trial's stored stimuli, given decoded (`decode_png`; they are only read):
        each exactly as `render` makes it, the dither field drawn once for all of them."""
        shown, noise = [], None
        for image in images:
            width, height = image.size
            box = (self.crop_left, self.crop_top, self.crop_left + self.crop_size, self.crop_top + self.crop_size)
            if box[2] > width or box[3] > height:
                raise ValueError(f"The crop {box} does not fit in a {width}x{height} image.")
            scaled = image.resize((width, height), Image.Resampling.LANCZOS, box=box)
            if noise is None or noise.shape != (height, width, self.dither_channels):
                noise = _dither(self.dither_seed, (height, width, self.dither_channels))
            dithered = np.asarray(scaled, dtype=np.int16) + noise
            shown.append(encode_png(np.clip(dithered, 0, 255).astype(np.uint8)))
        return tuple(shown)


def chroma_detail(image: Image.Image | np.ndarray) -> float:
    """How much of an image's colour changes from pixel to pixel: the mean |ab - ab blurred| (a
    sigma-1 Gaussian) over its mean chroma. The colourfulness cancels out: a muted and a vivid
    version of one colouring score alike, a colouring resolved at a coarser scale scores less."""
    from scipy.ndimage import gaussian_filter  # lazy: only study building and analysis need it

    lab_values = lab(image)
    ab = lab_values[..., 1:]
    blurred = np.stack([gaussian_filter(ab[..., i], 1.0) for i in range(2)], axis=-1)
    return float(np.abs(ab - blurred).mean() / max(mean_chroma(lab_values=lab_values), 1e-6))


def decode_png(png: bytes) -> Image.Image:
    """A stored stimulus, decoded: an RGB image, its pixels loaded."""
    with Image.open(io.BytesIO(png)) as stored:
        image = stored.convert("RGB")
    image.load()
    return image


# A byte of the SHAKE stream -> its dither value (byte mod 3, minus 1), as one table lookup.
_DITHER_OF_BYTE = (np.arange(256) % 3 - 1).astype(np.int16)


def _dither(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """-1/0/+1 per value, from `seed` alone (a byte mod 3: 0 is 86/256 likely, +-1 85/256 each)."""
    count = int(np.prod(shape))
    stream = hashlib.shake_256(f"survey-dither/{seed}".encode()).digest(count)
    return _DITHER_OF_BYTE[np.frombuffer(stream, dtype=np.uint8)].reshape(shape)
