"""Image-quality and colour statistics for colourised images.

Every function takes RGB in [0, 1] as a numpy array (H, W, 3), a torch tensor (3, H, W) or
(H, W, 3), an 8-bit array (scaled by 1/255) or a PIL image (`pixels.as_rgb`). Pairs must have
the same size. `mean_chroma` and the Lab conversion come from `colorize.pixels`.

- `psnr`: on RGB, data range 1, capped at `PSNR_CAP_DB` so identical images give a finite
  number that can be averaged (an 8-bit difference of 1 level in one pixel of 256x256 is ~96 dB).
- `ssim`: `skimage.metrics.structural_similarity` with `channel_axis=-1, data_range=1` and its
  defaults (7x7 uniform window), averaged over the three channels.
- `ciede2000`: mean CIEDE2000 colour difference (`skimage.color.deltaE_ciede2000` on `rgb2lab`).
- `colorfulness`: Hasler & Süsstrunk (2003) on the 0-255 scale; 0 for any gray image.
- `mean_hue`: the chroma-weighted circular mean of the Lab hue, in degrees [0, 360); with
  weights C, sum C*(cos h, sin h) = sum (a, b), so it is the hue of the mean (a, b) — the
  image's overall colour cast (sepia/brown sits around 60-80 degrees). `cast_chroma` is that
  mean (a, b)'s length: how strong the cast is.
- `false_colour_share`: the share of pixels a viewer notices as wrongly coloured: the output is
  clearly coloured there (chroma above `FALSE_COLOUR_CHROMA`) and its (a, b) is more than
  `FALSE_COLOUR_DISTANCE` from the real photo's (a blue blob on a white wall, a green wash on
  sand). A gray or faint output is never false colour by this measure, only a dull one.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.color import deltaE_ciede2000
from skimage.metrics import structural_similarity

from .pixels import as_rgb, lab, mean_chroma

PSNR_CAP_DB = 100.0
FALSE_COLOUR_CHROMA = 25.0  # ab units: clearly coloured
FALSE_COLOUR_DISTANCE = 30.0  # ab units from the real colour: another colour, not a shade of it
FALSE_COLOUR_IMAGE_LIMIT = 0.10  # an image with more than this share of false colour counts as spoiled
GRAY_CAST = 0.01  # a mean (a, b) shorter than this has no hue: rgb2lab puts exact grays within 0.005 of 0


def _pair(pred, real) -> tuple[np.ndarray, np.ndarray]:
    pred, real = as_rgb(pred), as_rgb(real)
    if pred.shape != real.shape:
        raise ValueError(f"The images differ in size: {pred.shape[:2]} and {real.shape[:2]}.")
    return pred, real


def psnr(pred, real) -> float:
    """Peak signal-to-noise ratio in dB on RGB (data range 1), at most PSNR_CAP_DB."""
    pred, real = _pair(pred, real)
    mse = float(np.mean((pred.astype(np.float64) - real) ** 2))
    if mse <= 10.0 ** (-PSNR_CAP_DB / 10.0):
        return PSNR_CAP_DB
    return 10.0 * math.log10(1.0 / mse)


def ssim(pred, real) -> float:
    """Mean structural similarity over R, G, B (skimage, 7x7 window; smaller for tiny images; NaN below 3 px)."""
    pred, real = _pair(pred, real)
    side = min(pred.shape[:2])
    window = min(7, side if side % 2 else side - 1)
    if window < 3:
        return float("nan")
    return float(structural_similarity(pred, real, channel_axis=-1, data_range=1.0, win_size=window))


def ciede2000(pred, real, *, pred_lab: np.ndarray | None = None, real_lab: np.ndarray | None = None) -> float:
    """Mean CIEDE2000 difference; pass Lab arrays already computed to skip the conversions."""
    if pred_lab is None or real_lab is None:
        pred, real = _pair(pred, real)
    pred_lab = lab(pred) if pred_lab is None else pred_lab
    real_lab = lab(real) if real_lab is None else real_lab
    return float(np.mean(deltaE_ciede2000(pred_lab, real_lab)))


def colorfulness(rgb) -> float:
    """Hasler-Süsstrunk colourfulness M3 on the 0-255 scale (about 0 gray, 33 moderate, 59 high, 109 extreme)."""
    values = as_rgb(rgb).astype(np.float64) * 255.0
    red, green, blue = values[..., 0], values[..., 1], values[..., 2]
    rg = red - green
    yb = 0.5 * (red + green) - blue
    spread = math.sqrt(rg.std() ** 2 + yb.std() ** 2)
    mean = math.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * mean)


def colour_cast(rgb=None, *, lab_values: np.ndarray | None = None) -> tuple[float, float]:
    """(hue in degrees [0, 360) or NaN for a gray image, strength) of the mean (a, b)."""
    lab_values = lab(rgb) if lab_values is None else lab_values
    mean_a = float(lab_values[..., 1].mean())
    mean_b = float(lab_values[..., 2].mean())
    strength = math.hypot(mean_a, mean_b)
    if strength < GRAY_CAST:
        return float("nan"), strength
    return math.degrees(math.atan2(mean_b, mean_a)) % 360.0, strength


def mean_hue(rgb) -> float:
    """Chroma-weighted circular mean of the Lab hue in degrees [0, 360); NaN for a gray image."""
    return colour_cast(rgb)[0]


def false_colour_share(pred=None, real=None, *, pred_lab: np.ndarray | None = None, real_lab: np.ndarray | None = None) -> float:
    """Share of pixels (0-1) with output chroma > FALSE_COLOUR_CHROMA and |ab - real ab| > FALSE_COLOUR_DISTANCE."""
    pred_lab = lab(pred) if pred_lab is None else pred_lab
    real_lab = lab(real) if real_lab is None else real_lab
    pred_ab, real_ab = pred_lab[..., 1:], real_lab[..., 1:]
    vivid = np.hypot(pred_ab[..., 0], pred_ab[..., 1]) > FALSE_COLOUR_CHROMA
    wrong = np.hypot(*(pred_ab - real_ab).transpose(2, 0, 1)) > FALSE_COLOUR_DISTANCE
    return float(np.mean(vivid & wrong))


def image_metrics(pred, real) -> dict[str, float]:
    """Everything above for one prediction and its real image.

    Keys: psnr, ssim, ciede2000, false_colour (pred vs real); colorfulness, mean_chroma, mean_hue, cast_chroma
    (of pred); real_colorfulness, real_mean_chroma, real_mean_hue, real_cast_chroma.
    """
    pred, real = _pair(pred, real)
    pred_lab, real_lab = lab(pred), lab(real)
    pred_hue, pred_cast = colour_cast(lab_values=pred_lab)
    real_hue, real_cast = colour_cast(lab_values=real_lab)
    return {
        "psnr": psnr(pred, real),
        "ssim": ssim(pred, real),
        "ciede2000": ciede2000(pred, real, pred_lab=pred_lab, real_lab=real_lab),
        "false_colour": false_colour_share(pred_lab=pred_lab, real_lab=real_lab),
        "colorfulness": colorfulness(pred),
        "mean_chroma": mean_chroma(lab_values=pred_lab),
        "mean_hue": pred_hue,
        "cast_chroma": pred_cast,
        "real_colorfulness": colorfulness(real),
        "real_mean_chroma": mean_chroma(lab_values=real_lab),
        "real_mean_hue": real_hue,
        "real_cast_chroma": real_cast,
    }
