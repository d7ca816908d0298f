"""The "Real or fake?" tab: the participant screens of `survey.participant`, shown in Gradio, and the admin view.

Every handler is one call into `survey.participant.ParticipantFlow` (or `survey.admin`). What
reaches the browser is the screen's public part (what to show, with opaque trial ids) and the
images as inline PNG data, never which image is real or which method made a fake. The
participant's tokens live in the browser (gr.BrowserState), one per study, so a reload resumes.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any, Callable

import gradio as gr

from survey import SurveyError
from survey.admin import dashboard, export_answers
from survey.participant import IN_STUDY, NO_STUDY, SCREENS, ParticipantFlow, Screen
from survey.settings import admin_password, check_admin

from .components import static_text, user_error
from .files import Scratch, stem

# The screens' boxes, in the order `render` shows them; feedback shares the trial's box.
BOXES = ("closed", "consent", "instructions", "trial", "done")


def stimulus_html(images: tuple[bytes, ...], *, exposure_ms: int | None, mode: str) -> str:
    """The images of one trial inline as PNG data (no file name, no URL to compare), hidden after exposure_ms."""
    if not images:
        return ""
    captions = ("Left", "Right") if mode == "pair" and len(images) == 2 else ("",) * len(images)
    figures = "".join(
        f'<figure><img alt="{caption or "Photo"}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{caption}</figcaption></figure>"
        for png, caption in zip(images, captions)
    )
    note = "The photos are hidden now: answer below." if len(images) > 1 else "The photo is hidden now: answer below."
    return (
        f'<div class="stimulus" data-exposure="{int(exposure_ms or 0)}" data-nonce="{secrets.token_hex(4)}">{figures}'
        f'<p class="stimulus-note">{note}</p></div>'
    )


def shown_html(screen: Screen) -> str:
    """A trial's images with its exposure; with the practice feedback, shown again without a time limit."""
    exposure = screen.exposure_ms if screen.kind == "trial" else None
    return stimulus_html(screen.images, exposure_ms=exposure, mode=screen.mode)


