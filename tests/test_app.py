"""The app as a user and an API client meet it: `python app.py` on a free port, driven by gradio_client.

One server for the module (start-up time measured on the way), a tiny saved checkpoint in a
temporary models folder, a study built into a temporary SQLite file. No mocks.
"""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from browser import build_tiny_studies, gray_photo, post_event, running_app, save_tiny_checkpoint
from colorize.pixels import mean_chroma
from survey.store import Store



pytestmark = pytest.mark.slow  # each test starts, or talks to, a real `python app.py`

ADMIN_PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("app")
    models = workdir / "models"
    save_tiny_checkpoint(models / "tiny")
    db_url = f"sqlite:///{workdir / 'survey.sqlite'}"
    build_tiny_studies(Store(db_url))
    # an empty 'shipped' folder: the app must still start, on the untrained model, and say so.
    no_weights = workdir / "no-weights"
    no_weights.mkdir()
    env = {"SURVEY_ADMIN_PASSWORD": ADMIN_PASSWORD, "COLORIZE_SHIPPED_MODEL": str(no_weights)}
    load_before = os.getloadavg()[0]
    # The tests act as a proxy on this machine that names other visitors in X-Forwarded-For.
    with running_app(models_dir=models, db_url=db_url, workdir=workdir, env=env, args=("--trusted-proxies", "127.0.0.1")) as running:
        url, started = running.url, running.started_s
        launched = time.monotonic() - started
        client = Client(url, verbose=False)
        photo = workdir / "first.png"
        gray_photo().save(photo)
        client.predict(handle_file(str(photo)), api_name="/colorize")  # the first real request
        first_result = time.monotonic() - launched
        load = max(load_before, os.getloadavg()[0])
        yield {
            "url": url, "client": client, "started_s": started, "first_result_s": first_result,
            "load": load, "workdir": workdir, "db_url": db_url, "log": running.log,
        }  # fmt: skip


def colorize(client: Client, path: Path, **options) -> Image.Image:
    result = client.predict(handle_file(str(path)), model=options.pop("model", "tiny"), api_name="/colorize", **options)
    return Image.open(result)


def test_starts_serves_the_page_then_colorizes(app):
    """`python app.py` serves its page, then a first colorized photo. How fast is a benchmark's
    job (scripts/bench_app_startup.py, target 15 s on 2 cores), not a timed test's."""
    print(f"\nafter launch: page {app['started_s']:.1f} s, first colorized photo {app['first_result_s']:.1f} s")
    assert 0 < app["started_s"] < app["first_result_s"]


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
    assert message.endswith(".") and ". " not in message  # one sentence
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


def test_page_warns_about_missing_weights(app):
    with urllib.request.urlopen(app["url"] + "config", timeout=10) as response:
        config = json.loads(response.read())
    assert "No trained weights found: showing an untrained model" in json.dumps(config)


# -- the survey, through the app's API ------------------------------------------------------------

FORBIDDEN_KEYS = {"method", "is_real", "real_side", "image_key", "correct_choice", "stimulus_id"}


def survey(client: Client, endpoint: str, *args):
    """One survey call: returns (saved tokens, screen); checks the screen gives nothing away."""
    saved, screen, html = client.predict(*args, api_name=f"/survey_{endpoint}")
    assert not FORBIDDEN_KEYS & set(screen), screen
    assert "gray" not in json.dumps(screen) and "gray" not in (html or "")  # the fake method's name
    assert "/file=" not in (html or "")  # images inline, no file URL to compare between trials
    return saved, screen, html


