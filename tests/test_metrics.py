"""colorize.metrics on cases whose answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.color import deltaE_ciede2000, rgb2lab
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from colorize import metrics


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    real = np.asarray(Image.fromarray(data.astronaut()).resize((96, 96))).astype(np.float32) / 255.0
    rng = np.random.default_rng(0)
    pred = np.clip(real + rng.normal(0, 0.05, real.shape).astype(np.float32), 0, 1)
    return pred, real


def test_identical_images(pair):
    _, real = pair
    assert metrics.psnr(real, real) == metrics.PSNR_CAP_DB
    assert metrics.ssim(real, real) == pytest.approx(1.0)
    assert metrics.ciede2000(real, real) == 0.0


def test_agrees_with_skimage_and_accepts_tensors_and_8bit(pair):
    pred, real = pair
    assert metrics.psnr(pred, real) == pytest.approx(peak_signal_noise_ratio(real, pred, data_range=1.0), rel=1e-5)
    expected_ssim = structural_similarity(pred, real, channel_axis=-1, data_range=1.0)
    assert metrics.ssim(pred, real) == pytest.approx(expected_ssim, rel=1e-5)
    expected_de = deltaE_ciede2000(rgb2lab(pred), rgb2lab(real)).mean()
    assert metrics.ciede2000(pred, real) == pytest.approx(expected_de, rel=1e-4)
    chw = torch.from_numpy(pred).permute(2, 0, 1)
    assert metrics.psnr(chw, real) == pytest.approx(metrics.psnr(pred, real))
    assert metrics.psnr((real * 255).round().astype(np.uint8), real) > 50
    assert 20 < metrics.psnr(pred, real) < 30  # sigma 0.05 noise is ~26 dB
    with pytest.raises(ValueError, match="differ in size"):
        metrics.psnr(pred[:10], real)


def test_colorfulness_known_values():
    gray = np.repeat(np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64, 1), 3, axis=-1)
    assert metrics.colorfulness(gray) == 0.0
    red = np.zeros((8, 8, 3), np.float32)
    red[..., 0] = 1.0  # rg = 255, yb = 127.5, no spread: 0.3 * sqrt(255^2 + 127.5^2)
    assert metrics.colorfulness(red) == pytest.approx(0.3 * math.hypot(255, 127.5), rel=1e-6)
    half = np.zeros((8, 8, 3), np.float32)
    half[:4, :, 0] = 1.0  # half red, half black: std_rg = 127.5, std_yb = 63.75, means half of red's
    expected = math.hypot(127.5, 63.75) + 0.3 * math.hypot(127.5, 63.75)
    assert metrics.colorfulness(half) == pytest.approx(expected, rel=1e-6)
    assert metrics.colorfulness(data.astronaut()) > 30


def test_mean_hue_finds_the_cast():
    gray = np.full((16, 16, 3), 0.5, np.float32)
    assert math.isnan(metrics.mean_hue(gray))
    sepia = np.asarray(Image.fromarray(data.camera()).convert("RGB"), dtype=np.float32) / 255.0
    sepia = np.clip(sepia * np.array([1.07, 0.74, 0.43], np.float32), 0, 1)  # the classic sepia tone
    assert 50 < metrics.mean_hue(sepia) < 90  # orange-brown
    blue = np.zeros((4, 4, 3), np.float32)
    blue[..., 2] = 1.0
    assert metrics.mean_hue(blue) == pytest.approx(math.degrees(math.atan2(*rgb2lab(blue)[0, 0, [2, 1]])) % 360)
    # chroma-weighted: a faint patch of green does not outvote a strong red
    mixed = np.full((10, 10, 3), 0.5, np.float32)
    mixed[:5] = (0.9, 0.1, 0.1)
    mixed[5:] = (0.48, 0.52, 0.48)
    assert metrics.mean_hue(mixed) < 60 or metrics.mean_hue(mixed) > 330


def test_image_metrics_bundle(pair):
    pred, real = pair
    values = metrics.image_metrics(pred, real)
    assert values["psnr"] == pytest.approx(metrics.psnr(pred, real))
    assert values["ciede2000"] == pytest.approx(metrics.ciede2000(pred, real))
    assert values["real_colorfulness"] == pytest.approx(metrics.colorfulness(real))
    assert set(values) >= {"ssim", "colorfulness", "mean_hue", "cast_chroma", "mean_chroma"}
    assert math.isnan(metrics.ssim(real[:2, :2], real[:2, :2]))  # too small for any window


def test_false_colour_share_counts_vivid_wrong_pixels_only():
    from skimage.color import lab2rgb

    from colorize.metrics import false_colour_share

    wall = np.zeros((40, 50, 3))
    wall[..., 0] = 70.0  # a light gray wall
    real = lab2rgb(wall)
    blob = wall.copy()
    blob[:10, :20, 2] = -40.0  # a saturated blue blob on 200 of its 2000 pixels
    shade = wall.copy()
    shade[..., 1:] = 18.0  # a warm tint: coloured, but not strongly enough to count
    far_but_faint = wall.copy()
    far_but_faint[..., 2] = -24.0  # 24 units off, below the chroma bar
    assert false_colour_share(lab2rgb(blob), real) == pytest.approx(0.1, abs=0.002)
    assert false_colour_share(lab2rgb(shade), real) == 0.0
    assert false_colour_share(lab2rgb(far_but_faint), real) == 0.0
    assert false_colour_share(real, real) == 0.0