class SurveyTab:
    """Event handlers (also the API endpoints /survey_open, /survey_consent, /survey_next, /survey_answer, /survey_admin) and layout."""

    def __init__(self, flow: ParticipantFlow, *, scratch: Scratch) -> None:
        self.flow = flow
        self.scratch = scratch

    # -- handlers: each answers (the browser's tokens, public screen, stimulus HTML, images kept server side) ----

    @staticmethod
    def _answer(step, tokens: Any) -> tuple[Any, dict, str, tuple]:
        tokens = tokens if step.tokens is None else step.tokens
        return tokens, step.screen.public(), shown_html(step.screen), (step.screen.images, step.screen.mode)

    def _call(self, method: Callable, study: str | None, tokens: Any, *args, **kwargs) -> tuple[Any, dict, str, tuple]:
        try:
            return self._answer(method(study, tokens, *args, **kwargs), tokens)
        except SurveyError as error:
            raise user_error(error) from None

    def open(self, study: str | None, tokens: Any) -> tuple[Any, dict, str, tuple]:
        """Where this browser stands in `study` (on page load, and when another study is picked)."""
        return self._answer(self.flow.open(study, tokens), tokens)

    def consent(self, study: str | None, tokens: Any) -> tuple[Any, dict, str, tuple]:
        """The participant agrees: registered and shown the instructions."""
        return self._call(self.flow.consent, study, tokens)

    def proceed(self, study: str | None, tokens: Any) -> tuple[Any, dict, str, tuple]:
        """The participant's current trial (after the instructions, or after practice feedback)."""
        return self._call(self.flow.proceed, study, tokens)

    def answer(self, study: str | None, tokens: Any, screen: dict | None, choice: str, shown: tuple = ()) -> tuple[Any, dict, str, tuple]:
        """Store the answer to the trial on screen (the first answer wins); practice gets feedback."""
        images = tuple(shown[0]) if shown else ()
        return self._call(self.flow.answer, study, tokens, screen, choice, shown=images)

    def answer_api(self, study: str, tokens: dict, screen: dict, choice: str) -> tuple[dict, dict, str]:
        """Answer the trial on `screen` with `choice` ("left" | "right" in pair mode, "real" | "fake" in
        single mode); returns the saved tokens, the next screen and its images as HTML."""
        saved, next_screen, html, _ = self._call(self.flow.answer, study, tokens, screen, choice)
        return saved, next_screen, html

    def admin(self, password: str, study: str | None):
        """Status, summary table, main plot and a CSV export of `study`, for the admin password only;
        last (for the page, not the API) whether there are a table and a plot to show."""
        if not check_admin(password):
            raise user_error("That is not the admin password.")
        if self.flow.store is None or not study:
            raise user_error(self.flow.unavailable or NO_STUDY)
        try:
            board = dashboard(self.flow.store, study)
            export = self.scratch.folder() / f"{stem(study)}-responses.csv"
            export_answers(self.flow.store, study, export)  # with the report's quality-control decision on every answer
        except SurveyError as error:
            raise user_error(error) from None
        return board.status, board.table, board.figure, str(export), (board.table is not None, board.figure is not None)

    # -- layout -------------------------------------------------------------------------------------

    def build(self, demo: gr.Blocks, tabs: gr.Tabs | None, tokens: gr.BrowserState) -> None:
        """The tab's layout and events; `tabs`, when the page has others, is switched to this one for a
        participant mid-study or arriving by a study link (?study=NAME)."""
        flow = self.flow
        names = flow.studies()
        screen = gr.JSON(visible=False)
        shown = gr.State(())
        study = gr.Dropdown(
            choices=names, value=flow.default_study(), label="Study", visible=len(names) > 1, elem_id="survey-study"
        )
        with gr.Column(visible=True, elem_id="survey-closed") as closed_box:
            closed_text = gr.Markdown(flow.closed().message)
        with gr.Column(visible=False, elem_id="survey-consent") as consent_box:
            gr.Markdown("## Real or fake?\nCan you tell real colour photos from ones coloured by a computer?")
            consent_text = gr.Markdown(elem_id="survey-consent-text")
            agree = gr.Button("I agree, take part", variant="primary", elem_id="survey-agree")
        with gr.Column(visible=False, elem_id="survey-instructions") as instructions_box:
            gr.Markdown("## How it works")
            instructions_text = gr.Markdown(elem_id="survey-instructions-text")
            begin = gr.Button("Start", variant="primary", elem_id="survey-begin")
        with gr.Column(visible=False, elem_id="survey-trial") as trial_box:
            progress = gr.Markdown(elem_id="survey-progress")
            stimulus = gr.HTML(elem_id="survey-stimulus", js_on_load=static_text("stimulus.js"))
            prompt = gr.Markdown(elem_id="survey-prompt")
            with gr.Row(visible=True) as answer_row:
                first = gr.Button("Left", variant="secondary", elem_id="survey-choice-0", size="lg")
                second = gr.Button("Right", variant="secondary", elem_id="survey-choice-1", size="lg")
            with gr.Column(visible=False) as feedback_box:
                feedback = gr.Markdown(elem_id="survey-feedback")
                next_button = gr.Button("Next", variant="primary", elem_id="survey-next")
        with gr.Column(visible=False, elem_id="survey-done") as done_box:
            gr.Markdown("## Thank you!\nYour answers are saved.")
            score = gr.Markdown(elem_id="survey-score")

        boxes = [closed_box, consent_box, instructions_box, trial_box, done_box]
        texts = [closed_text, consent_text, instructions_text, progress, prompt, first, second, answer_row, feedback_box, feedback, score]

        def render(public: dict | None):
            """The boxes and texts of the screen in `public` (what the browser holds)."""
            public = public if isinstance(public, dict) and public.get("screen") in SCREENS else flow.closed().public()
            kind = public["screen"]
            visible = BOXES.index("trial" if kind == "feedback" else kind)
            choices = public.get("choices") or ["left", "right"]
            return [
                *(gr.Column(visible=i == visible) for i in range(len(boxes))),
                public.get("message", ""),
                public.get("text", "") if kind == "consent" else "",
                public.get("text", "") if kind == "instructions" else "",
                f"**{public.get('progress', '')}**",
                f"### {public.get('prompt', '')}",
                gr.Button(choices[0].capitalize()),
                gr.Button(choices[1].capitalize()),
                gr.Row(visible=kind == "trial"),
                gr.Column(visible=kind == "feedback"),
                f"### {public.get('feedback', '')}" if kind == "feedback" else "",
                public.get("score", ""),
            ]

        def pick_study(saved: Any, request: gr.Request):
            """The study named in the link (?study=NAME), else one this browser is part-way through, else the default."""
            wanted = request.query_params.get("study") if request else None
            return gr.Dropdown(choices=flow.studies(), value=flow.pick_study(wanted, saved), visible=len(flow.studies()) > 1)

        def show_tab(public: dict | None, request: gr.Request):
            """Open this tab for a participant who is mid-study or came by a study link."""
            linked = bool(request and request.query_params.get("study"))
            busy = isinstance(public, dict) and public.get("screen") in IN_STUDY
            return gr.Tabs(selected="survey") if linked or busy else gr.skip()

        outputs = [tokens, screen, stimulus, shown]
        common = dict(outputs=outputs, concurrency_id="survey", concurrency_limit=8)
        then = dict(fn=render, inputs=[screen], outputs=[*boxes, *texts], api_visibility="private", queue=False)

        study.change(self.open, [study, tokens], api_name="survey_open", **common).then(**then)
        # On every page load: the list of studies, then where this browser stands (resume).
        shown_screen = demo.load(pick_study, [tokens], [study], api_visibility="private", queue=False).then(
            self.open, [study, tokens], api_visibility="private", **common
        ).then(**then)
        if tabs is not None:
            shown_screen.then(show_tab, [screen], [tabs], api_visibility="private", queue=False)
        agree.click(self.consent, [study, tokens], api_name="survey_consent", **common).success(**then)
        begin.click(self.proceed, [study, tokens], api_name="survey_next", **common).success(**then)
        next_button.click(self.proceed, [study, tokens], api_visibility="private", **common).success(**then)
        for index, button in enumerate((first, second)):

            def answer_by_button(study_name, saved, public, images, index=index):
                choices = public.get("choices") if isinstance(public, dict) else None
                return self.answer(study_name, saved, public, choices[index] if choices else "", images)

            button.click(answer_by_button, [study, tokens, screen, shown], api_visibility="private", **common).success(**then)
        gr.api(self.answer_api, api_name="survey_answer", concurrency_id="survey", concurrency_limit=8)
        self._build_admin(names)

    def _build_admin(self, names: list[str]) -> None:
        with gr.Accordion("Study admin", open=False, elem_id="survey-admin"):
            if admin_password() is None:
                gr.Markdown("The admin view is off: set the `SURVEY_ADMIN_PASSWORD` environment variable to turn it on.")
                return
            with gr.Row():
                password = gr.Textbox(type="password", label="Admin password", elem_id="admin-password", scale=3)
                study = gr.Dropdown(choices=names, value=self.flow.default_study(), label="Study", scale=2, elem_id="admin-study")
                show = gr.Button("Show", elem_id="admin-show", scale=1)
            status = gr.Markdown(elem_id="admin-status")
            table = gr.Dataframe(label="Summary", interactive=False, visible=False, elem_id="admin-table")
            plot = gr.Plot(label="Fooling rate", visible=False, elem_id="admin-plot")
            export = gr.DownloadButton("Download responses (CSV)", visible=False, elem_id="admin-export")
            timer = gr.Timer(15, active=False)
            shown = gr.State((False, False))
            outputs = [status, table, plot, export, shown]

            def reveal(shown: tuple[bool, bool]):
                """No empty table headed "1 2 3", no empty plot: each shows once there is something in it."""
                return gr.Dataframe(visible=shown[0]), gr.Plot(visible=shown[1]), gr.DownloadButton(visible=True), gr.Timer(active=True)

            private = dict(api_visibility="private", queue=False)
            show.click(self.admin, [password, study], outputs, api_name="survey_admin", api_visibility="undocumented").success(
                reveal, [shown], [table, plot, export, timer], **private
            )
            timer.tick(self.admin, [password, study], outputs, api_visibility="private", show_progress="hidden").success(
                reveal, [shown], [table, plot, export, timer], **private
            )
