"""The study's screens where they are hardest to fit, in a real Chromium: a phone (390 x 844) and a desktop.

A participant must see both pictures and both answers at once, without scrolling: with "Right"
below the fold, those who do not scroll would favour "Left". The admin view's table, plot and
progress must fit the screen too. Screenshots go to `artifacts/layout/` (or
$COLORIZE_TEST_ARTIFACTS/layout) for a reviewer to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import ImageOps

from browser import build_tiny_studies, chromium, new_page, running_app, save_tiny_checkpoint, screenshot_folder
from colorize.pixels import gray_image
from survey.store import Store

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PHONE = (390, 844)
DESKTOP = (1280, 900)
PASSWORD = "layout admin"
# What a participant reads on a trial's screen; none may cover another.
TRIAL_TEXTS = ("#survey-progress", ".stimulus figcaption", ".stimulus-note", "#survey-prompt", "#survey-choice-0", "#survey-choice-1")


@pytest.fixture(scope="module")
def shots() -> Path:
    return screenshot_folder("layout")


def tinted(colour: str):
    """A fake maker that paints the gray photo in one colour."""
    return lambda gray: ImageOps.colorize(gray.convert("L"), "black", colour)


# Four methods with names as long as real ones: the admin table's widest case.
MAKERS = {"gray": gray_image, "resnet18-unet-bins-v5mix": tinted("wheat"), "pix2pix reference": tinted("lightblue"), "v4 shipped": tinted("khaki")}
# Long enough to measure a trial before its pictures go; hidden is checked after it.
EXPOSURE_MS = 3000


def study_database(workdir: Path) -> str:
    db_url = f"sqlite:///{workdir / 'survey.sqlite'}"
    build_tiny_studies(Store(db_url), exposure_ms=EXPOSURE_MS, makers=MAKERS, images=8, test_trials=8)
    return db_url


@pytest.fixture(scope="module")
def survey_server(tmp_path_factory):
    """`python app.py --mode survey`, as a public study runs it."""
    workdir = tmp_path_factory.mktemp("layout-survey")
    db_url = study_database(workdir)
    env = {"SURVEY_ADMIN_PASSWORD": PASSWORD}
    with running_app(models_dir=workdir / "none", db_url=db_url, workdir=workdir, env=env, args=("--mode", "survey")) as running:
        yield {"url": running.url, "db_url": db_url}


@pytest.fixture(scope="module")
def full_server(tmp_path_factory):
    """The whole app (`make demo`), whose header and tabs sit above the study."""
    workdir = tmp_path_factory.mktemp("layout-full")
    shipped = save_tiny_checkpoint(workdir / "tiny")  # a tiny model: the layout does not depend on it
    db_url = study_database(workdir)
    with running_app(models_dir=workdir / "models", db_url=db_url, workdir=workdir, env={"COLORIZE_SHIPPED_MODEL": str(shipped)}) as running:
        yield {"url": running.url, "db_url": db_url}


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def boxes(page, selector: str) -> list[dict]:
    """The on-screen boxes (viewport coordinates) of the visible elements matching `selector`."""
    return page.locator(selector).evaluate_all(
        """(elements) => elements.filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
             .map((e) => { const b = e.getBoundingClientRect();
                           return {left: b.left, top: b.top, right: b.right, bottom: b.bottom, text: e.innerText.trim()}; })"""
    )


def off_screen(page, selector: str) -> list[dict]:
    """The boxes of `selector` not wholly on screen as the page is (not scrolled), with their distance out."""
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    found = boxes(page, selector)
    assert found, f"nothing visible matches {selector}"
    return [b for b in found if b["left"] < -1 or b["top"] < -1 or b["right"] > width + 1 or b["bottom"] > height + 1]


def overlapping(page, selectors) -> list[tuple[str, str]]:
    """Pairs of texts (by their words) whose boxes intersect."""
    found = [b for selector in selectors for b in boxes(page, selector)]
    return [
        (a["text"], b["text"])
        for i, a in enumerate(found)
        for b in found[i + 1 :]
        if min(a["right"], b["right"]) - max(a["left"], b["left"]) > 1 and min(a["bottom"], b["bottom"]) - max(a["top"], b["top"]) > 1
    ]


def start_trial(page, url: str, study: str) -> None:
    """From the study's link to its first (practice) trial, pictures on screen."""
    page.goto(f"{url}?study={study}")
    page.wait_for_selector("#survey-agree", state="visible")
    page.click("#survey-agree")
    page.wait_for_selector("#survey-begin", state="visible")
    page.click("#survey-begin")
    page.wait_for_selector("#survey-stimulus .stimulus img")
    page.evaluate("Promise.all(Array.from(document.querySelectorAll('.stimulus img')).map((i) => i.decode()))")


def check_trial_fits(page, *, pictures: int, shot: Path) -> None:
    """Every picture and both answers on screen, nothing scrolled; the answers side by side; no text over another."""
    page.screenshot(path=shot)
    assert page.evaluate("window.scrollY") == 0
    assert page.locator(".stimulus img").count() == pictures
    for selector in (".stimulus img", "#survey-choice-0", "#survey-choice-1"):
        assert off_screen(page, selector) == [], f"{selector} is not wholly on a {page.viewport_size} screen"
    (left,), (right,) = boxes(page, "#survey-choice-0"), boxes(page, "#survey-choice-1")
    assert left["right"] <= right["left"] and abs(left["top"] - right["top"]) < 2, "the answers are not side by side"
    if pictures == 2:
        first, second = boxes(page, ".stimulus img")
        assert first["right"] <= second["left"] and abs(first["top"] - second["top"]) < 2, "the pair is not side by side"
    assert overlapping(page, TRIAL_TEXTS) == []


