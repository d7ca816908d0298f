"""RGB pixels as numpy arrays, without torch: 8-bit conversion, CIE Lab, mean chroma, the gray version.

Torch-free on purpose: the survey (which must never load torch) makes its gray baseline and
judges its catch photos with the same functions that evaluation and the app use, so "gray"
means the same image everywhere: the photo's own Lab lightness L with a = b = 0, which is
exactly what a colorization model sees of it.

Every function takes RGB as a PIL image, an array (H, W, 3) (8-bit, or float in [0, 1]) or a
torch tensor (3, H, W) or (H, W, 3) in [0, 1].
"""

from __future__ import annotations

import numpy as np
from PIL import Image

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
    """`gray_version` as an 8-bit RGB PIL image: the photo as the colorization model sees it."""
    return Image.fromarray(to_8bit(gray_version(image)), mode="RGB")
