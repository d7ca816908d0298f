"""colorize.png.save_png: valid PNG files that decode to exactly the image, however the bands fall."""

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from colorize import png


def _image(mode: str, size: tuple[int, int], seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    return Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode)


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("size, band_bytes", [((37, 23), 1 << 20), ((37, 23), 100), ((1, 1), 10), ((300, 2), 1), ((5, 200), 64)])
def test_saved_png_decodes_to_exactly_the_image(monkeypatch, mode, size, band_bytes):
    monkeypatch.setattr(png, "BAND_BYTES", band_bytes)  # one band, a few, or one row each
    image = _image(mode, size)
    buffer = io.BytesIO()
    png.save_png(image, buffer, workers=3)
    buffer.seek(0)
    back = Image.open(buffer)
    back.load()
    assert back.format == "PNG" and back.mode == mode and back.size == size
    assert np.array_equal(np.asarray(back), np.asarray(image))


def test_other_modes_are_written_as_rgb_and_paths_work(tmp_path):
    rgba = Image.new("RGBA", (4, 3), (10, 20, 30, 255))
    png.save_png(rgba, tmp_path / "x.png")
    back = Image.open(tmp_path / "x.png")
    assert back.mode == "RGB" and back.getpixel((0, 0)) == (10, 20, 30)


def test_adler32_of_a_concatenation_is_combined_from_its_parts():
    rng = np.random.default_rng(1)
    first, second = rng.bytes(70_000), rng.bytes(123_457)
    combined = png._adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)
