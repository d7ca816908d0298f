"""colorize.pixels: the torch-free pixel helpers that evaluation, the survey and the app share."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.color import rgb2lab

from colorize import pixels


def photo() -> np.ndarray:
    return data.coffee()[::4, ::4]  # 8-bit RGB, 150x100


def test_gray_version_keeps_the_lab_lightness_and_has_no_colour():
    rgb = photo()
    gray = pixels.gray_version(rgb)
    assert gray.dtype == np.float32 and gray.shape == rgb.shape
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])  # exactly R = G = B
    lab_gray, lab_real = rgb2lab(gray), rgb2lab(rgb / 255.0)
    assert np.abs(lab_gray[..., 0] - lab_real[..., 0]).max() < 1e-3
    assert np.abs(lab_gray[..., 1:]).max() < 0.01  # rgb2lab puts exact grays within 0.005 of a = b = 0


def test_gray_image_is_the_8bit_gray_version_whatever_the_input_form():
    rgb = photo()
    image = pixels.gray_image(Image.fromarray(rgb))
    assert image.mode == "RGB" and image.size == (rgb.shape[1], rgb.shape[0])
    assert np.abs(np.asarray(image, dtype=int) - pixels.to_8bit(pixels.gray_version(rgb))).max() <= 1
    tensor = torch.from_numpy(rgb / 255.0).permute(2, 0, 1)  # (3, H, W) in [0, 1]
    assert np.abs(np.asarray(pixels.gray_image(tensor), dtype=int) - np.asarray(image, dtype=int)).max() <= 1


def test_gray_image_of_8bit_input_is_the_float64_gray_of_every_colour():
    # every 8-bit colour: table look-ups, with the pixels near a level's rounding boundary redone in float64
    codes = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], axis=-1).astype(np.uint8).reshape(4096, 4096, 3)
    fast = np.asarray(pixels.gray_image(rgb))
    assert np.array_equal(fast[..., 0], fast[..., 1]) and np.array_equal(fast[..., 1], fast[..., 2])
    linear = rgb.astype(np.float64) / 255.0
    linear = np.where(linear > 0.04045, ((linear + 0.055) / 1.055) ** 2.4, linear / 12.92)
    y = np.clip(linear @ np.array([0.212671, 0.715160, 0.072169]), 0.0, 1.0)  # skimage's sRGB -> Y row
    encoded = np.where(y > 0.0031308, 1.055 * y ** (1 / 2.4) - 0.055, 12.92 * y)
    expected = np.round(encoded * 255.0)
    differ = fast[..., 0] != expected
    assert differ.sum() == 0 or np.abs(fast[..., 0][differ] - expected[differ]).max() <= 1 and differ.mean() < 1e-5
    gray_photo = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    assert np.array_equal(np.asarray(pixels.gray_image(gray_photo))[0, :, 0], np.arange(256))  # a gray photo stays itself
    from_pil = pixels.gray_image(Image.fromarray(gray_photo).convert("L"))  # the shortcut for gray PIL images
    assert from_pil.mode == "RGB" and np.array_equal(np.asarray(from_pil), gray_photo)


def test_to_8bit_rounds_to_the_nearest_level_and_clips():
    values = np.array([[[-0.2, 0.0, 0.5 / 255]], [[1.49 / 255, 254.51 / 255, 1.3]]])
    assert pixels.to_8bit(values).tolist() == [[[0, 0, 0]], [[1, 255, 255]]]


def test_mean_chroma_tells_gray_from_colour():
    rgb = photo()
    assert pixels.mean_chroma(rgb) > 10
    assert pixels.mean_chroma(pixels.gray_version(rgb)) < 0.01
    assert pixels.mean_chroma(lab_values=rgb2lab(rgb / 255.0)) == pytest.approx(pixels.mean_chroma(rgb), rel=1e-4)


def test_as_rgb_refuses_what_is_not_rgb():
    with pytest.raises(ValueError, match=r"Expected an RGB image shaped \(H, W, 3\)"):
        pixels.as_rgb(np.zeros((4, 4)))


def test_pixels_never_load_torch():
    """The survey uses these helpers and must not pay for torch."""
    code = (
        "import sys, numpy as np\n"
        "from colorize import pixels, metrics\n"
        "pixels.gray_image(np.zeros((4, 4, 3), np.uint8)); pixels.mean_chroma(np.zeros((4, 4, 3), np.uint8))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
