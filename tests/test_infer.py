"""Colorizer and `python -m colorize.infer`, used the way the app, the survey builder and a user do."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color as skcolor
from skimage import data

import colorize.infer as infer
from colorize import Colorizer, color
from colorize.checkpoint import CheckpointError, save_model
from colorize.imageio import ImageLoadError, load_image
from colorize.models import ModelConfig, build_generator, init_weights

TINY = ModelConfig(base_channels=4, depth=4, max_channels=16)
RENDER = 64  # small render size keeps the suite fast; the pipeline is the same at 256


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _vivid_tiny_colorizer(seed: int = 0) -> Colorizer:
    """A tiny generator whose weights are large enough to give strong colours (and clipping)."""
    torch.manual_seed(seed)
    generator = build_generator(TINY)
    init_weights(generator, std=0.2)
    config = {"format_version": 1, "model": TINY.to_dict()}
    return Colorizer(generator, config, name="tiny", device="cpu")


@pytest.fixture(scope="module")
def colorizer() -> Colorizer:
    return _vivid_tiny_colorizer()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(data.astronaut()).resize((301, 199))


def _lab(image: Image.Image) -> np.ndarray:
    return skcolor.rgb2lab(np.asarray(image.convert("RGB")))


def test_untrained_and_shipped_model_errors(tmp_path, monkeypatch):
    untrained = Colorizer.untrained(seed=3, model_config=TINY)
    assert untrained.name == "untrained" and untrained.model_config == TINY
    again = Colorizer.untrained(seed=3, model_config=TINY)
    for a, b in zip(untrained.generator.state_dict().values(), again.generator.state_dict().values()):
        assert torch.equal(a, b)

    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setattr(infer, "SHIPPED_MODEL_DIR", empty)
    with pytest.raises(CheckpointError, match="No trained model is installed"):
        Colorizer.from_pretrained()
    with pytest.raises(CheckpointError):
        Colorizer.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize("size", [(1, 1), (3, 500), (500, 3), (37, 53), (301, 199)])
def test_output_keeps_exact_size_and_lightness(colorizer, size):
    width, height = size
    source = Image.fromarray(data.astronaut()).resize((width, height))
    output = colorizer.colorize(source, render_size=RENDER)
    assert output.mode == "RGB" and output.size == (width, height)
    # 8-bit rounding moves L by at most about 0.3; out-of-gamut colours lose chroma, not lightness
    assert np.abs(_lab(source)[..., 0] - _lab(output)[..., 0]).max() < 0.5


def test_out_of_gamut_colours_keep_lightness_unless_clipping_is_asked_for(colorizer, photo):
    lab_in = _lab(photo)
    lab_out = _lab(colorizer.colorize(photo, render_size=RENDER))
    assert np.hypot(lab_out[..., 1], lab_out[..., 2]).mean() > 10.0  # it did colourise, strongly
    assert np.abs(lab_in[..., 0] - lab_out[..., 0]).max() < 0.5
    clipping = Colorizer(colorizer.generator, colorizer.config, name="tiny", gamut="clip")
    clipped = _lab(clipping.colorize(photo, render_size=RENDER))
    # per-channel clipping changes L where the prediction left sRGB (here: the near-black background)
    error = np.abs(lab_in[..., 0] - clipped[..., 0])
    assert error.max() > 5.0 and np.median(error) < 0.3


def _modes() -> dict[str, bytes | Image.Image]:
    base = Image.fromarray(data.astronaut()).resize((37, 29))
    palette_transparent = base.convert("P")
    palette_transparent.info["transparency"] = 0
    rgba = base.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(base.size))
    sixteen = Image.fromarray((np.asarray(base.convert("L"), dtype=np.uint16) * 257))
    assert sixteen.mode == "I;16"
    cases: dict[str, bytes | Image.Image] = {
        "L": base.convert("L"),
        "LA": base.convert("LA"),
        "P": base.convert("P"),
        "P-transparent": palette_transparent,
        "RGBA": rgba,
        "CMYK": base.convert("CMYK"),
        "I;16": sixteen,
        "RGB": base,
    }
    for name, image in list(cases.items()):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG" if name not in ("CMYK",) else "TIFF")
        cases[name + "-file"] = buffer.getvalue()
    return cases


@pytest.mark.parametrize("mode", sorted(_modes()))
def test_every_input_mode(colorizer, mode):
    output = colorizer.colorize(_modes()[mode], render_size=RENDER)
    assert output.mode == "RGB" and output.size == (37, 29)


def test_exif_rotated_jpeg_comes_out_upright(colorizer):
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(data.astronaut()).resize((40, 30)).save(buffer, format="JPEG", exif=exif)
    output = colorizer.colorize(buffer.getvalue(), render_size=RENDER)
    assert output.size == (30, 40)
    upright = Image.fromarray(data.astronaut())
    assert load_image(upright) is upright  # nothing to turn: no 0.1 s copy of a 12 MP photo


def test_unreadable_input_raises_a_sentence(colorizer):
    with pytest.raises(ImageLoadError):
        colorizer.colorize(b"certainly not an image", render_size=RENDER)


def test_saturation_zero_is_gray_with_the_same_lightness(colorizer, photo):
    gray = np.asarray(colorizer.colorize(photo, render_size=RENDER, saturation=0.0)).astype(int)
    assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1 and np.abs(gray[..., 1] - gray[..., 2]).max() <= 1
    lightness = skcolor.rgb2lab(gray.astype(np.uint8))[..., 0]
    assert np.abs(lightness - _lab(photo)[..., 0]).max() < 0.5
    strong = _lab(colorizer.colorize(photo, render_size=RENDER, saturation=2.0))
    normal = _lab(colorizer.colorize(photo, render_size=RENDER))
    assert np.hypot(strong[..., 1], strong[..., 2]).mean() > 1.3 * np.hypot(normal[..., 1], normal[..., 2]).mean()


def test_seeds_sample_reproducible_variations(colorizer, photo):
    plain = np.asarray(colorizer.colorize(photo, render_size=RENDER))
    assert np.array_equal(plain, np.asarray(colorizer.colorize(photo, render_size=RENDER)))
    first = np.asarray(colorizer.colorize(photo, render_size=RENDER, seed=1))
    assert np.array_equal(first, np.asarray(colorizer.colorize(photo, render_size=RENDER, seed=1)))
    other = np.asarray(colorizer.colorize(photo, render_size=RENDER, seed=2))
    assert np.abs(first.astype(int) - other).mean() > 1.0
    assert np.abs(first.astype(int) - plain).mean() > 1.0
    # sampling leaves the model deterministic again, and the global RNG untouched
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    colorizer.colorize(photo, render_size=RENDER, seed=5)
    assert torch.equal(torch.rand(1), expected)
    assert np.array_equal(plain, np.asarray(colorizer.colorize(photo, render_size=RENDER)))

    variations = colorizer.colorize_variations(photo, count=2, seed=1, render_size=RENDER)
    assert np.array_equal(np.asarray(variations[0]), first)
    assert np.array_equal(np.asarray(variations[1]), other)


def test_saved_and_loaded_model_gives_identical_outputs(colorizer, photo, tmp_path):
    save_model(tmp_path / "ckpt", colorizer.generator, TINY, metadata={"name": "tiny-run", "training": {"image_size": 96}})
    loaded = Colorizer.from_pretrained(tmp_path / "ckpt", device="cpu")
    assert loaded.name == "tiny-run" and loaded.model_config == TINY and loaded.config["model"] == TINY.to_dict()
    # by default the network renders at the size the model was trained at
    assert loaded.default_render_size == 96 and colorizer.default_render_size == 256
    assert np.array_equal(np.asarray(loaded.colorize(photo)), np.asarray(loaded.colorize(photo, render_size=96)))
    assert not np.array_equal(np.asarray(loaded.colorize(photo)), np.asarray(loaded.colorize(photo, render_size=256)))
    for seed in (None, 7):
        assert np.array_equal(
            np.asarray(colorizer.colorize(photo, render_size=RENDER, seed=seed)),
            np.asarray(loaded.colorize(photo, render_size=RENDER, seed=seed)),
        )


def test_batch_matches_one_by_one(colorizer, photo):
    images = [photo, photo.rotate(90, expand=True), photo.transpose(Image.FLIP_LEFT_RIGHT), Image.new("L", (5, 7), 128)]
    batch = colorizer.colorize_batch(images, render_size=RENDER)
    for image, result in zip(images, batch):
        single = np.asarray(colorizer.colorize(image, render_size=RENDER)).astype(int)
        assert result.size == image.size and np.abs(np.asarray(result) - single).max() <= 1


def test_bf16_precision_hook_runs_close_to_fp32(colorizer, photo):
    bf16 = Colorizer(colorizer.generator, colorizer.config, name="tiny", precision="bf16")
    fast = np.asarray(bf16.colorize(photo, render_size=RENDER)).astype(int)
    exact = np.asarray(colorizer.colorize(photo, render_size=RENDER)).astype(int)
    assert np.abs(fast - exact).mean() < 3.0


def test_render_shape_keeps_aspect_within_limits():
    assert infer.render_shape(400, 600, 256) == (256, 384)
    assert infer.render_shape(1, 1, 256) == (256, 256)
    height, width = infer.render_shape(3, 500, 256)
    assert width == 4 * 256 and height == 32  # panoramas are capped at 4:1
    assert infer.render_shape(400, 600, 256, keep_aspect=False) == (256, 256)


@pytest.mark.parametrize("size", [(301, 207), (207, 301), (900, 120), (97, 640)])
@pytest.mark.parametrize("render", [32, 64, 128])
def test_resize_in_bands_is_the_one_piece_resize_to_the_bit(monkeypatch, photo, size, render):
    image = photo.resize(size)
    shape = infer.render_shape(size[1], size[0], render)
    whole = infer.resize_rgb8(image, shape)
    monkeypatch.setattr(infer, "RESIZE_BAND_PIXELS", 5 * size[0] + 3)  # bands of 5 rows
    assert np.array_equal(infer.resize_rgb8(image, shape), whole)


def _detail(image: Image.Image) -> float:
    """Mean |ab - its 3x3 box blur|: colour changing from one pixel to the next."""
    ab = torch.from_numpy(_lab(image)[..., 1:]).permute(2, 0, 1)[None].float()
    return float((ab - F.avg_pool2d(ab, 3, stride=1, padding=1, count_include_pad=False)).abs().mean())


def test_a_photos_own_colour_at_a_render_shape_has_the_colour_resolution_of_a_colourisation(colorizer):
    # one-pixel stripes of two colours over a smooth lightness ramp: colour detail a render shape cannot hold
    stripes = np.where((np.arange(96) % 2 == 0)[None, :, None], [200, 60, 60], [60, 140, 200]).astype(np.uint8)
    photo = Image.fromarray(np.broadcast_to(stripes, (80, 96, 3)).copy())
    gray = Image.fromarray(np.full((80, 96, 3), np.linspace(40, 220, 96, dtype=np.uint8)[None, :, None]))
    shape = colorizer.render_shape_of(96, 80, render_size=32)
    assert shape == infer.render_shape(80, 96, 32)

    shown = infer.colour_at_shape(photo, shape, lightness=gray)
    assert shown.size == photo.size
    # the lightness is the lightness image's, to 8-bit rounding; the colour is the photo's, taken down and back up
    assert np.abs(_lab(shown)[..., 0] - _lab(gray)[..., 0]).max() < 0.5
    assert _detail(photo) > 20 and _detail(shown) < 0.05 * _detail(photo)
    small_ab = color.rgb_to_lab(torch.from_numpy(infer.resize_rgb8(photo, shape)).permute(2, 0, 1).float() / 255)[1:]
    assert np.array_equal(np.asarray(shown), np.asarray(infer.compose(gray, small_ab)))  # brought up as colorize brings its prediction
    # softened at the render shape (for a model whose colour holds less detail than its shape): a Gaussian there
    soft = infer.colour_at_shape(photo, (40, 48), lightness=gray, blur=1.5)
    sharp = infer.colour_at_shape(photo, (40, 48), lightness=gray)
    assert _detail(soft) < _detail(sharp)
    from scipy.ndimage import gaussian_filter

    ab40 = color.rgb_to_lab(torch.from_numpy(infer.resize_rgb8(photo, (40, 48))).permute(2, 0, 1).float() / 255)[1:]
    reference = torch.from_numpy(np.stack([gaussian_filter(plane, 1.5, mode="mirror", truncate=3.0) for plane in ab40.numpy()]))
    assert np.abs(np.asarray(soft, dtype=int) - np.asarray(infer.compose(gray, reference), dtype=int)).max() <= 1
    # at the photo's own size nothing is lost: its colours, on its own lightness by default
    same = infer.colour_at_shape(photo, (80, 96))
    assert np.abs(_lab(same) - _lab(photo)).max() < 1.5
    with pytest.raises(ValueError, match="same size"):
        infer.colour_at_shape(photo, shape, lightness=gray.resize((10, 10)))


def test_full_resolution_luminance_matches_the_reference():
    rgb = data.coffee()
    reference = color.rgb_to_luminance(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)[0]
    assert torch.allclose(infer.luminance(rgb), reference, atol=1e-3)


def test_tiled_composition_equals_one_piece_and_the_plain_reference(photo):
    photo = photo.crop((0, 0, 101, 67))
    generator = torch.Generator().manual_seed(0)
    ab = torch.randn(2, 24, 40, generator=generator) * 40.0
    whole = np.asarray(infer.compose(photo, ab, chunk_pixels=10**9, gamut="clip")).astype(int)
    for gamut in infer.GAMUT_MODES:
        one = np.asarray(infer.compose(photo, ab, chunk_pixels=10**9, gamut=gamut)).astype(int)
        rows = np.asarray(infer.compose(photo, ab, chunk_pixels=3 * 101 + 17, gamut=gamut))  # rows, ragged end
        pieces = np.asarray(infer.compose(photo, ab, chunk_pixels=40, gamut=gamut))  # pieces of rows
        assert np.abs(one - rows).max() <= 1 and np.abs(one - pieces).max() <= 1
    # the same thing done the simple way, on whole tensors (with skimage's per-channel clipping)
    rgb = torch.from_numpy(np.array(photo)).permute(2, 0, 1).float() / 255.0
    lightness = color.rgb_to_lab(rgb)[:1]
    upsampled = F.interpolate(ab[None], size=lightness.shape[-2:], mode="bilinear", align_corners=False)[0]
    reference = color.lab_to_rgb(torch.cat((lightness, upsampled)))
    reference = (reference * 255).round().permute(1, 2, 0).numpy().astype(int)
    assert np.abs(whole - reference).max() <= 1


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


@pytest.fixture()
def checkpoint(tmp_path, colorizer) -> Path:
    return save_model(tmp_path / "model", colorizer.generator, TINY)


def _photo_tree(root: Path) -> None:
    (root / "album" / "trip").mkdir(parents=True)
    source = Image.fromarray(data.astronaut()).resize((48, 40))
    source.save(root / "album" / "a.jpg")
    source.convert("L").save(root / "album" / "trip" / "b.png")
    (root / "album" / "trip" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (root / "album" / "notes.txt").write_text("not an image")
    source.save(root / "loose.png")


def test_cli_folder_glob_corrupt_file_and_no_overwrite(tmp_path, checkpoint, capsys):
    _photo_tree(tmp_path)
    out = tmp_path / "out"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code = infer.main(
        [str(tmp_path / "album"), str(tmp_path / "*.png"), "--out", str(out), "--model", str(checkpoint), "--render-size", "64"]
    )
    captured = capsys.readouterr()
    assert code == 1  # the broken file
    assert "broken.jpg" in captured.err and "1 failed" in captured.out
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "a_color.png",
        "loose_color.png",
        "trip/b_color.png",
    ]
    assert Image.open(out / "trip" / "b_color.png").size == (48, 40)
    # the inputs are untouched
    assert all(path.read_bytes() == content for path, content in before.items())

    # writing next to the inputs with an empty suffix never replaces them; a second run never replaces outputs
    code = infer.main([str(tmp_path / "loose.png"), "--out", str(tmp_path), "--suffix", "", "--model", str(checkpoint), "--render-size", "64"])
    assert code == 0
    assert (tmp_path / "loose.png").read_bytes() == before[tmp_path / "loose.png"]
    assert (tmp_path / "loose-1.png").is_file()
    code = infer.main([str(tmp_path / "loose.png"), "--out", str(out), "--model", str(checkpoint), "--format", "jpg", "--render-size", "64"])
    code = infer.main([str(tmp_path / "loose.png"), "--out", str(out), "--model", str(checkpoint), "--format", "jpg", "--render-size", "64"])
    assert code == 0 and (out / "loose_color.jpg").is_file() and (out / "loose_color-1.jpg").is_file()


def test_cli_all_good_exits_zero_and_skips_its_own_output_folder(tmp_path, checkpoint):
    _photo_tree(tmp_path)
    (tmp_path / "album" / "trip" / "broken.jpg").unlink()
    out = tmp_path / "album" / "colored"
    for _ in range(2):
        assert infer.main([str(tmp_path / "album"), "--out", str(out), "--model", str(checkpoint), "--render-size", "64"]) == 0
    # the second run did not colourise the first run's outputs
    assert not any("_color_color" in p.name for p in out.rglob("*"))
    (tmp_path / "empty").mkdir()
    assert infer.main([str(tmp_path / "empty"), str(tmp_path / "nothing-*.png"), "--out", str(out), "--model", str(checkpoint)]) == 1


@pytest.mark.slow
def test_cli_missing_model_is_one_sentence_and_exit_2(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    result = subprocess.run(
        [sys.executable, "-m", "colorize.infer", str(tmp_path / "x.png"), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "missing" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