def test_survey_flow_consent_practice_test_resume_and_finish(app):
    client, store = app["client"], Store(app["db_url"])
    _, screen, _ = survey(client, "open", "tiny-pair", {})
    assert screen["screen"] == "consent" and "study about how people see colour photos" in screen["text"]
    assert store.study_status("tiny-pair")["participants_started"] == 0  # nobody is registered before they agree

    saved, screen, _ = survey(client, "consent", "tiny-pair", {})
    assert screen["screen"] == "instructions" and "practice" in screen["text"]
    token = saved["tiny-pair"]
    assert store.progress(token).consented

    saved, screen, html = survey(client, "next", "tiny-pair", saved)
    assert (screen["screen"], screen["progress"], screen["choices"]) == ("trial", "Practice 1 / 1", ["left", "right"])
    assert html.count("data:image/png;base64,") == 2 and 'data-exposure="400"' in html

    saved, screen, _ = survey(client, "answer", "tiny-pair", saved, screen, "left")
    assert screen["screen"] == "feedback"
    assert screen["feedback"].startswith(("Correct!", "Not quite.")) and "The real photo was on the" in screen["feedback"]

    saved, screen, _ = survey(client, "next", "tiny-pair", saved)
    assert screen["progress"] == "1 / 3"
    saved, screen, _ = survey(client, "answer", "tiny-pair", saved, screen, "Right")  # a button's label works too
    assert screen["progress"] == "2 / 3" and "feedback" not in screen  # no feedback in the test phase

    # A reload, or another tab: the same token resumes at the same trial.
    other = Client(app["url"], verbose=False)
    _, resumed, _ = survey(other, "open", "tiny-pair", saved)
    assert (resumed["trial_id"], resumed["progress"]) == (screen["trial_id"], "2 / 3")

    # A double click: two answers to the same trial at once store one response.
    jobs = [client.submit("tiny-pair", saved, screen, choice, api_name="/survey_answer") for choice in ("left", "right")]
    results = [job.result() for job in jobs]
    assert results[0][1]["progress"] == results[1][1]["progress"] == "3 / 3"
    frame = store.trials_frame("tiny-pair")
    mine = frame[frame["participant"] == frame.loc[frame["trial_id"] == screen["trial_id"], "participant"].iloc[0]]
    assert int(mine["answered"].sum()) == 3
    assert mine.loc[mine["trial_id"] == screen["trial_id"], "choice"].iloc[0] in ("left", "right")

    saved, screen, _ = survey(client, "answer", "tiny-pair", saved, results[0][1], "left")
    assert screen["screen"] == "done" and screen["score"].startswith("You picked the real photo in ")
    assert screen["score"].endswith(" of 3 test trials (" + screen["score"].split("(")[1])
    assert store.is_finished(token)

    # Finished: opening again shows the thank-you page; agreeing again does not start over.
    _, again, _ = survey(client, "open", "tiny-pair", saved)
    assert again["screen"] == "done"
    again_saved, again, _ = survey(client, "consent", "tiny-pair", saved)
    assert again["screen"] == "done" and again_saved["tiny-pair"] == token
    assert store.study_status("tiny-pair")["participants_started"] == 1
    assert int(store.trials_frame("tiny-pair")["answered"].sum()) == 4


def test_survey_single_mode_and_wrong_answers_are_refused(app):
    client = app["client"]
    saved, screen, _ = survey(client, "consent", "tiny-single", {})
    saved, screen, html = survey(client, "next", "tiny-single", saved)
    assert screen["choices"] == ["real", "fake"] and html.count("data:image/png;base64,") == 1
    with pytest.raises(AppError, match="'left' is not an answer here; choose real or fake."):
        client.predict("tiny-single", saved, screen, "left", api_name="/survey_answer")
    with pytest.raises(AppError, match="This participant code is unknown"):
        client.predict("tiny-single", {"tiny-single": "made-up"}, screen, "real", api_name="/survey_answer")
    with pytest.raises(AppError, match="That trial does not belong to this participant."):
        client.predict("tiny-single", saved, {**screen, "trial_id": 1}, "real", api_name="/survey_answer")


def take_part(client: Client, study: str, answers=("real", "fake")) -> dict:
    """One participant from consent to the thank-you page, answering in turn; returns the last screen."""
    saved, screen, _ = survey(client, "consent", study, {})
    saved, screen, _ = survey(client, "next", study, saved)
    turn = 0
    while screen["screen"] in ("trial", "feedback"):
        if screen["screen"] == "feedback":
            saved, screen, _ = survey(client, "next", study, saved)
            continue
        saved, screen, _ = survey(client, "answer", study, saved, screen, answers[turn % len(answers)])
        turn += 1
    return screen


