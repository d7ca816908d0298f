"""The ui package's own pieces, without a server: settings, field values, the stimulus HTML, the scratch folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from gradio.data_classes import ImageData

from ui.colorize_tabs import hints_value, render_size_value, seed_value
from ui.components import PhotoInput, static_text
from ui.files import Scratch, stem
from ui.settings import Settings
from ui.survey_tab import client_key, stimulus_html


def test_settings_use_the_packaged_weights_unless_told_otherwise(tmp_path):
    assert Settings.from_args([], environ={}).shipped_model is None
    assert Settings.from_args([], environ={"COLORIZE_SHIPPED_MODEL": str(tmp_path)}).shipped_model == tmp_path
    assert Settings.from_args(["--shipped-model", "x"], environ={}).shipped_model == Path("x")


def test_settings_on_spaces_listen_everywhere_and_build_the_demo():
    on_spaces = Settings.from_args([], environ={"SPACE_ID": "someone/colorize"})
    assert on_spaces.host == "0.0.0.0" and on_spaces.create_demo and on_spaces.trusted_proxies == ("10.0.0.0/8",)
    local = Settings.from_args([], environ={})
    assert local.host == "127.0.0.1" and not local.create_demo and local.port == 7860 and local.trusted_proxies == ()
    assert (local.mode, local.max_starts_per_client) == ("full", 30)


def test_survey_mode_from_a_flag_or_the_environment_and_no_demo_study_to_build():
    assert Settings.from_args(["--mode", "survey"], environ={}).mode == "survey"
    study_space = Settings.from_args([], environ={"SPACE_ID": "lab/study", "COLORIZE_MODE": "survey"})
    assert study_space.mode == "survey" and not study_space.create_demo  # the demo study needs the colorizer
    assert Settings.from_args(["--max-starts-per-client", "0"], environ={}).max_starts_per_client is None
    assert Settings.from_args([], environ={"SURVEY_MAX_STARTS_PER_CLIENT": "200"}).max_starts_per_client == 200
    assert Settings.from_args([], environ={"COLORIZE_TRUSTED_PROXIES": "127.0.0.1, 10.1.0.0/16"}).trusted_proxies == ("127.0.0.1", "10.1.0.0/16")
    assert Settings.from_args(["--trusted-proxies", ""], environ={"SPACE_ID": "a/b"}).trusted_proxies == ()


@pytest.mark.parametrize("argv, environ", [(["--mode", "study"], {}), ([], {"COLORIZE_MODE": "studyy"}), (["--max-starts-per-client", "-1"], {}),
                                           (["--trusted-proxies", "my-proxy"], {}), ([], {"COLORIZE_TRUSTED_PROXIES": "10.0.0.0/33"})])
def test_a_bad_setting_stops_with_a_usage_line(argv, environ, capsys):
    with pytest.raises(SystemExit):
        Settings.from_args(argv, environ=environ)
    assert "error:" in capsys.readouterr().err


def test_the_client_is_the_address_the_server_resolved_never_a_header():
    import gradio as gr

    # The server (uvicorn) puts the forwarded address in `client` for trusted proxies only (tests/test_app_survey.py).
    request = gr.Request(headers={"x-forwarded-for": "203.0.113.7, 10.0.0.2"}, client={"host": "10.0.0.1"})
    assert client_key(request) == "10.0.0.1"  # a header a visitor sets is not believed here
    assert client_key(None) is None


@pytest.mark.parametrize("given, expected", [("", None), (None, None), ("  ", None), ("7", 7), (7, 7), (6.0, 6), (" -3 ", -3)])
def test_an_empty_seed_is_no_seed(given, expected):
    assert seed_value(given) == expected


@pytest.mark.parametrize("given", ["seven", "1.5", "nan"])
def test_a_seed_that_is_not_a_whole_number_is_one_sentence(given):
    import gradio as gr

    with pytest.raises(gr.Error) as caught:
        seed_value(given)
    assert caught.value.message == f"'{given}' is not a seed; a seed is a whole number such as 7, or empty for the model's steady colours."


def test_a_long_input_is_quoted_as_an_excerpt():
    import gradio as gr

    with pytest.raises(gr.Error) as caught:
        seed_value("9" * 40 + "x" * 1_000_000)
    assert len(caught.value.message) < 200 and "(1,000,040 characters)" in caught.value.message


def test_the_hints_argument_is_json_or_empty_and_a_bad_one_is_one_sentence():
    import gradio as gr

    from colorize.hints import Hint

    assert hints_value(None) is None and hints_value("  ") is None
    assert hints_value('[{"x": 3, "y": 4, "color": "#FF0000"}]') == [Hint(3, 4, "#ff0000")]
    assert hints_value('{"image_size": [8, 8], "hints": [{"x": 1, "y": 2, "color": "#00ff00", "radius": 3}]}') == [Hint(1, 2, "#00ff00", 3)]
    for text, words in (("[{x: 1}]", "The hints argument is not valid JSON"), ('{"x": 1}', "The hints argument must hold a list of hints")):
        with pytest.raises(gr.Error) as caught:
            hints_value(text)
        assert caught.value.message.startswith(words)


def test_an_empty_render_size_is_the_models_own():
    assert [render_size_value(value) for value in (None, "", 0, 320.0)] == [None, None, None, 320]


def test_stimulus_html_carries_the_images_inline_and_nothing_else():
    html = stimulus_html((b"\x89PNG-left", b"\x89PNG-right"), exposure_ms=400, mode="pair")
    assert html.count("data:image/png;base64,") == 2 and 'data-exposure="400"' in html
    assert "Left" in html and "Right" in html and "file=" not in html
    single = stimulus_html((b"\x89PNG",), exposure_ms=None, mode="single")
    assert 'data-exposure="0"' in single and "The photo is hidden now" in single
    assert stimulus_html((), exposure_ms=400, mode="pair") == ""
    assert stimulus_html((b"x",), exposure_ms=1, mode="single") != stimulus_html((b"x",), exposure_ms=1, mode="single")  # a new trial redraws
    memory = stimulus_html((), exposure_ms=400, mode="pair", notice="Answer from <memory>.")
    assert "data:image" not in memory and "Answer from &lt;memory&gt;." in memory and "from-memory" in memory


def test_photo_input_hands_over_the_uploaded_file_unopened(tmp_path):
    not_a_picture = tmp_path / "notes.png"
    not_a_picture.write_text("hello")  # Gradio's own preprocessing would fail on this with its own words
    component = PhotoInput(type="filepath", image_mode=None, format="png")
    assert component.preprocess(ImageData(path=str(not_a_picture), orig_name="notes.png")) == str(not_a_picture)
    assert component.preprocess(None) is None


def test_scratch_folders_are_private_swept_when_old_and_removed_at_the_end():
    scratch = Scratch(max_age_s=60)
    try:
        old, new = scratch.folder(), scratch.folder()
        assert old != new and old.parent == new.parent == scratch.root
        os.utime(old, (time.time() - 120, time.time() - 120))
        scratch.folder()
        assert not old.exists() and new.exists()
    finally:
        scratch.remove()
    assert not scratch.root.exists()


def test_stem_keeps_names_safe():
    assert stem("/x/My photo (1).JPG") == "My-photo--1" and stem(None) == "image" and stem("../..") == "image"


def test_static_files_are_there():
    assert "#warning-banner" in static_text("app.css")
    assert "scrollIntoView" in static_text("reveal.js") and "expired" in static_text("stimulus.js")
    assert "createObjectURL" in static_text("download.js")


def test_request_bodies_are_counted_as_they_arrive_and_refused_past_their_limit():
    import asyncio

    from ui.limits import RequestLimits

    async def echo_length(scope, receive, send):  # an app that reads the whole body, as Gradio does
        size, more = 0, True
        while more:
            message = await receive()
            size, more = size + len(message.get("body", b"")), message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    def request(path: str, chunks: list[bytes], headers=()) -> tuple[int, bytes, int]:
        sent, pending = [], list(chunks)
        read = 0

        async def receive():
            nonlocal read
            chunk = pending.pop(0)
            read += 1
            return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

        async def send(message):
            sent.append(message)

        limits = RequestLimits(echo_length, max_body_bytes=1000, max_upload_bytes=0)
        asyncio.run(limits({"type": "http", "path": path, "headers": list(headers)}, receive, send))
        return sent[0]["status"], sent[1]["body"], read

    assert request("/gradio_api/run/survey_open", [b"x" * 400, b"x" * 400]) == (200, b"800", 2)
    status, body, read = request("/gradio_api/run/survey_open", [b"x" * 600] * 100)  # chunked, no length given
    assert (status, body) == (413, b"The request is too large.") and read == 2  # stopped at the chunk that passed 1000
    status, _, read = request("/gradio_api/run/survey_open", [b"x"], headers=[(b"content-length", b"157286400")])
    assert status == 413 and read == 0  # refused from its headers
    assert request("/gradio_api/upload", [b"x"]) == (403, b"Uploads are off here.", 0)
