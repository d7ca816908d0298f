"""The app in a real browser (Debian's Chromium through Playwright), as a visitor uses it.

Screenshots of each step go to the test's temporary folder (printed with -s), to look at.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import (
    build_tiny_studies,
    chromium,
    fetch_image,
    gray_photo,
    running_app,
    save_tiny_checkpoint,
)
from colorize.pixels import mean_chroma
from survey.store import Store

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("browser-app")
    save_tiny_checkpoint(workdir / "models" / "tiny")
    db_url = f"sqlite:///{workdir / 'survey.sqlite'}"
    build_tiny_studies(Store(db_url))
    # an empty 'shipped' folder: the app must still start, on the untrained model, and say so.
    no_weights = workdir / "no-weights"
    no_weights.mkdir()
    env = {"SURVEY_ADMIN_PASSWORD": "open sesame", "COLORIZE_SHIPPED_MODEL": str(no_weights)}
    with running_app(models_dir=workdir / "models", db_url=db_url, workdir=workdir, env=env) as (url, _):
        yield {"url": url, "workdir": workdir, "db_url": db_url}


@pytest.fixture(scope="module")
def browser_page(server):
    with chromium() as page:
        page.set_default_timeout(TIMEOUT_MS)
        yield page


def open_app(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("#colorize-button")


def choose_model(page, prefix: str, name: str) -> None:
    box = page.locator(f"#{prefix}-model input")
    box.click()
    box.fill(name)
    page.get_by_role("option", name=name, exact=True).click()


def test_upload_colorize_and_download_full_size_colour(browser_page, server, tmp_path, shots):
    page = browser_page
    open_app(page, server["url"])
    page.screenshot(path=shots / "01-start.png", full_page=True)
    assert page.get_by_text("No trained weights found: showing an untrained model").is_visible()

    photo = tmp_path / "street.png"
    gray_photo((300, 200)).save(photo)
    choose_model(page, "colorize", "tiny")
    page.locator("#input-image input[type=file]").set_input_files(str(photo))
    page.click("#colorize-button")
    page.wait_for_selector("#download-button", state="visible")
    link = page.locator("#result-slider a[data-testid=download-link]")
    result = fetch_image(link.get_attribute("href"))
    page.screenshot(path=shots / "02-colorized.png", full_page=True)

    assert result.size == (300, 200)
    assert mean_chroma(result) > 15 > 3 > mean_chroma(Image.open(photo))
    with page.expect_download() as download:
        page.click("#download-button")
    downloaded = Image.open(download.value.path())
    assert downloaded.format == "PNG" and downloaded.size == (300, 200)
    assert np.array_equal(np.asarray(downloaded.convert("RGB")), np.asarray(result))


def test_example_colorizes_with_one_click(browser_page, server, shots):
    page = browser_page
    open_app(page, server["url"])
    page.locator(".gallery-item").first.click()
    page.wait_for_selector("#download-button", state="visible")
    result = fetch_image(page.locator("#result-slider a[data-testid=download-link]").get_attribute("href"))
    page.screenshot(path=shots / "03-example.png", full_page=True)
    assert result.size == (512, 512)  # skimage's cameraman, at its own size


def test_not_an_image_shows_one_plain_sentence(browser_page, server, tmp_path, shots):
    page = browser_page
    open_app(page, server["url"])
    fake = tmp_path / "holiday.png"
    fake.write_text("this is a text file with a picture's name")
    page.locator("#input-image input[type=file]").set_input_files(str(fake))
    page.click("#colorize-button")
    toast = page.locator("[data-testid=toast-body]").filter(has_text="holiday.png")
    toast.wait_for()
    page.wait_for_timeout(300)  # let the toast slide in, for the screenshot
    page.screenshot(path=shots / "04-error.png")
    text = toast.inner_text()
    assert "'holiday.png' is not an image this program can read." in text
    assert "Traceback" not in text


def test_batch_of_two_files_gives_a_zip(browser_page, server, tmp_path, shots):
    page = browser_page
    open_app(page, server["url"])
    page.get_by_role("tab", name="Batch").click()
    first, second = tmp_path / "a.png", tmp_path / "b.jpg"
    gray_photo((64, 48)).save(first)
    gray_photo((40, 90)).save(second)
    choose_model(page, "batch", "tiny")
    page.locator("#batch-files input[type=file]").set_input_files([str(first), str(second)])
    page.wait_for_function("document.querySelector('#batch-files').innerText.includes('.jpg')")
    page.click("#batch-button")
    page.wait_for_function("document.querySelector('#batch-report textarea').value.startsWith('Colorized')")
    page.screenshot(path=shots / "05-batch.png", full_page=True)
    assert page.locator("#batch-report textarea").input_value() == "Colorized 2 images.\n"
    with page.expect_download() as download:
        page.locator("#batch-output a").first.click()
    with zipfile.ZipFile(download.value.path()) as archive:
        assert sorted(archive.namelist()) == ["a.png", "b.png", "report.txt"]
        colour = Image.open(io.BytesIO(archive.read("b.png")))
        assert colour.size == (40, 90) and mean_chroma(colour) > 15


def test_a_whole_short_study(browser_page, server, shots):
    page = browser_page
    link = server["url"] + "?study=tiny-pair"  # the link participants get: opens the study's tab
    page.goto(link)
    page.wait_for_selector("#survey-agree", state="visible")
    page.screenshot(path=shots / "10-consent.png", full_page=True)
    page.click("#survey-agree")
    page.wait_for_selector("#survey-begin", state="visible")
    page.screenshot(path=shots / "11-instructions.png", full_page=True)

    page.click("#survey-begin")
    page.wait_for_selector("#survey-stimulus .stimulus img")
    assert page.locator("#survey-progress").inner_text().strip() == "Practice 1 / 1"
    assert page.locator(".stimulus img").count() == 2
    page.screenshot(path=shots / "12-practice-trial.png", full_page=True)
    # shown for the study's 400 ms, then hidden; the answer buttons stay
    page.wait_for_selector(".stimulus.expired", state="attached", timeout=5_000)
    assert not page.locator(".stimulus img").first.is_visible()
    assert page.locator("#survey-choice-0").is_enabled()
    page.screenshot(path=shots / "13-hidden.png", full_page=True)

    page.click("#survey-choice-0")
    page.wait_for_selector("#survey-next", state="visible")
    assert page.locator("#survey-feedback").inner_text().startswith(("Correct!", "Not quite."))
    page.screenshot(path=shots / "14-feedback.png", full_page=True)
    page.click("#survey-next")

    page.wait_for_function("document.querySelector('#survey-progress')?.innerText.trim() === '1 / 3'")
    page.click("#survey-choice-1")
    page.wait_for_function("document.querySelector('#survey-progress')?.innerText.trim() === '2 / 3'")
    page.screenshot(path=shots / "15-test-trial.png", full_page=True)

    # A reload resumes where the participant left off (the token is kept in the browser).
    page.goto(server["url"])
    page.wait_for_function("document.querySelector('#survey-progress')?.innerText.trim() === '2 / 3'")
    page.click("#survey-choice-0")
    page.wait_for_function("document.querySelector('#survey-progress')?.innerText.trim() === '3 / 3'")
    page.click("#survey-choice-1")
    page.wait_for_selector("#survey-done", state="visible")
    score = page.locator("#survey-score").inner_text()
    page.screenshot(path=shots / "16-thanks.png", full_page=True)
    assert score.startswith("You picked the real photo in ") and "of 3 test trials" in score

    # Finished: the link shows the thank-you page again, with nothing left to answer.
    page.goto(link)
    page.wait_for_selector("#survey-done", state="visible")
    frame = Store(server["db_url"]).trials_frame("tiny-pair")
    assert frame["participant"].nunique() == 1 and bool(frame["answered"].all())


def test_admin_view(browser_page, server, shots):
    page = browser_page
    open_app(page, server["url"])
    page.get_by_role("tab", name="Real or fake?").click()
    page.get_by_text("Study admin").click()
    page.locator("#admin-password input").fill("open sesame")
    page.locator("#admin-study input").click()
    page.get_by_role("option", name="tiny-pair", exact=True).click()
    page.click("#admin-show")
    page.wait_for_selector("#admin-export", state="visible")
    page.screenshot(path=shots / "17-admin.png", full_page=True)
    assert "Participants:" in page.locator("#admin-status").inner_text()