def test_admin_needs_the_password_and_shows_status_balance_table_plot_and_csv(app):
    client = app["client"]
    assert take_part(Client(app["url"], verbose=False), "tiny-single")["score"].startswith("You were right in ")
    guesser = Client(app["url"], verbose=False, headers={"X-Forwarded-For": "203.0.113.66"})
    for endpoint in ("/survey_admin", "/survey_export"):
        with pytest.raises(AppError, match="That is not the admin password."):
            guesser.predict("guess", "tiny-single", api_name=endpoint)
    status, table, plot = client.predict(ADMIN_PASSWORD, "tiny-single", api_name="/survey_admin")
    assert "single mode" in status and "finished" in status
    assert "Method balance among the 1 who finished (test trials, catch trials aside): gray " in status
    assert table["headers"] == ["method", "gray", "real"]  # a column per method, and real photos (5fd96fb's layout)
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image/")
    drawn = np.asarray(Image.open(io.BytesIO(base64.b64decode(plot["plot"].split(",", 1)[1]))).convert("RGB"), dtype=int)
    red = (drawn[..., 0] > 170) & (drawn[..., 1] < 90) & (drawn[..., 2] < 90)
    assert drawn.shape[1] > 300 and red.sum() > 20  # the fake method's fooling rate, drawn as a red point
    # The export is the text of the authenticated answer, not a file a URL could fetch.
    exported = client.predict(ADMIN_PASSWORD, "tiny-single", api_name="/survey_export").splitlines()
    frame = Store(app["db_url"]).trials_frame("tiny-single")
    assert len(exported) == 1 + int(frame["answered"].sum()) >= 5
    assert "token" not in exported[0]
    assert {"phase", "used", "not_used_reason", "excluded_participant", "exclusion_reason"} <= set(exported[0].split(","))


def test_wrong_admin_passwords_wait_a_second_and_five_lock_that_address_out(app):
    guesser = Client(app["url"], verbose=False, headers={"X-Forwarded-For": "198.51.100.23"})
    for attempt in range(5):
        started = time.monotonic()
        with pytest.raises(AppError, match="^That is not the admin password.$"):
            guesser.predict(f"guess {attempt}", "tiny-single", api_name="/survey_admin")
        assert time.monotonic() - started >= 0.95  # no answer to a wrong guess before a second has passed
    with pytest.raises(AppError, match=r"^Too many wrong admin passwords from your connection; try again in 1 minute.$"):
        guesser.predict(ADMIN_PASSWORD, "tiny-single", api_name="/survey_admin")
    # Another address (here the test's own) is not locked out.
    status, _, _ = app["client"].predict(ADMIN_PASSWORD, "tiny-single", api_name="/survey_admin")
    assert status.startswith("Study 'tiny-single'")


def test_a_study_built_while_the_app_runs_is_joinable_from_the_api(app):
    from browser import colourful_photo
    from colorize.pixels import gray_image
    from survey.build import build_study
    from survey.study import Protocol

    protocol = Protocol(exposure_ms=400, practice_trials=0, test_trials=2, catch_rate=0.0, image_size=32)
    sources = [(f"late{i}", colourful_photo(10 + i, 48)) for i in range(3)]
    build_study(Store(app["db_url"]), name="built later", sources=sources, makers={"gray": gray_image}, protocol=protocol, progress=False)
    saved, screen, _ = survey(app["client"], "consent", "built later", {})
    assert screen["screen"] == "instructions" and "built later" in saved
    assert take_part(Client(app["url"], verbose=False), "built later", answers=("left",))["screen"] == "done"


