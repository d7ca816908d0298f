"""`python app.py --mode survey`: the study alone, as a public study runs it, driven over its HTTP API.

One server for the module (a tiny study in a temporary SQLite file, an admin password, at most
3 starts per address); the simulated participants of scripts/bench_survey_load.py for the
crowd. No mocks.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from browser import post_event, running_app, running_study_app
from survey.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench_survey_load import Scenario, run_scenario  # noqa: E402

pytestmark = pytest.mark.slow  # a real `python app.py --mode survey`


@pytest.fixture(scope="module")
def study_app(tmp_path_factory):
    env = {"SURVEY_ADMIN_PASSWORD": "pw for the test"}
    # The tests act as a proxy on this machine that names other visitors in X-Forwarded-For.
    args = ("--max-starts-per-client", "3", "--trusted-proxies", "127.0.0.1")
    with running_study_app(tmp_path_factory.mktemp("survey-app"), env=env, args=args) as (running, db_url):
        yield {"url": running.url, "db_url": db_url, "log": running.log}


def client(app, address: str) -> Client:
    """An API client that the server takes for a visitor at `address` (X-Forwarded-For, believed from the trusted loopback)."""
    return Client(app["url"], verbose=False, headers={"X-Forwarded-For": address})


def test_there_is_no_colorize_api_and_no_colorizer(study_app):
    with urllib.request.urlopen(study_app["url"] + "config", timeout=10) as response:
        config = json.loads(response.read())
    names = {d.get("api_name") for d in config["dependencies"]}
    assert not names & {"colorize", "variations", "colorize_batch"} and "survey_answer" in names
    with pytest.raises(ValueError, match="colorize"):
        client(study_app, "192.0.2.1").predict("x.png", api_name="/colorize")
    log = study_app["log"].read_text()
    assert "Survey mode: the study alone, no colorizer" in log and "torch threads" not in log


def refused_status(url: str, body: dict) -> int:
    """The HTTP error status of a JSON POST the server refuses (fails when it is accepted)."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=10)
    return answer.value.code


def server_log(app) -> str:
    time.sleep(0.5)  # the log is written by the server process
    return app["log"].read_text()


def test_a_call_of_the_absent_colorize_api_is_one_log_line(study_app):
    """Scanners and old clients call /colorize on a survey-mode Space: a 404 and one line in the log, no traceback."""
    for route in ("call", "run"):
        assert refused_status(f"{study_app['url']}gradio_api/{route}/colorize", {"data": [None]}) == 404
    log = server_log(study_app)
    said = [line for line in log.splitlines() if "/colorize" in line]
    assert said == [f"WARNING app: No such endpoint: POST /gradio_api/{route}/colorize" for route in ("call", "run")]
    assert "Traceback" not in log


def test_a_crafted_queue_join_with_an_unknown_function_index_is_one_log_line(study_app):
    crafted = {"data": [], "fn_index": 9999, "session_hash": "crafted0"}
    assert refused_status(f"{study_app['url']}gradio_api/queue/join", crafted) == 404
    log = server_log(study_app)
    assert "WARNING app: No such endpoint: POST /gradio_api/queue/join (function index 9999)" in log
    assert "Traceback" not in log


def sent_images(html: str) -> list[bytes]:
    """The PNGs a screen's HTML carries inline."""
    return [base64.b64decode(data) for data in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)]


def test_only_each_trials_own_presentation_is_sent_also_with_the_practice_feedback(study_app):
    store = Store(study_app["db_url"])
    visitor = client(study_app, "192.0.2.5")
    saved, screen, _ = visitor.predict("tiny-pair", {}, api_name="/survey_consent")
    saved, trial, html = visitor.predict("tiny-pair", saved, api_name="/survey_next")
    shown = sent_images(html)
    assert len(shown) == 2 and tuple(shown) == store.trial_images(trial["trial_id"])
    truth = store.trial_truth(trial["trial_id"])
    stored = {store.stimulus_png("tiny-pair", truth.image_key, method) for method in ("real", truth.method)}
    assert not stored & set(shown)  # never a stored stimulus as it is
    _, feedback, html = visitor.predict("tiny-pair", saved, trial, "left", api_name="/survey_answer")
    assert feedback["screen"] == "feedback" and sent_images(html) == shown  # the same presentation again, after the answer


def test_a_reload_after_the_exposure_sends_no_images_and_is_recorded(study_app):
    visitor = client(study_app, "192.0.2.2")
    saved, screen, _ = visitor.predict("tiny-pair", {}, api_name="/survey_consent")
    saved, screen, html = visitor.predict("tiny-pair", saved, api_name="/survey_next")
    saved, screen, html = visitor.predict("tiny-pair", saved, screen, "left", api_name="/survey_answer")  # practice
    saved, screen, html = visitor.predict("tiny-pair", saved, api_name="/survey_next")
    assert screen["progress"] == "1 / 3" and len(sent_images(html)) == 2
    time.sleep(0.6)  # the study's exposure is 400 ms: then the page is reloaded
    _, again, html = visitor.predict("tiny-pair", saved, api_name="/survey_open")
    assert again["trial_id"] == screen["trial_id"] and "data:image" not in html
    assert again["notice"] == "These photos were already shown and are not shown again: please answer from memory."
    _, after, _ = visitor.predict("tiny-pair", saved, again, "right", api_name="/survey_answer")
    assert after["progress"] == "2 / 3"
    frame = Store(study_app["db_url"]).trials_frame("tiny-pair").set_index("trial_id")
    assert bool(frame.loc[screen["trial_id"], "reshown"]) and int(frame["reshown"].sum()) == 1


