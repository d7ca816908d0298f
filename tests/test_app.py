"""The app as a user and an API client meet it: `python app.py` on a free port, driven by gradio_client.

One server for the module (start-up time measured on the way), a tiny saved checkpoint in a
temporary models folder, a study built into a temporary SQLite file. No mocks.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from browser import mean_chroma, running_app
from colorize.checkpoint import save_model
from colorize.models import ModelConfig, build_generator

STARTUP_LIMIT_S = 15.0


def save_tiny_checkpoint(folder: Path) -> Path:
    """A real checkpoint folder, 18 kB: a tiny U-Net whose output bias paints everything warm."""
    config = ModelConfig(base_channels=4, depth=3, max_channels=8, dropout=0.5, dropout_layers=1)
    generator = build_generator(config)
    with torch.no_grad():
        generator.head[1].bias.copy_(torch.tensor([0.25, 0.35]))  # a, b > 0: orange-ish
    return save_model(folder, generator, config, metadata={"name": folder.name})


def gray_photo(size: tuple[int, int] = (96, 64)) -> Image.Image:
    width, height = size
    ramp = np.linspace(0, 255, width, dtype=np.float64)[None, :] * np.linspace(0.3, 1, height)[:, None]
    return Image.fromarray(ramp.astype(np.uint8), mode="L")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("app")
    models = workdir / "models"
    save_tiny_checkpoint(models / "tiny")
    db_url = f"sqlite:///{workdir / 'survey.sqlite'}"
    with running_app(models_dir=models, db_url=db_url, workdir=workdir) as (url, started):
        client = Client(url, verbose=False)
        yield {"url": url, "client": client, "started_s": started, "workdir": workdir, "db_url": db_url}


def colorize(client: Client, path: Path, **options) -> Image.Image:
    result = client.predict(handle_file(str(path)), model=options.pop("model", "tiny"), api_name="/colorize", **options)
    return Image.open(result)


def test_starts_and_answers_within_15_seconds(app):
    print(f"first answer {app['started_s']:.1f} s after launch")
    assert app["started_s"] < STARTUP_LIMIT_S


def test_readme_api_snippet_colorizes_at_full_size(app, tmp_path):
    photo = tmp_path / "old photo.jpg"
    gray_photo((333, 201)).save(photo, quality=95)
    # --- as in the README ---
    client = Client(app["url"])
    png_path = client.predict(handle_file(str(photo)), model="tiny", api_name="/colorize")
    # ---
    assert Path(png_path).suffix == ".png"
    with Image.open(png_path) as result:
        assert result.format == "PNG"
        assert result.size == (333, 201)
        assert mean_chroma(result) > 15  # a gray input comes back in colour
        lightness = np.asarray(result.convert("L"), dtype=np.float64)
    original = np.asarray(Image.open(photo).convert("L"), dtype=np.float64)
    assert np.abs(lightness - original).mean() < 6  # the tones of the photo are kept


def test_shipped_model_is_the_default(app, tmp_path):
    photo = tmp_path / "p.png"
    gray_photo().save(photo)
    result = app["client"].predict(handle_file(str(photo)), api_name="/colorize")
    assert Image.open(result).size == (96, 64)


@pytest.mark.parametrize(
    "name, make, size",
    [
        ("one-pixel.png", lambda: Image.new("L", (1, 1), 128), (1, 1)),
        ("thin.png", lambda: Image.new("L", (3, 500), 90), (3, 500)),
        ("cmyk.jpg", lambda: gray_photo().convert("CMYK"), (96, 64)),
        ("sixteen-bit.png", lambda: Image.fromarray((np.asarray(gray_photo(), np.uint16) * 257)), (96, 64)),
        ("palette.gif", lambda: gray_photo().convert("P"), (96, 64)),
        ("transparent.png", lambda: gray_photo().convert("RGBA"), (96, 64)),
    ],
)
def test_any_mode_and_size_comes_back_same_size_in_colour(app, tmp_path, name, make, size):
    path = tmp_path / name
    make().save(path)
    result = colorize(app["client"], path)
    assert result.size == size
    assert mean_chroma(result) > 15


def test_exif_rotated_photo_comes_back_upright(app, tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    gray_photo((96, 64)).save(path, exif=exif)
    assert colorize(app["client"], path).size == (64, 96)


def _error_message(client: Client, path: Path) -> str:
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(path)), api_name="/colorize")
    return str(caught.value)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("notes.txt", b"hello, I am not a picture\n", "'notes.txt' is not an image this program can read."),
        ("empty.png", b"", "'empty.png' is empty."),
        ("cut.png", None, "'cut.png' is damaged or truncated and cannot be read"),
        ("huge.png", "bomb", "'huge.png' is 10000x6000 (60 megapixels); the limit is 50 megapixels."),
    ],
)
def test_bad_input_gives_one_plain_sentence(app, tmp_path, name, content, expected):
    path = tmp_path / name
    if content is None:
        buffer = io.BytesIO()
        gray_photo((200, 200)).save(buffer, format="PNG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    elif content == "bomb":
        Image.new("1", (10000, 6000)).save(buffer := io.BytesIO(), format="PNG")  # 60 MP in ~10 kB
        content = buffer.getvalue()
    path.write_bytes(content)
    message = _error_message(app["client"], path)
    assert message.startswith(expected)
    assert message.count(". ") == 0 and message.endswith(("." , ")."))  # one sentence
    assert "Traceback" not in message and "File \"" not in message


def test_unknown_model_is_refused_plainly(app, tmp_path):
    path = tmp_path / "p.png"
    gray_photo().save(path)
    with pytest.raises(AppError, match="There is no model called '../tiny'"):
        app["client"].predict(handle_file(str(path)), model="../tiny", api_name="/colorize")


def test_variations_are_different_samples_at_full_size(app, tmp_path):
    path = tmp_path / "p.png"
    gray_photo((120, 80)).save(path)
    gallery = app["client"].predict(
        handle_file(str(path)), model="tiny", seed=5, count=3, api_name="/variations"
    )
    assert [item["caption"] for item in gallery] == ["seed 5", "seed 6", "seed 7"]
    images = [np.asarray(Image.open(item["image"]), dtype=np.int16) for item in gallery]
    assert all(image.shape == (80, 120, 3) for image in images)
    assert np.abs(images[0] - images[1]).max() > 0  # the dropout noise changes the colours
    # the same seed through /colorize gives the same picture as its variation
    again = np.asarray(colorize(app["client"], path, seed=6), dtype=np.int16)
    assert np.array_equal(again, images[1])


def test_batch_zip_in_zip_out_with_report(app, tmp_path):
    first, second = tmp_path / "first.png", tmp_path / "second.jpg"
    gray_photo((50, 40)).save(first)
    gray_photo((30, 70)).save(second)
    bundle = tmp_path / "album.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        buffer = io.BytesIO()
        gray_photo((20, 10)).save(buffer, format="PNG")
        archive.writestr("holiday/beach.png", buffer.getvalue())
        archive.writestr("holiday/broken.jpg", b"not a jpeg")
        archive.writestr("readme.txt", b"hello")
    archive_path, report = app["client"].predict(
        [handle_file(str(first)), handle_file(str(second)), handle_file(str(bundle))],
        model="tiny",
        api_name="/colorize_batch",
    )
    with zipfile.ZipFile(archive_path) as result:
        names = sorted(result.namelist())
        assert names == ["album/holiday/beach.png", "first.png", "report.txt", "second.png"]
        sizes = {name: Image.open(io.BytesIO(result.read(name))).size for name in names if name.endswith(".png")}
        assert sizes == {"album/holiday/beach.png": (20, 10), "first.png": (50, 40), "second.png": (30, 70)}
        inside = result.read("report.txt").decode()
    assert inside == report
    assert report.startswith("Colorized 3 images.\nSkipped 2 files:")
    assert "album/holiday/broken.jpg: 'broken.jpg' is not an image this program can read." in report
    assert "album/readme.txt: not an image file" in report


def test_page_config_has_no_answers_and_warns_about_missing_weights(app):
    import urllib.request

    with urllib.request.urlopen(app["url"] + "config", timeout=10) as response:
        config = json.loads(response.read())
    text = json.dumps(config)
    assert "No trained weights found: showing an untrained model" in text
