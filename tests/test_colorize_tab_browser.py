"""The Colorize tab in a real browser (Debian's Chromium through Playwright) and through its API:
colour points placed by clicking (and tapping) the photo, suggested colours, the list of points,
the points file; the buttons after every mistake; the photo's own lightness kept.

The app runs as a user starts it, with a hint-taking model as its shipped model: a tiny
generator trained here for a few seconds (`colorize.train --hints`) on synthetic photos of flat
regions, where the colour can only come from the hints, so that it has learned to follow them.
A model without hints ("plain") is in its models folder. Screenshots go to artifacts/colorize-tab/.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from browser import (
    ARTIFACTS, choose_model, chromium, fetch_image, new_page, open_app, running_app,
    save_tiny_checkpoint, slider_images, upload, wait_for_new_result,
)
from colorize.hints import colour_ab
from colorize.pixels import lab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 60_000
PHONE = (390, 844)
TOAST = "[data-testid=toast-body]"
BUTTONS = ("#colorize-button", "#variations-button", "#batch-button")
# the input shows the app's gray preview (a JPEG), not the file that was uploaded
PREVIEW_SHOWN = """() => {
  const img = document.querySelector('#input-image img');
  return img !== null && img.complete && img.naturalWidth > 0 && /[.]jpg$/.test(img.src) && img.getBoundingClientRect().width > 0;
}"""


def flat_regions(count: int, size: int, seed: int) -> list[Image.Image]:
    """Photos of `count`-cell Voronoi regions, each a random flat colour: only hints tell their colours."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size]
    photos = []
    for _ in range(count):
        centres, colours = rng.uniform(0, size, (6, 2)), rng.uniform(20, 235, (6, 3))
        nearest = ((x[..., None] - centres[:, 0]) ** 2 + (y[..., None] - centres[:, 1]) ** 2).argmin(-1)
        photos.append(Image.fromarray(colours[nearest].astype(np.uint8)))
    return photos


@pytest.fixture(scope="module")
def hint_model(tmp_path_factory, single_torch_thread):
    """A tiny hint-taking model, trained 120 steps (about 10 s) with simulated hints."""
    from colorize.train import main

    root = tmp_path_factory.mktemp("hint-training")
    (root / "photos").mkdir()
    for index, photo in enumerate(flat_regions(64, 64, seed=0)):
        photo.save(root / "photos" / f"{index}.png")
    args = [
        "--data", str(root / "photos"), "--val", str(root / "photos"), "--val-images", "2", "--sample-images", "1",
        "--out", str(root / "model"), "--hints", "--image-size", "64", "--base-channels", "8", "--max-channels", "16",
        "--depth", "4", "--dropout", "0", "--batch-size", "8", "--epochs-l1", "100", "--epochs-gan", "0",
        "--gan-mode", "none", "--num-workers", "0", "--max-steps", "120", "--lr", "2e-3", "--seed", "1", "--no-amp",
    ]  # fmt: skip
    assert main(args) == 0
    return root / "model"


@pytest.fixture(scope="module")
def server(tmp_path_factory, hint_model):
    workdir = tmp_path_factory.mktemp("colorize-tab")
    save_tiny_checkpoint(workdir / "models" / "plain")
    env = {"COLORIZE_SHIPPED_MODEL": str(hint_model)}
    with running_app(models_dir=workdir / "models", db_url=f"sqlite:///{workdir / 'survey.sqlite'}", workdir=workdir, env=env) as app:
        yield {"url": app.url, "workdir": workdir, "log": app.log, "model": hint_model}


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = ARTIFACTS / "colorize-tab"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, server):
    page = new_page(browser, timeout_ms=TIMEOUT_MS)
    open_app(page, server["url"])
    yield page
    page.context.close()


