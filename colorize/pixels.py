"""RGB pixels as numpy arrays, without torch: 8-bit conversion, CIE Lab, mean chroma, the gray version.

Torch-free on purpose: the survey (which must never load torch) makes its gray baseline and
judges its catch photos with the same functions that evaluation and the app use, so "gray"
means the same image everywhere: the photo's own Lab lightness L with a = b = 0, which is
exactly what a colorization model sees of it.

Every function takes RGB as a PIL image, an array (H, W, 3) (8-bit, or float in [0, 1]) or a
torch tensor (3, H, W) or (H, W, 3) in [0, 1].
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageChops

# The sRGB transfer function's linear segment ends here (in linear light).
_SRGB_LINEAR_KNEE = 0.0031308


def as_rgb(image) -> np.ndarray:
    """Float RGB (H, W, 3) in [0, 1] from any of the accepted forms (8-bit values are scaled by 1/255)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    elif hasattr(image, "detach"):  # a torch tensor, read without importing torch here
        array = image.detach().cpu()
        if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
            array = array.permute(1, 2, 0)
        image = array.float().numpy() if array.is_floating_point() else array.numpy()
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image shaped (H, W, 3) or (3, H, W), not {array.shape}.")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return array.astype(np.float32, copy=False)


def to_8bit(rgb) -> np.ndarray:
    """Float RGB in [0, 1] -> uint8, rounded to the nearest level and clipped."""
    return np.clip(np.round(np.asarray(rgb, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def lab(image) -> np.ndarray:
    """CIE Lab (H, W, 3) of an RGB image, via skimage.color.rgb2lab (D65, 2 degree observer)."""
    from skimage.color import rgb2lab  # lazy: scikit-image is slow to import

    return rgb2lab(as_rgb(image))


def mean_chroma(image=None, *, lab_values: np.ndarray | None = None) -> float:
    """Mean Lab chroma sqrt(a^2 + b^2): about 0 for a gray photo, 10-40 for a colourful one.

    Pass `lab_values` already computed to skip the conversion.
    """
    lab_values = lab(image) if lab_values is None else lab_values
    return float(np.hypot(lab_values[..., 1], lab_values[..., 2]).mean())


def gray_version(image) -> np.ndarray:
    """Float RGB (H, W, 3) in [0, 1] with the image's Lab lightness and a = b = 0, exactly R = G = B.

    Lab (L, 0, 0) is the D65 white scaled to the luminance Y that L stands for, i.e. linear
    R = G = B = Y: so the gray is Y, sRGB-encoded.
    """
    from skimage.color import rgb2xyz

    y = np.clip(rgb2xyz(as_rgb(image))[..., 1], 0.0, 1.0)
    gray = np.where(
        y > _SRGB_LINEAR_KNEE, 1.055 * np.power(np.maximum(y, _SRGB_LINEAR_KNEE), 1 / 2.4) - 0.055, 12.92 * y
    )
    return np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)


def gray_image(image) -> Image.Image:
    """`gray_version` as an 8-bit RGB PIL image: the photo as the colorization model sees it.

    8-bit input (a PIL image, a uint8 array) takes table look-ups: `gray_version` of a
    12-megapixel photo took 0.6-2.4 s in the app (float conversions of the whole image), the
    tables about a tenth of that. The levels are those of float64 arithmetic; `gray_version`
    computes in float32 and can differ by one level where a pixel's gray falls within a few
    millionths of a rounding boundary (95 of the 2^24 colours).
    """
    if isinstance(image, Image.Image):
        rgb = image.convert("RGB")
        red, green, blue = rgb.split()
        if ImageChops.difference(red, green).getbbox() is None and ImageChops.difference(green, blue).getbbox() is None:
            return rgb  # gray already (a gray photo, the app's usual upload): each level is its own gray (tested)
        return _gray_image_8bit(np.asarray(rgb))
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3:
        return _gray_image_8bit(image)
    return Image.fromarray(to_8bit(gray_version(image)), mode="RGB")


# Luminance Y in [0, 1] is cut into _GRAY_CELLS equal cells, each mapped to the 8-bit gray level
# its Y encodes to. Cells within _GRAY_MARGIN cells of a level's rounding boundary are marked
# ambiguous: a pixel falling there is computed in float64 from its own values, so float32
# rounding in the look-up sum can never move a pixel to the neighbouring level.
_GRAY_CELLS = 1 << 20
_GRAY_MARGIN = 2


def _encoded_gray_level(y: np.ndarray) -> np.ndarray:
    """8-bit sRGB level of luminance `y` (float64), rounded to the nearest."""
    y = np.clip(y, 0.0, 1.0)
    encoded = np.where(y > _SRGB_LINEAR_KNEE, 1.055 * np.power(np.maximum(y, _SRGB_LINEAR_KNEE), 1 / 2.4) - 0.055, 12.92 * y)
    return np.clip(np.round(encoded * 255.0), 0, 255).astype(np.uint8)


@functools.cache
def _gray_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Y per channel and 8-bit value (3, 256) in float64 and float32, the gray level per cell, ambiguous per cell."""
    from skimage.color.colorconv import xyz_from_rgb

    values = np.arange(256, dtype=np.float64) / 255.0
    linear = np.where(values > 0.04045, ((values + 0.055) / 1.055) ** 2.4, values / 12.92)
    y_tables = linear[None, :] * xyz_from_rgb[1][:, None]
    level_at_edge = _encoded_gray_level(np.arange(_GRAY_CELLS + 1, dtype=np.float64) / _GRAY_CELLS)
    cell = np.arange(_GRAY_CELLS)
    low = level_at_edge[np.maximum(cell - _GRAY_MARGIN, 0)]
    high = level_at_edge[np.minimum(cell + 1 + _GRAY_MARGIN, _GRAY_CELLS)]
    return y_tables, y_tables.astype(np.float32), level_at_edge[:-1].copy(), low != high


def _gray_image_8bit(rgb8: np.ndarray) -> Image.Image:
    exact_tables, y_tables, levels, ambiguous = _gray_tables()
    y = np.take(y_tables[0], rgb8[..., 0])
    y += np.take(y_tables[1], rgb8[..., 1])
    y += np.take(y_tables[2], rgb8[..., 2])
    cells = np.clip(y * np.float32(_GRAY_CELLS), 0, _GRAY_CELLS - 1).astype(np.int32)
    gray = np.take(levels, cells)
    unsure = np.take(ambiguous, cells)
    if unsure.any():
        pixels = rgb8[unsure]
        exact = exact_tables[0][pixels[:, 0]] + exact_tables[1][pixels[:, 1]] + exact_tables[2][pixels[:, 2]]
        gray[unsure] = _encoded_gray_level(exact)
    return Image.fromarray(gray, mode="L").convert("RGB")