def test_what_a_participant_sends_is_checked_and_only_an_excerpt_comes_back(app):
    client = app["client"]
    saved, screen, _ = survey(client, "consent", "tiny-single", {})
    saved, screen, _ = survey(client, "next", "tiny-single", saved)
    huge = "x" * 10_000_000
    with pytest.raises(AppError) as caught:
        client.predict("tiny-single", saved, screen, huge, api_name="/survey_answer")
    assert str(caught.value).startswith("'xxxx") and "(10,000,000 characters) is not an answer here" in str(caught.value)
    assert len(str(caught.value)) < 200
    with pytest.raises(AppError, match=r"^A trial id is a whole number, not '86.9'.$"):
        client.predict("tiny-single", saved, {**screen, "trial_id": 86.9}, "real", api_name="/survey_answer")
    with pytest.raises(AppError, match=r"^There is no study called 'nope.{10,}…' \(5,000 characters\).$"):
        client.predict("nope" * 1250, {}, api_name="/survey_consent")


def test_app_starts_without_its_database_and_says_so(tmp_path):
    import app as app_module

    demo = app_module.build_app(db_url="nosuchdb://x", models_dir=tmp_path, examples_dir=tmp_path / "examples")
    assert demo.store is None
    config = json.dumps(demo.get_config_file(), default=str)
    # participants read that the study is away; which database and why is the admin's to read (tests/test_app_survey.py)
    assert "The study is not available right now; please try again later." in config and "nosuchdb" not in config


def test_admin_is_off_without_a_password(tmp_path, monkeypatch):
    import app as app_module

    monkeypatch.delenv("SURVEY_ADMIN_PASSWORD", raising=False)
    demo = app_module.build_app(store=Store("sqlite://"), models_dir=tmp_path, examples_dir=tmp_path / "examples")
    config = demo.get_config_file()
    # said on the admin page (/admin) of the full app, for whoever runs it, not on the participants' page
    assert [page[0] for page in config["pages"]] == ["", "admin"]
    assert "set the `SURVEY_ADMIN_PASSWORD` environment variable" in page_text(config, "admin")
    assert "SURVEY_ADMIN_PASSWORD" not in page_text(config, "")
    assert not [d for d in config["dependencies"] if d.get("api_name") in ("survey_admin", "survey_export")]


def page_text(config: dict, page: str) -> str:
    """Everything the components of one page of the app carry (labels, texts, values), as JSON."""
    ids = set(config["page"][page]["components"])
    return json.dumps([c for c in config["components"] if c["id"] in ids], default=str)


SURVEY_MODE_CHECK = """
import json, sys
from survey.store import Store
import app
demo = app.build_app(store=Store("sqlite://"), mode="survey")
config = demo.get_config_file()
print(json.dumps({
    "torch": "torch" in sys.modules,
    "endpoints": sorted(d["api_name"] for d in config["dependencies"] if d.get("api_name") and d.get("api_visibility") != "private"),
    "pages": [page[0] for page in config["pages"]],
    "text": json.dumps(config, default=str),
}))
"""


@pytest.mark.parametrize("password", [None, "let me in"], ids=["no-password", "password"])
def test_survey_mode_serves_the_study_alone_without_the_colorizer(password, tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "SURVEY_ADMIN_PASSWORD"}
    if password:
        env["SURVEY_ADMIN_PASSWORD"] = password
    done = subprocess.run([sys.executable, "-c", SURVEY_MODE_CHECK], cwd=Path(__file__).resolve().parents[1], env=env,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert not seen["torch"]  # no colorizer: torch is not even imported
    study_endpoints = ["survey_answer", "survey_consent", "survey_next", "survey_open"]
    if password:
        assert seen["endpoints"] == sorted([*study_endpoints, "survey_admin", "survey_export"]) and seen["pages"] == ["", "admin"]
    else:
        assert seen["endpoints"] == study_endpoints and seen["pages"] == [""]  # no admin page at all
    assert "SURVEY_ADMIN_PASSWORD" not in seen["text"] and "Colorize" not in seen["text"]


def test_the_app_runs_one_torch_thread_per_core_it_may_use(app):
    from colorize.fastpath import recommended_threads

    log = app["log"].read_text()
    assert f"Colorizing with {recommended_threads()} torch threads" in log


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to give the process fewer")
def test_threads_follow_the_cpu_affinity_not_the_machine():
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "import torch; from colorize.fastpath import use_recommended_threads\n"
        "print(use_recommended_threads(), torch.get_num_threads(), os.cpu_count())\n"
    )
    threads, torch_threads, cpus = map(int, subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())
    assert threads == torch_threads == 1 < cpus