def two_regions(path: Path, size: tuple[int, int] = (240, 160)) -> Path:
    """A darker left half and a lighter right half, split by an edge."""
    width, height = size
    pixels = np.full((height, width), 200, np.uint8)
    pixels[:, : width // 2] = 110
    Image.fromarray(pixels).save(path)
    return path


def click_photo(page, x: int, y: int, *, tap: bool = False) -> None:
    """Click (or tap) pixel (x, y) of the photo the input shows; Gradio draws it centred and never enlarged."""
    page.wait_for_function(PREVIEW_SHOWN)
    image = page.locator("#input-image img").first
    box = image.bounding_box()
    width, height = image.evaluate("(img) => [img.naturalWidth, img.naturalHeight]")
    scale = min(box["width"] / width, box["height"] / height, 1)
    left, top = (box["width"] - width * scale) / 2, (box["height"] - height * scale) / 2
    position = {"x": left + (x + 0.5) * scale, "y": top + (y + 0.5) * scale}
    image.tap(position=position) if tap else image.click(position=position)


def points_listed(page) -> list[str]:
    return page.locator("#hint-points .hint-choose").all_inner_texts()


def wait_for_points(page, count: int) -> list[str]:
    page.wait_for_function("(count) => document.querySelectorAll('#hint-points .hint-choose').length === count", arg=count)
    return points_listed(page)


def hints_sent(page) -> list[dict]:
    """The points as the page sends them to the colorizer (the API's hints argument)."""
    text = page.locator("#hints-json textarea").input_value()
    return json.loads(text) if text else []


def suggestions(page) -> list[str]:
    page.wait_for_function("document.querySelectorAll('#hint-suggestions .hint-suggestion').length >= 6")
    return page.locator("#hint-suggestions .hint-suggestion").evaluate_all("(swatches) => swatches.map((s) => s.dataset.color)")


def upload_points(page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.click("#hint-upload")
    chooser.value.set_files(str(path))


def ab_at(image: Image.Image, x: int, y: int, reach: int = 2) -> np.ndarray:
    """Mean Lab a, b of `image` around (x, y)."""
    return lab(image)[y - reach : y + reach + 1, x - reach : x + reach + 1, 1:].reshape(-1, 2).mean(axis=0)


def library(server, photo: Path, hints: list[dict] | None = None, **options) -> np.ndarray:
    from colorize import Colorizer

    return np.asarray(Colorizer.from_pretrained(server["model"]).colorize(photo, hints=hints, **options))


def downloaded(page) -> Image.Image:
    with page.expect_download() as download:
        page.click("#download-button")
    return Image.open(download.value.path()).convert("RGB")


# -- colour points ---------------------------------------------------------------------------------


def test_a_click_places_a_point_a_suggestion_recolours_it_there_and_undo_and_clear_take_it_back(page, server, tmp_path, shots):
    photo = two_regions(tmp_path / "door.png")
    upload(page, photo)
    assert points_listed(page) == [] and "Click the photo to place a colour point" in page.locator("#hints-note").inner_text()

    started = time.monotonic()
    click_photo(page, 60, 80)
    first = wait_for_new_result(page, [])
    print(f"\nclick to result {time.monotonic() - started:.2f} s (a 240x160 photo)")
    assert wait_for_points(page, 1) == ["1. #c0392b at (60, 80)"]  # the picker's colour until one is picked
    assert hints_sent(page) == [{"x": 60, "y": 80, "color": "#c0392b"}]
    red = fetch_image(first[1])
    assert np.array_equal(np.asarray(red), library(server, photo, hints_sent(page)))  # the app is the library
    offered = suggestions(page)
    page.screenshot(path=shots / "01-point-placed.png", full_page=True)
    assert len(set(offered)) == len(offered) >= 6

    # the suggestion farthest from what the point shows now, and the result follows it there
    now = ab_at(red, 60, 80)
    chosen = max(offered, key=lambda colour: math.dist(colour_ab(colour), now))
    page.locator(f"#hint-suggestions [data-color='{chosen}']").click()
    second = wait_for_new_result(page, first)
    recoloured = fetch_image(second[1])
    page.screenshot(path=shots / "02-suggestion-chosen.png", full_page=True)
    assert hints_sent(page) == [{"x": 60, "y": 80, "color": chosen}] and points_listed(page) == [f"1. {chosen} at (60, 80)"]
    target = colour_ab(chosen)
    assert math.dist(ab_at(recoloured, 60, 80), target) < math.dist(now, target) - 10
    assert np.array_equal(np.asarray(downloaded(page)), np.asarray(recoloured))  # the PNG is the one shown
    assert recoloured.size == (240, 160)

    page.click("#hint-undo")
    third = wait_for_new_result(page, second)
    assert np.array_equal(np.asarray(fetch_image(third[1])), np.asarray(red)) and hints_sent(page)[0]["color"] == "#c0392b"

    page.click("#hint-clear")
    wait_for_points(page, 0)
    wait_for_new_result(page, third)
    assert hints_sent(page) == [] and page.locator("#hint-download").is_hidden()
    assert np.array_equal(np.asarray(downloaded(page)), library(server, photo))  # the automatic colours again
    page.screenshot(path=shots / "03-cleared.png", full_page=True)


def test_points_are_moved_recoloured_removed_and_saved_to_a_file_that_brings_them_back(page, server, tmp_path, shots):
    photo = two_regions(tmp_path / "house.png")
    upload(page, photo)
    click_photo(page, 40, 40)
    wait_for_points(page, 1)
    click_photo(page, 200, 120)
    assert wait_for_points(page, 2) == ["1. #c0392b at (40, 40)", "2. #c0392b at (200, 120)"]

    # choose point 1 in the list, move it, recolour it with the picker
    page.locator("#hint-points .hint-choose").first.click()
    page.wait_for_selector("#hint-points .hint-row.selected:first-child")
    page.click("#hint-move")
    page.wait_for_function("document.querySelector('#hints-note').innerText.includes('where point 1 should go')")
    click_photo(page, 100, 20)
    page.wait_for_function("document.querySelector('#hint-points').innerText.includes('(100, 20)')")
    page.locator("#hint-colour .dialog-button").click()
    hex_box = page.locator("#hint-colour input[type=text]")
    hex_box.fill("#1f4fbf")
    hex_box.press("Enter")
    page.wait_for_function("document.querySelector('#hint-points').innerText.includes('#1f4fbf')")
    assert points_listed(page) == ["1. #1f4fbf at (100, 20)", "2. #c0392b at (200, 120)"]
    page.keyboard.press("Escape")
    page.screenshot(path=shots / "04-moved-recoloured.png", full_page=True)

    # a click on a marker selects its point rather than placing another on it
    click_photo(page, 201, 119)
    page.wait_for_selector("#hint-points .hint-row.selected:nth-child(2)")
    assert len(points_listed(page)) == 2

    with page.expect_download() as download:
        page.click("#hint-download")
    assert download.value.suggested_filename == "house.hints.json"
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert json.loads(saved.read_text()) == {
        "image_size": [240, 160],
        "hints": [{"x": 100, "y": 20, "color": "#1f4fbf"}, {"x": 200, "y": 120, "color": "#c0392b"}],
    }
    before_removal = slider_images(page)
    with_both = fetch_image(before_removal[1])
    page.locator("#hint-points .hint-remove").nth(1).click()
    assert wait_for_points(page, 1) == ["1. #1f4fbf at (100, 20)"]
    wait_for_new_result(page, before_removal)

    page.click("#hint-clear")
    wait_for_points(page, 0)
    upload_points(page, saved)  # work continued later
    wait_for_points(page, 2)
    page.wait_for_function(
        "(src) => document.querySelectorAll('#result-slider img')[1]?.src === src", arg=before_removal[1]
    )  # the same result as before, pixel for pixel (the same file content, the same address)
    assert np.array_equal(np.asarray(downloaded(page)), np.asarray(with_both))
    page.screenshot(path=shots / "05-points-file-uploaded.png", full_page=True)

    # a points file of another photo: one sentence, the points stay
    other = tmp_path / "other.hints.json"
    other.write_text(json.dumps({"image_size": [640, 480], "hints": [{"x": 1, "y": 1, "color": "#ffffff"}]}))
    upload_points(page, other)
    toast = page.locator(TOAST).filter(has_text="These points were placed on a 640x480 photo")
    toast.wait_for()
    assert "but this one is 240x160 pixels." in toast.inner_text() and len(points_listed(page)) == 2
    page.wait_for_timeout(300)
    assert error_badges(page) == []


def test_a_tap_on_a_phone_places_a_point_and_the_page_stays_phone_wide(browser, server, tmp_path, shots):
    page = new_page(browser, width=PHONE[0], height=PHONE[1], timeout_ms=TIMEOUT_MS)
    open_app(page, server["url"])
    photo = two_regions(tmp_path / "portrait.png", (160, 240))
    upload(page, photo)
    click_photo(page, 40, 200, tap=True)
    after = wait_for_new_result(page, [])
    assert wait_for_points(page, 1) == ["1. #c0392b at (40, 200)"]
    suggestions(page)
    page.screenshot(path=shots / "06-phone-tap.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    # the photo one taps and the result it changes share one screen: the result starts right under the
    # photo (before the points and the controls), at least 200 px of it on screen with the whole photo
    photo_top, photo_bottom, result_top = page.evaluate("""() => {
        const box = (id) => document.getElementById(id).getBoundingClientRect();
        return [box('input-image').top, box('input-image').bottom, box('result-slider').top].map((y) => y + window.scrollY);
    }""")
    assert photo_bottom <= result_top <= photo_bottom + 40 and result_top - photo_top <= PHONE[1] - 200, (photo_top, photo_bottom, result_top)
    assert np.array_equal(np.asarray(fetch_image(after[1])), library(server, photo, hints_sent(page)))
    page.context.close()


def test_a_model_without_hints_says_so_beside_the_points_and_colours_without_them(page, server, tmp_path, shots):
    photo = two_regions(tmp_path / "street.png")
    upload(page, photo)
    click_photo(page, 60, 80)
    wait_for_points(page, 1)
    hinted = wait_for_new_result(page, [])
    choose_model(page, "colorize", "plain")
    note = page.locator("#hints-note")
    page.wait_for_function("document.querySelector('#hints-note').innerText.includes('takes no colour hints')")
    assert "The model 'plain' takes no colour hints" in note.inner_text() and "choose a model trained with hints" in note.inner_text()
    click_photo(page, 150, 40)
    page.wait_for_selector("#hints-note strong")  # said again, in bold, where the click was meant to act
    assert "takes no colour hints" in page.locator("#hints-note strong").inner_text()
    assert len(points_listed(page)) == 1  # no point placed, the one there kept
    page.click("#colorize-button")
    _, after = wait_for_new_result(page, hinted)
    page.screenshot(path=shots / "07-model-without-hints.png", full_page=True)
    from colorize import Colorizer

    plain = Colorizer.from_pretrained(server["workdir"] / "models" / "plain")
    assert np.array_equal(np.asarray(fetch_image(after)), np.asarray(plain.colorize(photo)))  # coloured, without the point


# -- the API: old calls unchanged, hints as an optional last argument ------------------------------


def test_api_callers_without_hints_are_served_as_before_and_hints_come_last(server, tmp_path):
    client = Client(server["url"], verbose=False)
    photo = two_regions(tmp_path / "api.png")
    hints = [{"x": 60, "y": 80, "color": "#2060c0"}, {"x": 200, "y": 30, "color": "#30a050", "radius": 4}]
    assert np.array_equal(np.asarray(Image.open(client.predict(handle_file(str(photo)), api_name="/colorize"))), library(server, photo))
    served = client.predict(handle_file(str(photo)), "shipped", 64, 1.0, "", json.dumps(hints), api_name="/colorize")
    assert np.array_equal(np.asarray(Image.open(served)), library(server, photo, hints))
    named = client.predict(handle_file(str(photo)), hints=json.dumps(hints), seed=3, api_name="/colorize")
    assert np.array_equal(np.asarray(Image.open(named)), library(server, photo, hints, seed=3))

    gallery = client.predict(handle_file(str(photo)), count=2, seed=5, hints=json.dumps(hints), api_name="/variations")
    assert len(gallery) == 2
    assert np.array_equal(np.asarray(Image.open(gallery[1]["image"])), library(server, photo, hints, seed=6))


@pytest.mark.parametrize(
    "model, hints, message",
    [
        ("plain", '[{"x": 1, "y": 1, "color": "#ff0000"}]', "The model 'plain' takes no colour hints; choose a model trained with --hints."),
        ("shipped", '[{"x": 500, "y": 1, "color": "#ff0000"}]', "Hint 1 at (500, 1) is outside the photo, which is 240x160 pixels."),
        ("shipped", "[{x: 1}]", "The hints argument is not valid JSON"),
        ("shipped", '[{"x": 1, "y": 1, "color": "red"}]', "Hint 1: 'red' is not a colour"),
    ],
)
def test_api_hints_that_cannot_be_used_get_one_sentence(server, tmp_path, model, hints, message):
    client = Client(server["url"], verbose=False)
    photo = two_regions(tmp_path / "bad.png")
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(photo)), model=model, hints=hints, api_name="/colorize")
    assert str(caught.value).startswith(message) and "Traceback" not in str(caught.value)


# -- after a mistake, every button works again and no error badge stays ----------------------------


def buttons_disabled(page) -> list[bool | None]:
    return page.evaluate("(ids) => ids.map((id) => document.querySelector(id)?.disabled ?? null)", list(BUTTONS))


def error_badges(page) -> list[str]:
    """The "Error" badges Gradio puts on a failed step's outputs (its toasts are not badges)."""
    return page.evaluate(
        "Array.from(document.querySelectorAll('[data-testid=status-tracker] .error'))"
        ".filter((badge) => badge.offsetParent !== null).map((badge) => badge.closest('[id]')?.id ?? '?')"
    )


def bad_seed(page, tmp_path):
    upload(page, two_regions(tmp_path / "seeded.png"))
    page.locator("#variations").get_by_text("Variations").first.click()
    page.locator("#seed textarea, #seed input").first.fill("seven")
    page.click("#colorize-button")
    return "'seven' is not a seed"


def no_photo(page, tmp_path):
    page.click("#colorize-button")
    return "Add a photo first"


def empty_batch(page, tmp_path):
    page.get_by_role("tab", name="Batch").click()
    page.click("#batch-button")
    return "Add some images or a ZIP archive of images first."


def broken_file(page, tmp_path):
    broken = tmp_path / "holiday.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a picture")
    page.locator("#input-image input[type=file]").set_input_files(str(broken))
    page.locator(TOAST).filter(has_text="holiday.png").first.wait_for()
    page.click("#colorize-button")
    return "holiday.png"