@pytest.mark.parametrize("study, pictures", [("tiny-pair", 2), ("tiny-single", 1)], ids=["pair", "single"])
def test_on_a_phone_the_pictures_and_both_answers_fit_the_screen(study, pictures, browser, survey_server, shots):
    page = new_page(browser, width=PHONE[0], height=PHONE[1])
    start_trial(page, survey_server["url"], study)
    check_trial_fits(page, pictures=pictures, shot=shots / f"phone-{study}-trial.png")
    # hidden after the exposure: the note sits over the blank pictures, clear of the captions
    page.wait_for_selector(".stimulus.expired", state="attached", timeout=EXPOSURE_MS + 5_000)
    page.screenshot(path=shots / f"phone-{study}-hidden.png")
    assert boxes(page, ".stimulus-note") and overlapping(page, TRIAL_TEXTS) == []
    assert off_screen(page, "#survey-choice-1") == []
    page.context.close()


@pytest.mark.parametrize("study, pictures", [("tiny-pair", 2), ("tiny-single", 1)], ids=["pair", "single"])
def test_on_a_phone_the_trial_fits_under_the_whole_app_s_header_and_tabs(study, pictures, browser, full_server, shots):
    page = new_page(browser, width=PHONE[0], height=PHONE[1])
    start_trial(page, full_server["url"], study)
    check_trial_fits(page, pictures=pictures, shot=shots / f"phone-full-app-{study}-trial.png")
    page.context.close()


def test_a_pair_on_a_desktop_is_side_by_side_and_large(browser, survey_server, shots):
    page = new_page(browser, width=DESKTOP[0], height=DESKTOP[1])
    start_trial(page, survey_server["url"], "tiny-pair")
    check_trial_fits(page, pictures=2, shot=shots / "desktop-tiny-pair-trial.png")
    assert all(box["right"] - box["left"] >= 300 for box in boxes(page, ".stimulus img"))  # not shrunk on a large screen
    page.context.close()


def finish_a_participation(url: str) -> None:
    """One participant through the pair study over the page's API, so the admin view has answers."""
    from gradio_client import Client

    visitor = Client(url, verbose=False)
    saved, screen, _ = visitor.predict("tiny-pair", {}, api_name="/survey_consent")
    while screen["screen"] != "done":
        if screen["screen"] in ("instructions", "feedback"):
            saved, screen, _ = visitor.predict("tiny-pair", saved, api_name="/survey_next")
        else:
            saved, screen, _ = visitor.predict("tiny-pair", saved, screen, screen["choices"][0], api_name="/survey_answer")


def on_top(page, selector: str) -> bool:
    """Whether the middle of `selector` is what the screen shows there (not clipped away, not covered)."""
    return page.locator(selector).first.evaluate(
        """(element) => { const b = element.getBoundingClientRect(); if (!b.width || !b.height) return false;
             const top = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
             return !!top && element.contains(top); }"""
    )


@pytest.mark.parametrize("width, height", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_admin_view_fits_and_shows_progress_while_it_loads(width, height, browser, survey_server, shots):
    if Store(survey_server["db_url"]).study_status("tiny-pair")["participants_finished"] < 2:
        for _ in range(2):
            finish_a_participation(survey_server["url"])
    page = new_page(browser, width=width, height=height)
    page.goto(survey_server["url"] + "admin")
    page.locator("#admin-study input").click()
    page.get_by_role("option", name="tiny-pair", exact=True).click()
    # A slow answer (a wrong password is answered after a second): progress shows where the status will be.
    page.locator("#admin-password input").fill("not the password")
    page.click("#admin-show")
    page.wait_for_selector("#admin-status .progress-text", state="attached", timeout=5_000)
    page.wait_for_timeout(200)
    page.screenshot(path=shots / f"admin-loading-{width}px.png")
    assert on_top(page, "#admin-status .progress-text"), "no progress is on screen while the admin view loads"
    page.wait_for_selector(".toast-body", state="visible")

    page.locator("#admin-password input").fill(PASSWORD)
    page.click("#admin-show")
    page.wait_for_selector("#admin-table", state="visible")
    page.wait_for_selector("#admin-plot img", state="visible")
    page.evaluate("document.querySelector('#admin-plot img').decode()")
    page.screenshot(path=shots / f"admin-{width}px.png", full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1
    table = page.locator("#admin-table table").first
    assert table.evaluate("(t) => t.getBoundingClientRect().right") <= width + 1
    scrolled = page.locator("#admin-table").evaluate(
        "(block) => Array.from(block.querySelectorAll('*')).filter((e) => e.scrollWidth > e.clientWidth + 1 && e.clientWidth)"
        ".map((e) => e.className)"
    )
    assert scrolled == [], f"the summary table scrolls sideways at {width} px: {scrolled}"
    assert all(method in page.locator("#admin-table").inner_text() for method in MAKERS)
    plot, image = boxes(page, "#admin-plot")[0], boxes(page, "#admin-plot img")[0]
    assert plot["left"] - 1 <= image["left"] and image["right"] <= plot["right"] + 1 and image["right"] <= width + 1
    # the plot's label would cover the figure's own title
    assert overlapping(page, ["#admin-plot [data-testid=block-label]", "#admin-plot img"]) == []
    page.context.close()
