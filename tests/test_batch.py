"""colorize.batch: files and ZIP archives in, one ZIP of full-size PNGs with a report out."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image

from colorize import Colorizer
from colorize import batch
from colorize.models import ModelConfig


@pytest.fixture(scope="module")
def colorizer():
    return Colorizer.untrained(model_config=ModelConfig(base_channels=4, depth=3, max_channels=8))


def png_bytes(size=(12, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 100).save(buffer, format="PNG")
    return buffer.getvalue()


def test_archive_members_cannot_escape_and_names_do_not_clash(colorizer, tmp_path):
    archive = tmp_path / "old.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../../escape.png", png_bytes())
        bundle.writestr("/abs/escape.png", png_bytes((5, 5)))
        bundle.writestr("__MACOSX/._escape.png", b"resource fork")
        bundle.writestr("folder/", b"")
    loose = tmp_path / "escape.jpg"
    Image.new("RGB", (7, 3)).save(loose)
    result = batch.colorize_batch(colorizer, [loose, archive], tmp_path / "out" / "result.zip", progress=False)
    assert result.colorized == ["escape.png", "old/escape.png", "old/abs/escape.png"]
    assert result.skipped == []
    with zipfile.ZipFile(result.archive) as bundle:
        assert sorted(bundle.namelist()) == ["escape.png", "old/abs/escape.png", "old/escape.png", "report.txt"]
    assert not (tmp_path / "escape.png").exists() and not list(tmp_path.parent.glob("escape.png"))


def test_same_names_get_numbered(colorizer, tmp_path):
    first, second = tmp_path / "a" / "photo.png", tmp_path / "b" / "photo.jpg"
    for path in (first, second):
        path.parent.mkdir()
        Image.new("L", (4, 4)).save(path)
    result = batch.colorize_batch(colorizer, [first, second], tmp_path / "out.zip", progress=False)
    assert result.colorized == ["photo.png", "photo (2).png"]


def test_oversized_archive_is_skipped_with_its_reason(colorizer, tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("zeros.png", bytes(5000))
    monkeypatch.setattr(batch, "MAX_ARCHIVE_BYTES", 1000)
    result = batch.colorize_batch(colorizer, [archive], tmp_path / "out.zip", progress=False)
    assert result.colorized == []
    assert result.skipped == [("bomb.zip", "it unpacks to 4.9 kB; the limit is 1000 bytes.")]
    assert result.report() == "Colorized 0 images.\nSkipped 1 file:\n- bomb.zip: it unpacks to 4.9 kB; the limit is 1000 bytes.\n"


def test_not_a_zip_and_unreadable_images_are_reported(colorizer, tmp_path):
    fake_zip = tmp_path / "photos.zip"
    fake_zip.write_text("not a zip")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    result = batch.colorize_batch(colorizer, [fake_zip, empty], tmp_path / "out.zip", progress=False)
    reasons = dict(result.skipped)
    assert reasons["photos.zip"].startswith("it is not a readable ZIP archive")
    assert reasons["empty.png"] == "'empty.png' is empty."
    with zipfile.ZipFile(result.archive) as bundle:
        assert bundle.namelist() == ["report.txt"]