@pytest.mark.parametrize("mistake", [bad_seed, no_photo, empty_batch, broken_file], ids=lambda f: f.__name__)
def test_every_button_comes_back_after_a_mistake_and_no_error_badge_stays(mistake, page, tmp_path, shots):
    expected = mistake(page, tmp_path)
    page.locator(TOAST).filter(has_text=expected).last.wait_for()
    page.wait_for_function("(ids) => ids.every((id) => !document.querySelector(id)?.disabled)", arg=list(BUTTONS))
    page.wait_for_timeout(300)  # anything still to come in would come now
    page.screenshot(path=shots / f"10-after-{mistake.__name__}.png", full_page=True)
    assert buttons_disabled(page) == [False if page.locator(b).count() else None for b in BUTTONS]
    assert error_badges(page) == []
    assert "Traceback" not in page.locator(TOAST).last.inner_text()

    # and the next try works: a photo, colorized
    page.get_by_role("tab", name="Colorize").click()
    seed = page.locator("#seed textarea, #seed input")
    if seed.count():
        seed.first.fill("")
    upload(page, two_regions(tmp_path / "next.png"))
    previous = slider_images(page)
    page.click("#colorize-button")
    wait_for_new_result(page, previous)


# -- the photo keeps its own lightness ------------------------------------------------------------


def test_the_colorize_tab_colours_the_uploaded_file_not_its_gray_preview(page, server, tmp_path, shots):
    """The input shows a gray JPEG; colouring that instead of the upload moved this photo's lightness by up to 4.2 L*."""
    from skimage import data

    photo = tmp_path / "coffee.png"
    Image.fromarray(data.coffee()).save(photo)
    upload(page, photo)
    page.click("#colorize-button")
    wait_for_new_result(page, [])
    result = downloaded(page)
    page.screenshot(path=shots / "11-lightness.png", full_page=True)
    difference = np.abs(lab(result)[..., 0] - lab(Image.open(photo))[..., 0])
    print(f"\nL* difference: mean {difference.mean():.3f}, max {difference.max():.3f}")
    assert result.size == (600, 400) and difference.mean() < 0.1 and difference.max() < 0.35  # 8-bit rounding
