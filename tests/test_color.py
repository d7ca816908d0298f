"""Lab conversion in torch against scikit-image, and the network's normalisation."""

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor
from skimage import data

from colorize.color import (
    lab_to_rgb,
    normalized_from_rgb,
    rgb_from_normalized,
    rgb_to_lab,
    rgb_to_luminance,
)

torch.set_num_threads(1)


def _image(name: str, size=(96, 64)) -> np.ndarray:
    return np.asarray(Image.fromarray(getattr(data, name)()).convert("RGB").resize(size), dtype=np.float64) / 255.0


def _tensor(rgb: np.ndarray, dtype=torch.float64) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).to(dtype)


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_rgb_to_lab_matches_skimage(name):
    rgb = _image(name)
    ours = rgb_to_lab(_tensor(rgb, torch.float32)).permute(1, 2, 0).double().numpy()
    assert np.abs(ours - skcolor.rgb2lab(rgb)).max() < 1e-3


@pytest.mark.parametrize("name", ["astronaut", "chelsea", "coffee", "rocket"])
def test_lab_to_rgb_matches_skimage_and_round_trips(name):
    rgb = _image(name)
    lab = skcolor.rgb2lab(rgb)
    ours = lab_to_rgb(torch.from_numpy(lab).permute(2, 0, 1).float()).permute(1, 2, 0).double().numpy()
    assert np.abs(ours - skcolor.lab2rgb(lab)).max() < 1e-3
    round_trip = lab_to_rgb(rgb_to_lab(_tensor(rgb, torch.float32))).permute(1, 2, 0).double().numpy()
    assert np.abs(round_trip - rgb).max() < 1e-3


def test_batched_and_float64():
    batch = torch.stack([_tensor(_image("astronaut")), _tensor(_image("coffee"))])
    lab = rgb_to_lab(batch)
    assert lab.shape == batch.shape and lab.dtype == torch.float64
    assert torch.allclose(lab[1], rgb_to_lab(batch[1]))
    assert torch.allclose(rgb_to_luminance(batch), lab[:, :1])


def test_out_of_gamut_ab_is_clipped_not_nan():
    lightness = torch.tensor([0.0, 1.0, 50.0, 99.0, 100.0])
    ab = torch.tensor([-300.0, -128.0, 0.0, 128.0, 300.0])
    grid = torch.cartesian_prod(lightness, ab, ab).T.reshape(3, 5, 25)
    rgb = lab_to_rgb(grid)
    assert torch.isfinite(rgb).all()
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    # the clipping keeps colours: a strongly red Lab colour stays red
    red = lab_to_rgb(torch.tensor([50.0, 120.0, 80.0]).view(3, 1, 1)).flatten()
    assert red[0] > 0.9 and red[1] < 0.2


def test_normalisation_ranges_and_inverse():
    rgb = _tensor(_image("chelsea"), torch.float32)
    l_norm, ab_norm = normalized_from_rgb(rgb)
    assert l_norm.shape == (1, 64, 96) and ab_norm.shape == (2, 64, 96)
    assert l_norm.min() >= -1.0 and l_norm.max() <= 1.0
    assert ab_norm.abs().max() <= 1.0
    lab = rgb_to_lab(rgb)
    assert torch.allclose(l_norm, lab[:1] / 50 - 1) and torch.allclose(ab_norm, lab[1:] / 110)
    assert (rgb_from_normalized(l_norm, ab_norm) - rgb).abs().max() < 1e-3
    # gray input: ab = 0 gives a neutral image with the same lightness
    gray = rgb_from_normalized(l_norm, torch.zeros_like(ab_norm))
    assert (gray[0] - gray[1]).abs().max() < 1e-3 and (gray[1] - gray[2]).abs().max() < 1e-3