def _as_a_background_job() -> None:
    # what a non-interactive shell does to `app.py &`: SIGINT ignored, inherited by the app
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "stop, preexec",
    [(signal.SIGTERM, None), (signal.SIGINT, None), (signal.SIGINT, _as_a_background_job)],
    ids=["SIGTERM", "Ctrl-C", "SIGINT to a background job"],
)
def test_temporary_files_are_removed_when_the_app_stops(stop, preexec, tmp_path):
    save_tiny_checkpoint(tmp_path / "models" / "tiny")
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"TMPDIR": str(temporary), "GRADIO_TEMP_DIR": str(temporary / "gradio"), "COLORIZE_SHIPPED_MODEL": str(tmp_path / "models" / "tiny")}
    db_url = f"sqlite:///{tmp_path / 's.sqlite'}"
    with running_app(models_dir=tmp_path / "models", db_url=db_url, workdir=tmp_path, env=env, preexec_fn=preexec) as running:
        photo = tmp_path / "p.png"
        gray_photo().save(photo)
        Client(running.url, verbose=False).predict(handle_file(str(photo)), api_name="/colorize")
        (scratch,) = temporary.glob("colorize-app-*")
        assert any(path.suffix == ".png" for path in scratch.rglob("*"))
        running.process.send_signal(stop)
        try:
            code = running.process.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the app did not stop within 60 s of the signal:\n{running.log.read_text()[-3000:]}")
        assert code == 0, running.log.read_text()
    assert not list(temporary.glob("colorize-app-*"))


def test_the_app_gives_the_librarys_colours_for_the_same_photo_and_seed(app, tmp_path):
    """App, library (and through test_entry_points, the CLI and the survey's stimuli) agree pixel for pixel."""
    from colorize import Colorizer

    path = tmp_path / "p.png"
    gray_photo((120, 80)).save(path)
    library = Colorizer.from_pretrained(app["workdir"] / "models" / "tiny")
    for seed in (None, 4):
        served = np.asarray(colorize(app["client"], path, **({"seed": seed} if seed is not None else {})), dtype=np.int16)
        own = np.asarray(library.colorize(path, seed=seed), dtype=np.int16)
        assert np.array_equal(served, own), f"seed {seed}"


def test_participants_never_wait_behind_colorizing_nor_meet_a_full_queue(tmp_path):
    """The study's page events skip the queue: with colorizing filling a queue of 2, a participant
    is still served at once, while a queued call (an API client's) is turned away."""
    from gradio_client.client import Status

    save_tiny_checkpoint(tmp_path / "models" / "tiny")
    db_url = f"sqlite:///{tmp_path / 'survey.sqlite'}"
    build_tiny_studies(Store(db_url))
    env = {"COLORIZE_SHIPPED_MODEL": str(tmp_path / "models" / "tiny")}
    with running_app(models_dir=tmp_path / "models", db_url=db_url, workdir=tmp_path, env=env, args=("--queue-size", "2")) as running:
        client = Client(running.url, verbose=False)
        big = tmp_path / "big.png"
        gray_photo((3000, 3000)).save(big)
        jobs = [client.submit(handle_file(str(big)), api_name="/colorize") for _ in range(3)]  # one runs, two wait
        deadline = time.monotonic() + 120
        while [job.status().code for job in jobs].count(Status.IN_QUEUE) < 2:
            assert time.monotonic() < deadline and not all(job.done() for job in jobs), "colorizing never filled the queue"
            time.sleep(0.05)
        status, answer = post_event(running.url, "survey_consent", ["tiny-pair", {}], address="192.0.2.9")
        assert status == 200 and answer["data"][1]["screen"] == "instructions"  # served while colorizing waits
        with pytest.raises(Exception, match="Queue is full"):
            client.predict("tiny-pair", {}, api_name="/survey_consent")  # the queued way is full
        assert not all(job.done() for job in jobs)
        for job in jobs:
            job.result(timeout=300)
