"""The app in a real browser (Debian's Chromium through Playwright), as a visitor uses it, at desktop and phone widths.

Screenshots of every tab at both widths, and of each step, go to the artifacts folder
(`artifacts/browser/`, or $COLORIZE_TEST_ARTIFACTS/browser), for a reviewer to look at.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from browser import (
    ARTIFACTS,
    build_tiny_studies,
    choose_model,
    chromium,
    colourful_photo,
    fetch_image,
    gray_photo,
    new_page,
    open_app,
    running_app,
    running_study_app,
    save_tiny_checkpoint,
    slider_images,
    upload,
    wait_for_new_result,
)
from colorize.pixels import mean_chroma
from survey.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 60_000
PHONE = (390, 844)
DESKTOP = (1280, 900)
TABS = {"colorize": "Colorize", "batch": "Batch", "survey": "Real or fake?"}
NOTE = "#colorize-render-note [data-testid=markdown]"  # the note's text, not a progress timer beside it


@pytest.fixture(scope="module")
def shots() -> Path:
    folder = ARTIFACTS / "browser"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nscreenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("browser-app")
    save_tiny_checkpoint(workdir / "models" / "tiny")
    save_tiny_checkpoint(workdir / "models" / "small", trained_at=64)  # its render size is 64, not 256
    db_url = f"sqlite:///{workdir / 'survey.sqlite'}"
    build_tiny_studies(Store(db_url))
    # an empty 'shipped' folder: the app must still start, on the untrained model, and say so.
    no_weights = workdir / "no-weights"
    no_weights.mkdir()
    env = {"SURVEY_ADMIN_PASSWORD": "open sesame", "COLORIZE_SHIPPED_MODEL": str(no_weights)}
    with running_app(models_dir=workdir / "models", db_url=db_url, workdir=workdir, env=env) as running:
        yield {"url": running.url, "workdir": workdir, "db_url": db_url}


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def browser_page(browser, server):
    return new_page(browser, width=DESKTOP[0], height=DESKTOP[1], timeout_ms=TIMEOUT_MS)


@pytest.fixture(scope="module")
def phone_page(browser, server):
    return new_page(browser, width=PHONE[0], height=PHONE[1], timeout_ms=TIMEOUT_MS)


def open_with_photo(page, url: str, photo: Path, size: tuple[int, int]) -> Path:
    """The app with the tiny model chosen and a gray photo of `size` uploaded."""
    open_app(page, url)
    gray_photo(size).save(photo)
    choose_model(page, "colorize", "tiny")
    upload(page, photo)
    return photo


def watch_colorize_button(page) -> None:
    """Record, from the click on, whether the button was ever disabled and progress ever shown on the slider."""
    page.evaluate(
        """() => {
          window.seen = {disabled: false, progress: false};
          const button = document.querySelector('#colorize-button');
          const slider = document.querySelector('#result-slider');
          const look = () => {
            window.seen.disabled ||= button.disabled;
            window.seen.progress ||= /Colorizing/.test(slider.innerText);
          };
          new MutationObserver(look).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
        }"""
    )


def test_a_colour_upload_is_shown_gray_and_the_button_waits_while_progress_shows(browser_page, server, tmp_path, shots):
    page = browser_page
    open_app(page, server["url"])
    page.screenshot(path=shots / "01-start.png", full_page=True)
    assert page.get_by_text("No trained weights found: showing an untrained model").is_visible()

    photo = tmp_path / "garden.png"
    colourful_photo(3, 300).crop((0, 0, 300, 200)).save(photo)
    assert mean_chroma(Image.open(photo)) > 20
    upload(page, photo)
    shown = fetch_image(page.locator("#input-image img").first.get_attribute("src"))
    assert shown.size == (300, 200) and mean_chroma(shown) < 1  # the input shows what the model sees

    watch_colorize_button(page)
    page.click("#colorize-button")
    before, _ = wait_for_new_result(page, [])
    page.wait_for_function("!document.querySelector('#colorize-button').disabled")
    page.screenshot(path=shots / "02-colorized-gray-before.png", full_page=True)
    assert page.evaluate("window.seen") == {"disabled": True, "progress": True}
    gray = fetch_image(before)
    assert gray.size == (300, 200) and mean_chroma(gray) < 1  # the slider's "before" is the gray input too


def test_upload_colorize_and_download_full_size_colour(browser_page, server, tmp_path, shots):
    page = browser_page
    photo = open_with_photo(page, server["url"], tmp_path / "street.png", (300, 200))
    page.click("#colorize-button")
    _, after = wait_for_new_result(page, [])
    page.wait_for_selector("#download-button", state="visible")
    result = fetch_image(after)
    page.screenshot(path=shots / "03-colorized.png", full_page=True)

    assert result.size == (300, 200)
    assert mean_chroma(result) > 15 > 3 > mean_chroma(Image.open(photo))
    with page.expect_download() as download:
        page.click("#download-button")
    downloaded = Image.open(download.value.path())
    assert downloaded.format == "PNG" and downloaded.size == (300, 200)
    assert np.array_equal(np.asarray(downloaded.convert("RGB")), np.asarray(result))


def test_variations_of_a_new_photo_replace_the_previous_result(browser_page, server, tmp_path, shots):
    page = browser_page
    open_app(page, server["url"])
    choose_model(page, "colorize", "tiny")
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    gray_photo((300, 200)).save(first)
    gray_photo((160, 240)).save(second)
    upload(page, first)
    page.click("#colorize-button")
    previous = wait_for_new_result(page, [])

    page.locator("#variations").get_by_text("Variations").first.click()
    seed = page.locator("#seed textarea, #seed input").first
    seed.wait_for()
    assert seed.input_value() == "" and seed.get_attribute("placeholder") == "none"  # empty means no seed, shown empty

    upload(page, second)
    page.click("#variations-button")
    page.wait_for_selector("#variations-gallery", state="visible")
    before, after = wait_for_new_result(page, previous)
    page.screenshot(path=shots / "04-variations.png", full_page=True)
    assert fetch_image(before).size == (160, 240)  # the new photo, not the one colorized before
    thumbnails = page.locator("#variations-gallery img").evaluate_all("images => images.map((image) => image.src)")
    assert len(thumbnails) == 4
    first_variation = np.asarray(fetch_image(thumbnails[0]))
    assert first_variation.shape == (240, 160, 3) and np.array_equal(np.asarray(fetch_image(after)), first_variation)
    with page.expect_download() as download:
        page.click("#download-button")
    assert np.array_equal(np.asarray(Image.open(download.value.path()).convert("RGB")), first_variation)

    seed.fill("seven")
    page.click("#variations-button")
    toast = page.locator("[data-testid=toast-body]").filter(has_text="'seven' is not a seed")
    toast.wait_for()
    assert "a seed is a whole number such as 7, or empty" in toast.inner_text()


def test_render_size_follows_the_model_and_says_when_it_leaves_the_trained_range(browser_page, server, shots):
    page = browser_page
    open_app(page, server["url"])
    size = page.locator("#colorize-render-size input[type=number]")
    note = page.locator(NOTE)
    assert size.input_value() == "256"  # the shipped (here: untrained) model's own size

    choose_model(page, "colorize", "small")
    page.wait_for_function("document.querySelector('#colorize-render-size input[type=number]').value === '64'")
    assert note.inner_text().strip() == ""
    size.fill("256")
    size.press("Enter")
    page.wait_for_function(f"document.querySelector('{NOTE}').innerText.includes('trained at 64 px')")
    page.screenshot(path=shots / "05-render-note.png", full_page=True)
    assert "at 256 px it sees objects larger than it learned them" in note.inner_text()

    choose_model(page, "colorize", "tiny")  # no training size recorded: the default, and no note
    page.wait_for_function("document.querySelector('#colorize-render-size input[type=number]').value === '256'")
    page.wait_for_function(f"document.querySelector('{NOTE}').innerText.trim() === ''")


def test_example_colorizes_with_one_click(browser_page, server, shots):
    page = browser_page
    open_app(page, server["url"])
    page.locator(".gallery-item").first.click()
    _, after = wait_for_new_result(page, [])
    page.screenshot(path=shots / "06-example.png", full_page=True)
    assert fetch_image(after).size == (512, 512)  # skimage's cameraman, at its own size


def test_not_an_image_shows_one_plain_sentence(browser_page, server, tmp_path, shots):
    page = browser_page
    open_app(page, server["url"])
    fake = tmp_path / "holiday.png"
    fake.write_text("this is a text file with a picture's name")
    page.locator("#input-image input[type=file]").set_input_files(str(fake))
    toast = page.locator("[data-testid=toast-body]").filter(has_text="holiday.png")
    toast.first.wait_for()
    page.wait_for_timeout(300)  # let the toast slide in, for the screenshot
    page.screenshot(path=shots / "07-error.png")
    text = toast.first.inner_text()
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
    page.screenshot(path=shots / "08-batch.png", full_page=True)
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
    assert page.locator(".stimulus img").count() == 0 and "data:image/png" not in page.content()  # out of the page, not just hidden
    assert page.locator("#survey-choice-0").is_enabled()
    page.screenshot(path=shots / "13-hidden.png", full_page=True)

    page.click("#survey-choice-0")
    page.wait_for_selector("#survey-next", state="visible")
    assert page.locator("#survey-feedback").inner_text().startswith(("Correct!", "Not quite."))
    assert page.locator(".stimulus img").count() == 2 and page.locator(".stimulus img").first.is_visible()  # shown again
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


def show_admin(page, study: str) -> None:
    page.locator("#admin-study input").click()
    page.get_by_role("option", name=study, exact=True).click()
    page.click("#admin-show")
    page.wait_for_function(
        "(study) => document.querySelector('#admin-status')?.innerText.includes(`Study '${study}'`)", arg=study
    )


def open_admin(page, url: str, password: str) -> None:
    """The admin page, /admin (no page of the app links to it), with the password typed in."""
    page.goto(url + "admin")
    page.locator("#admin-password input").fill(password)


def test_admin_view_says_no_answers_yet_then_shows_the_summary(browser_page, server, shots):
    page = browser_page
    open_app(page, server["url"])
    page.get_by_role("tab", name="Real or fake?").click()
    assert page.locator("#admin-password").count() == 0 and "SURVEY_ADMIN_PASSWORD" not in page.content()
    open_admin(page, server["url"], "open sesame")

    show_admin(page, "tiny-single")  # nobody has taken part yet
    page.wait_for_selector("#admin-export", state="visible")
    page.screenshot(path=shots / "17-admin-empty.png", full_page=True)
    assert "No answers yet" in page.locator("#admin-status").inner_text()
    assert not page.locator("#admin-table").is_visible() and not page.locator("#admin-plot").is_visible()

    show_admin(page, "tiny-pair")  # answered in the study above
    page.wait_for_selector("#admin-table", state="visible")
    page.wait_for_selector("#admin-plot", state="visible")
    page.screenshot(path=shots / "18-admin.png", full_page=True)
    assert "No answers yet" not in page.locator("#admin-status").inner_text()
    assert "gray" in page.locator("#admin-table").inner_text()


@pytest.mark.parametrize("width, height", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_tab_fits_the_screen(width, height, browser_page, phone_page, server, shots):
    page = phone_page if width == PHONE[0] else browser_page
    open_app(page, server["url"])
    for key, name in TABS.items():
        page.get_by_role("tab", name=name).click()
        page.wait_for_timeout(300)
        page.screenshot(path=shots / f"tab-{key}-{width}px.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the {name} tab is {overflow} px wider than a {width} px screen"


def test_on_a_phone_the_result_is_brought_into_view(phone_page, server, tmp_path, shots):
    page = phone_page
    open_with_photo(page, server["url"], tmp_path / "portrait.png", (200, 300))
    # scrolled as far as a visitor needs to reach the button: it sits at the bottom of the screen
    page.evaluate("document.querySelector('#colorize-button').scrollIntoView({block: 'end'})")
    top = page.evaluate("document.querySelector('#result-slider').getBoundingClientRect().top")
    # the result's place (right under the photo on a phone) is off the screen when the button is pressed
    assert top < 0 or top > PHONE[1], top
    page.click("#colorize-button")
    wait_for_new_result(page, [])
    page.wait_for_function(
        "() => { const box = document.querySelector('#result-slider').getBoundingClientRect();"
        " return box.top >= -1 && box.top < window.innerHeight / 2; }"
    )
    page.screenshot(path=shots / "20-phone-result.png")


# -- the study alone: `python app.py --mode survey` ---------------------------------------------


@pytest.fixture(scope="module")
def survey_server(tmp_path_factory):
    with running_study_app(tmp_path_factory.mktemp("browser-survey"), env={"SURVEY_ADMIN_PASSWORD": "survey admin"}) as (running, db_url):
        yield {"url": running.url, "db_url": db_url}


def wait_for_progress(page, text: str) -> None:
    page.wait_for_function("(text) => document.querySelector('#survey-progress')?.innerText.trim() === text", arg=text)


def test_a_whole_study_in_survey_mode(browser, survey_server, shots):
    page = new_page(browser, width=DESKTOP[0], height=DESKTOP[1], timeout_ms=TIMEOUT_MS)  # a visitor of its own
    url = survey_server["url"]
    page.goto(url + "?study=tiny-single")
    page.wait_for_selector("#survey-agree", state="visible")
    page.screenshot(path=shots / "30-survey-consent.png", full_page=True)
    shown = page.locator("body").inner_text()
    # the study alone: no tabs, no colorizer, no word about an admin or its password
    assert page.get_by_role("tab").count() == 0 and "Colorize" not in shown and "admin" not in shown.lower()
    assert "SURVEY_ADMIN_PASSWORD" not in page.content()
    assert "It takes about 1 minute." in page.locator("#survey-consent-text").inner_text()
    page.click("#survey-agree")
    page.wait_for_selector("#survey-begin", state="visible")
    instructions = page.locator("#survey-instructions-text").inner_text()
    assert "The photo disappears after 0.4 seconds" in instructions and "The first trial is practice" in instructions
    assert "Then come 3 test trials, without feedback." in instructions

    page.click("#survey-begin")
    wait_for_progress(page, "Practice 1 / 1")
    assert page.locator(".stimulus img").count() == 1 and page.locator("#survey-choice-0").inner_text() == "Real"
    page.wait_for_selector(".stimulus.expired", state="attached", timeout=5_000)
    assert page.locator(".stimulus img").count() == 0 and "data:image/png" not in page.content()
    page.click("#survey-choice-0")
    page.wait_for_selector("#survey-next", state="visible")
    assert page.locator(".stimulus img").count() == 1  # the practice photo again, with the feedback
    page.click("#survey-next")
    wait_for_progress(page, "1 / 3")
    page.click("#survey-choice-1")
    wait_for_progress(page, "2 / 3")
    trial_id = Store(survey_server["db_url"]).trials_frame("tiny-single").query("not answered")["trial_id"].min()

    # A reload after the exposure: the same trial, without its photo, answered from memory.
    page.wait_for_timeout(600)
    page.reload()
    wait_for_progress(page, "2 / 3")
    page.wait_for_selector(".stimulus.from-memory")
    page.screenshot(path=shots / "31-survey-from-memory.png", full_page=True)
    assert page.locator(".stimulus img").count() == 0 and "data:image/png" not in page.content()
    assert "please answer from memory" in page.locator("#survey-stimulus").inner_text()
    page.click("#survey-choice-0")
    wait_for_progress(page, "3 / 3")
    page.click("#survey-choice-1")
    page.wait_for_selector("#survey-done", state="visible")
    assert "of 3 test trials" in page.locator("#survey-score").inner_text()
    frame = Store(survey_server["db_url"]).trials_frame("tiny-single").set_index("trial_id")
    assert bool(frame.loc[trial_id, "reshown"]) and bool(frame["answered"].all())

    # A study built while the app runs: its link opens it on the page.
    from colorize.pixels import gray_image
    from survey.build import build_study
    from survey.study import Protocol

    protocol = Protocol(exposure_ms=400, practice_trials=0, test_trials=2, catch_rate=0.0, image_size=32)
    build_study(Store(survey_server["db_url"]), name="spring", sources=[(f"s{i}", colourful_photo(20 + i, 48)) for i in range(3)],
                makers={"gray": gray_image}, protocol=protocol, progress=False)  # fmt: skip
    page.goto(url + "?study=spring")
    page.wait_for_selector("#survey-agree", state="visible")
    assert page.locator("#survey-study input").input_value() == "spring"

    # The organiser's page, by its address: the balance among finishers, and the answers as a file.
    open_admin(page, url, "survey admin")
    show_admin(page, "tiny-single")
    assert "Method balance among the 1 who finished" in page.locator("#admin-status").inner_text()
    page.wait_for_selector("#admin-export", state="visible")
    with page.expect_download() as download:
        page.click("#admin-export")
    assert download.value.suggested_filename == "tiny-single-responses.csv"
    rows = Path(download.value.path()).read_text().splitlines()
    page.screenshot(path=shots / "32-survey-admin.png", full_page=True)
    assert len(rows) == 1 + 4 and "used" in rows[0].split(",")
    assert "not_used_reason" not in page.content()  # saved from memory; the page keeps no copy
    page.context.close()