def test_an_address_may_start_three_participants_here_and_then_waits(study_app):
    crowd = client(study_app, "192.0.2.3")
    for _ in range(3):
        _, screen, _ = crowd.predict("tiny-single", {}, api_name="/survey_consent")  # no token: a new participant each time
        assert screen["screen"] == "instructions"
    with pytest.raises(AppError, match=r"^This study was started too many times from your connection in the last 10 minutes; please try again later.$"):
        crowd.predict("tiny-single", {}, api_name="/survey_consent")
    _, screen, _ = client(study_app, "192.0.2.4").predict("tiny-single", {}, api_name="/survey_consent")
    assert screen["screen"] == "instructions"
    # The page's own way in (no queue: a plain POST per click) counts the same.
    answers = [post_event(study_app["url"], "survey_consent", ["tiny-pair", {}], address="192.0.2.6") for _ in range(4)]
    assert [status for status, _ in answers] == [200, 200, 200, 500]
    assert "started too many times from your connection" in answers[-1][1]["error"]


def test_two_hundred_participants_arriving_within_seconds_are_all_admitted_and_finish(study_app):
    store = Store(study_app["db_url"])
    before = store.study_status("tiny-pair")["participants_finished"]
    crowd = Scenario("test", participants=200, arrival_s=3.0, think_s=0.1, time_limit_s=400)
    outcome, _ = asyncio.run(run_scenario(study_app["url"], crowd, study="tiny-pair"))
    assert outcome.errors == []
    assert outcome.admitted == outcome.finished == 200 and len(outcome.answer_s) == 200 * 4
    status = store.study_status("tiny-pair")
    assert status["participants_finished"] == before + 200
    balance = [counts["finished_trials"] for method, counts in status["per_method"].items() if method == "gray"]
    assert balance and balance[0] >= 600  # every finisher's three test trials, all of the study's one method


# -- issue 27: addresses, secrets and sizes -------------------------------------------------------------


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(tmp_path):
    """From loopback, without --trusted-proxies, rotating X-Forwarded-For no longer gets past the start limit."""
    with running_study_app(tmp_path, args=("--max-starts-per-client", "3")) as (running, _):
        answers = [post_event(running.url, "survey_consent", ["tiny-pair", {}], address=f"192.0.2.{n}") for n in range(4)]
    assert [status for status, _ in answers] == [200, 200, 200, 500]
    assert "started too many times from your connection" in answers[-1][1]["error"]


def test_an_unreachable_database_shows_no_secret_and_leaves_the_app_up(tmp_path):
    env = {"SURVEY_ADMIN_PASSWORD": "pw", "SURVEY_DB_URL": "postgresql://ann:s3cret@127.0.0.1:9/survey"}
    with running_app(models_dir=tmp_path / "none", db_url="", workdir=tmp_path, env=env, args=("--mode", "survey")) as running:
        with urllib.request.urlopen(running.url + "config", timeout=10) as response:
            config = response.read().decode()
        status, opened = post_event(running.url, "survey_open", ["tiny-pair", {}], address="192.0.2.1")
        admin = Client(running.url, verbose=False)
        with pytest.raises(AppError) as problem:
            admin.predict("pw", "tiny-pair", api_name="/survey_admin")
        log = running.log.read_text()
    assert "s3cret" not in config and "s3cret" not in json.dumps(opened) and "s3cret" not in log
    assert status == 200 and opened["data"][1] == {"screen": "closed", "message": "The study is not available right now; please try again later."}
    # The admin, after the password, reads which database, why, and what to fix.
    assert "postgresql://ann:***@127.0.0.1:9/survey cannot be opened" in str(problem.value) and "check SURVEY_DB_URL" in str(problem.value)


def test_no_uploads_in_survey_mode_bodies_refused_before_parsing_and_nothing_echoed(study_app):
    import http.client
    from urllib.parse import urlparse

    boundary = "x" * 16
    upload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.txt\"\r\n\r\nhello\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(study_app["url"] + "gradio_api/upload", data=upload,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403 and refused.value.read() == b"Uploads are off here."

    # A 150 MB body is refused from its headers, before a byte of it is read.
    where = urlparse(study_app["url"])
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    started = time.monotonic()
    connection.putrequest("POST", "/gradio_api/run/survey_open")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(150 * 2**20))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and response.read() == b"The request is too large." and time.monotonic() - started < 2
    connection.close()

    # Junk in the browser's tokens is dropped, not sent back.
    junk = {"j" * 30_000: "x", "tiny-pair": "not a token!", "other": ["a"]}
    status, answer = post_event(study_app["url"], "survey_open", ["tiny-pair", junk], address="192.0.2.77")
    assert status == 200 and answer["data"][0] == {} and "jjjj" not in json.dumps(answer)
