"""The full-resolution composition's arithmetic against the plain Lab definitions."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor

from colorize import color, compose


def test_companding_and_its_inverse_match_the_two_piece_definitions():
    y = torch.cat((torch.linspace(0.0, 0.02, 2001), torch.linspace(0.02, 1.0, 2001)))
    expected = torch.where(y > color.LAB_EPSILON, y.pow(1 / 3), y * color.LAB_KAPPA + color.LAB_OFFSET)
    assert torch.allclose(compose._lab_f(y), expected, atol=1e-6)
    assert torch.allclose(compose._lab_f(y.view(2, -1)).view(-1), expected, atol=1e-6)  # any shape

    f = torch.linspace(-0.2, 1.3, 5001)
    expected = torch.where(f > color.LAB_INVERSE_KNEE, f**3, (f - color.LAB_OFFSET) / color.LAB_KAPPA)
    assert torch.allclose(compose._lab_f_inverse_(f.clone()), expected, atol=1e-6)


def _random_lab(n: int, seed: int, chroma: float) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    lightness = torch.rand(n, generator=generator) * 100.0
    hue = torch.rand(n, generator=generator) * 2 * math.pi
    size = torch.rand(n, generator=generator) * chroma
    return lightness, size * hue.cos(), size * hue.sin()


def _lab_of_composed(lightness: torch.Tensor, a: torch.Tensor, b: torch.Tensor, gamut: str) -> np.ndarray:
    """Compose one image whose gray is `lightness` exactly (through its Y) and return the Lab of the result."""
    fy = (lightness + 16.0) / 116.0
    y = compose._lab_f_inverse_(fy.clone())
    linear = compose._scaled_linear_rgb(y, compose._lab_f(y), a, b)
    if gamut == "chroma":
        compose._fit_gamut(linear, y, compose._lab_f(y), a, b)
    rgb = compose._encode(linear).T.numpy().astype(np.float64) / 255.0
    return skcolor.rgb2lab(rgb[None])[0]


def test_gamut_fitting_keeps_lightness_and_hue_and_nearly_all_the_chroma_that_fits():
    lightness, a, b = _random_lab(20000, seed=3, chroma=150.0)
    lab = _lab_of_composed(lightness, a, b, "chroma")
    # 8-bit rounding alone moves L by up to ~0.3 and, at low chroma, hue a lot: judge hue where chroma > 10
    assert np.abs(lab[:, 0] - lightness.numpy()).max() < 0.6
    chroma_out = np.hypot(lab[:, 1], lab[:, 2])
    coloured = chroma_out > 10
    hue_in = np.arctan2(b.numpy(), a.numpy())
    hue_out = np.arctan2(lab[:, 2], lab[:, 1])
    hue_error = np.abs(np.angle(np.exp(1j * (hue_out - hue_in))))[coloured]
    assert np.degrees(np.percentile(hue_error, 99)) < 2.0

    # against the exact answer: the largest chroma factor that fits, by a long bisection
    fy = (lightness + 16.0) / 116.0
    y = compose._lab_f_inverse_(fy.clone())
    exact = compose._largest_fitting_scale(y, fy, a, b, 1.0, 30) * torch.hypot(a, b)
    shortfall = exact.numpy() - chroma_out  # chroma units; 8-bit rounding is part of it
    assert np.abs(shortfall).max() < 1.5  # near the yellow cusp too, where the table alone is off by 25


@pytest.mark.parametrize("gamut", compose.GAMUT_MODES)
def test_colours_inside_srgb_are_reproduced_within_8_bit_rounding(gamut):
    rgb = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    lab = skcolor.rgb2lab(rgb)
    ab = torch.from_numpy(lab[..., 1:]).permute(2, 0, 1).float()
    out = np.asarray(compose.compose(Image.fromarray(rgb), ab, gamut=gamut)).astype(int)
    assert np.abs(out - rgb.astype(int)).max() <= 1


def test_gamut_table_is_built_once_and_covers_every_lightness_and_hue():
    table = compose._gamut_boundary()
    assert table is compose._gamut_boundary()
    limit = table.max_chroma(torch.tensor([0.0, 50.0, 100.0, 50.0]), torch.tensor([1.0, 1.0, 1.0, 1.0 + 2 * math.pi]))
    assert limit[0] < 0.5 and limit[2] < 0.5 and 30.0 < limit[1] < 134.0
    assert torch.isclose(limit[1], limit[3])  # hue wraps around
