"""The full-resolution composition's arithmetic against the plain Lab definitions."""

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import color as skcolor

from colorize import color, compose, fused


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


def test_dark_colours_are_fitted_in_closed_form_to_the_largest_chroma_that_fits():
    # L <= 8 (a photo's shadows: most of its out-of-gamut pixels): X and Z stay on f^-1's linear
    # piece, so the fitted chroma factor is computed, not looked up and bisected
    lightness, a, b = _random_lab(20000, seed=5, chroma=40.0)
    lightness = lightness * 0.08
    fy = (lightness + 16.0) / 116.0
    y = compose._lab_f_inverse_(fy.clone())
    affine = compose._on_linear_segments(fy, a, b)
    assert affine.float().mean() > 0.5
    zero = torch.zeros_like(a)
    full = compose._scaled_linear_rgb(y, fy, a, b)
    outside = compose._outside(full)
    closed = compose._affine_fitting_scale(compose._scaled_linear_rgb(y, fy, zero, zero), full)
    bisected = compose._largest_fitting_scale(y, fy, a, b, 1.0, 30)
    chosen = affine & outside
    assert chosen.sum() > 1000
    chroma = torch.hypot(a, b)
    assert torch.allclose((closed * chroma)[chosen], (bisected * chroma)[chosen], atol=1e-3)  # ab units
    assert torch.equal(closed[affine & ~outside], torch.ones(int((affine & ~outside).sum())))
    fitted = compose._scaled_linear_rgb(y, fy, a * closed, b * closed)[:, chosen]
    assert fitted.min() >= -2 * compose._GAMUT_TOLERANCE and fitted.max() <= compose._ENCODE_STEPS * (1 + 1e-6)
    # and both kernels take that path: the composed colours are those of the exact factor
    for kernel in ("torch", "numba") if fused.available() else ("torch",):
        gray = compose._encode(compose._scaled_linear_rgb(y, fy, zero, zero)).T.numpy().reshape(100, 200, 3)
        image = Image.fromarray(np.ascontiguousarray(gray))
        ab = torch.stack((a, b)).reshape(2, 100, 200)
        composed = np.asarray(compose.compose(image, ab, kernel=kernel)).astype(int)
        y8 = compose._relative_luminance(gray).reshape(-1)
        fy8 = compose._lab_f(y8)
        linear = compose._scaled_linear_rgb(y8, fy8, a, b)
        compose._fit_gamut(linear, y8, fy8, a, b)
        assert np.abs(composed - compose._encode(linear).T.numpy().reshape(100, 200, 3).astype(int)).max() <= 1


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


# --------------------------------------------------------------------------------------------
# the compiled kernel (colorize.fused) against the torch path, which is today's exact path
# --------------------------------------------------------------------------------------------

needs_numba = pytest.mark.skipif(not compose.fused.available(), reason="numba is not installed")


def _photo(width: int, height: int) -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut()).resize((width, height))


def _strong_ab(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Smooth, vivid ab (chroma up to ~150): many pixels outside sRGB, as a calibrated model's can be."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 2, 4, 5, generator=generator) * 60.0
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]


@needs_numba
@pytest.mark.parametrize("gamut", compose.GAMUT_MODES)
@pytest.mark.parametrize("size, chunk", [((203, 157), None), ((203, 157), 40), ((64, 48), 10**9)])
def test_compiled_kernel_agrees_with_the_torch_path_within_one_level(gamut, size, chunk):
    photo = _photo(*size)
    ab = _strong_ab(24, 40)
    exact = np.asarray(compose.compose(photo, ab, gamut=gamut, kernel="torch")).astype(int)
    fused = np.asarray(compose.compose(photo, ab, gamut=gamut, kernel="numba", chunk_pixels=chunk)).astype(int)
    assert fused.shape == exact.shape
    assert np.abs(fused - exact).max() <= 1
    assert np.mean(fused != exact) < 0.01  # the odd float32 rounding difference, not a systematic one


@pytest.mark.parametrize("kernel", ["torch", pytest.param("numba", marks=needs_numba)])
def test_gray_stays_exactly_gray_and_colour_keeps_its_lightness(kernel):
    levels = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2).repeat(5, axis=0)
    gray = Image.fromarray(levels)
    out = np.asarray(compose.compose(gray, torch.zeros(2, 3, 7), kernel=kernel))
    assert np.array_equal(out, levels)  # every 8-bit level, L exactly

    photo = _photo(120, 90)
    out = np.asarray(compose.compose(photo, _strong_ab(12, 16, seed=1), kernel=kernel))
    lightness_in = skcolor.rgb2lab(np.asarray(photo))[..., 0]
    lightness_out = skcolor.rgb2lab(out)[..., 0]
    assert np.abs(lightness_out - lightness_in).max() < 0.6  # 8-bit rounding of the new colour only


@pytest.mark.parametrize("kernel", ["torch", pytest.param("numba", marks=needs_numba)])
def test_nan_and_huge_predictions_give_an_image_not_a_crash(kernel):
    ab = torch.full((2, 4, 4), float("nan"))
    ab[0, :2] = float("inf")
    ab[1, 2:] = -1e30
    out = np.asarray(compose.compose(_photo(33, 21), ab, kernel=kernel))
    assert out.shape == (21, 33, 3)


def test_auto_falls_back_to_torch_and_an_explicit_numba_request_says_why(monkeypatch, caplog):
    monkeypatch.setattr(compose.fused, "compile_kernel", lambda: False)
    assert compose.resolve_kernel("auto") == "torch"
    with pytest.raises(RuntimeError, match="pip install numba"):
        compose.resolve_kernel("numba")
    with pytest.raises(ValueError, match="choose one of auto, numba, torch"):
        compose.resolve_kernel("cuda")
    out = compose.compose(_photo(20, 10), torch.zeros(2, 2, 2))  # still works, on the torch path
    assert out.size == (20, 10)


@needs_numba
def test_a_kernel_that_fails_to_compile_is_reported_and_skipped(monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("LLVM says no")

    monkeypatch.setattr(compose.fused, "compose_tile", broken)
    compose.fused.compile_kernel.cache_clear()
    try:
        assert compose.fused.compile_kernel() is False
        assert "LLVM says no" in caplog.text
    finally:
        monkeypatch.undo()
        compose.fused.compile_kernel.cache_clear()
    assert compose.fused.compile_kernel() is True


@needs_numba
def test_compiled_path_memory_grows_with_the_tile_not_the_image():
    import tracemalloc

    photo = _photo(1500, 1000)  # 1.5 MP: float copies of it would be 6 MB each
    ab = _strong_ab(32, 48)
    compose.compose(photo, ab, kernel="numba")  # compiled, tables built
    tracemalloc.start()
    try:
        compose.compose(photo, ab, kernel="numba")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    columns = 2 * 32 * 1500 * 4  # ab upsampled along the columns, once per image
    tiles = 8 * compose.KERNEL_CHUNK_PIXELS["numba"] * 3  # a few 8-bit tiles in flight per worker
    assert peak < columns + tiles + 1_000_000, peak


@needs_numba
def test_the_warm_up_compiles_the_signature_compose_runs():
    assert compose.fused.compile_kernel()
    for gamut in compose.GAMUT_MODES:
        compose.compose(_photo(64, 48), _strong_ab(8, 8), kernel="numba", gamut=gamut)
    assert len(compose.fused.compose_tile.signatures) == 1  # no second compilation at the first photo
