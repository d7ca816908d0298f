"""The "Real or fake?" study: the participant screens of `survey.participant` in Gradio, and the admin page.

Every handler is one call into `survey.participant.ParticipantFlow` (or `survey.admin`, behind
`survey.access.AdminGate`). What reaches the browser is the screen's public part (what to show,
with opaque trial ids) and the trial's own presentation as inline PNG data, never which image is
real or which method made a fake. The participant's tokens live in the browser
(gr.BrowserState), one per study, so a reload resumes.

The participant's events skip Gradio's queue (`queue=False`): each is a short database call, run
at once in the server's thread pool, so a study never waits behind colorizing work or fills the
queue, however many people arrive together. The same events are the API endpoints
/survey_open, /survey_consent, /survey_next and /survey_answer.
"""

from __future__ import annotations

import asyncio
import base64
import html
import io
import secrets
from typing import Any, Callable

import gradio as gr

from survey import SurveyError
from survey.access import AdminGate
from survey.admin import dashboard, export_answers
from survey.participant import IN_STUDY, NO_STUDY, SCREENS, ParticipantFlow, Screen

from .components import static_text, user_error
from .files import stem

# The screens' boxes, in the order `render` shows them; feedback shares the trial's box.
BOXES = ("closed", "consent", "instructions", "trial", "done")
# Participant events: no queue (see the module), as many at once as the server's thread pool runs.
PARTICIPANT_EVENT = dict(queue=False)
# The admin view's events: a wrong password waits (`AdminGate.check_async`) on the event loop, so
# no limit on how many run at once: guessers cannot hold the places the admin's request needs.
ADMIN_EVENT = dict(concurrency_id="admin", concurrency_limit=None)


def stimulus_html(images: tuple[bytes, ...], *, exposure_ms: int | None, mode: str, notice: str = "") -> str:
    """The images of one trial inline as PNG data (no file name, no URL to compare), hidden after
    exposure_ms (by `static/stimulus.js`, which also takes them out of the page). Without images,
    the `notice` saying why (already shown: answer from memory)."""
    if not images:
        if not notice:
            return ""
        return f'<div class="stimulus from-memory"><p class="stimulus-note">{html.escape(notice)}</p></div>'
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
    return stimulus_html(screen.images, exposure_ms=exposure, mode=screen.mode, notice=screen.notice)


def client_key(request: gr.Request | None) -> str | None:
    """The visitor's address, for the store's limit on starts per client and the admin lockout.

    The connection's own peer, which the server (uvicorn) replaces by the X-Forwarded-For address
    only when the peer is one of the configured trusted proxies (`app.launch`): a header a
    visitor sets is never believed.
    """
    client = getattr(request, "client", None)
    return getattr(client, "host", None)


class SurveyTab:
    """Event handlers (also the API endpoints) and layout of the study and of its admin page."""

    def __init__(self, flow: ParticipantFlow, *, gate: AdminGate | None = None, problem: str | None = None) -> None:
        self.flow = flow
        self.gate = gate or AdminGate()
        self.problem = problem  # why the database could not be opened, with what to fix: the admin's to read

    # -- participant handlers: each answers (the browser's tokens, public screen, stimulus HTML) ----

    @staticmethod
    def _answer(step, tokens: Any) -> tuple[Any, dict, str]:
        return step.tokens, step.screen.public(), shown_html(step.screen)  # the tokens the flow kept, never what was sent

    def _call(self, method: Callable, study: str | None, tokens: Any, *args, **kwargs) -> tuple[Any, dict, str]:
        try:
            return self._answer(method(study, tokens, *args, **kwargs), tokens)
        except SurveyError as error:
            raise user_error(error) from None

    def open(self, study: str | None, tokens: Any) -> tuple[Any, dict, str]:
        """Where this browser stands in `study` (on page load, and when another study is picked)."""
        return self._answer(self.flow.open(study, tokens), tokens)

    def consent(self, study: str | None, tokens: Any, request: gr.Request = None) -> tuple[Any, dict, str]:
        """The participant agrees: registered (counted against their address's limit) and shown the instructions."""
        return self._call(self.flow.consent, study, tokens, client_key=client_key(request))

    def proceed(self, study: str | None, tokens: Any) -> tuple[Any, dict, str]:
        """The participant's current trial (after the instructions, or after practice feedback)."""
        return self._call(self.flow.proceed, study, tokens)

    def answer(self, study: str, tokens: dict, screen: dict, choice: str) -> tuple[dict, dict, str]:
        """Answer the trial on `screen` with `choice` ("left" | "right" in pair mode, "real" | "fake" in
        single mode); returns the saved tokens, the next screen and its images as HTML."""
        return self._call(self.flow.answer, study, tokens, screen, choice)

    # -- admin handlers -----------------------------------------------------------------------

    async def _admitted(self, password: str, study: str | None, request: gr.Request | None) -> str:
        """`study`, once the gate has let `password` through; else gr.Error with the sentence (the
        database's problem and its fix, for the admin, when it could not be opened)."""
        try:
            await self.gate.check_async(password, client_key=client_key(request))
        except SurveyError as error:
            raise user_error(error) from None
        if self.flow.store is None or not study:
            raise user_error(self.problem or self.flow.unavailable or NO_STUDY)
        return study

    async def admin(self, password: str, study: str | None, request: gr.Request = None):
        """Status (with the method balance among finishers), summary table and main plot of `study`,
        for the admin password only; last (for the page, not the API) whether there are a table
        and a plot to show, and the password that worked (for the live refresh)."""
        study = await self._admitted(password, study, request)
        try:
            board = await asyncio.to_thread(dashboard, self.flow.store, study)
        except SurveyError as error:
            raise user_error(error) from None
        return board.status, board.table, board.figure, (board.table is not None, board.figure is not None), password

    async def export(self, password: str, study: str | None, request: gr.Request = None) -> str:
        """The answers of `study` as CSV text, with the report's quality-control decision on each, for
        the admin password only. The page saves it as a file in the browser: the export is never a
        file on the server that a URL could fetch."""
        study = await self._admitted(password, study, request)
        buffer = io.StringIO()
        try:
            await asyncio.to_thread(export_answers, self.flow.store, study, buffer)
        except SurveyError as error:
            raise user_error(error) from None
        return buffer.getvalue()

    # -- layout -------------------------------------------------------------------------------------

    def build(self, demo: gr.Blocks, tabs: gr.Tabs | None, tokens: gr.BrowserState) -> None:
        """The participant's screens and events; `tabs`, when the page has others, is switched to this
        one for a participant mid-study or arriving by a study link (?study=NAME)."""
        flow = self.flow
        names = flow.studies()
        screen = gr.JSON(visible=False)
        # Custom values: the flow checks names against the database, so a study built while the app
        # runs is joinable from the API at once (the page's menu follows on its next load).
        study = gr.Dropdown(
            choices=names,
            value=flow.default_study(),
            label="Study",
            visible=len(names) > 1,
            allow_custom_value=True,
            elem_id="survey-study",
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
            names, picked = flow.landing(wanted, saved)  # one read
            return gr.Dropdown(choices=names, value=picked, visible=len(names) > 1)

        def show_tab(public: dict | None, request: gr.Request):
            """Open this tab for a participant who is mid-study or came by a study link."""
            linked = bool(request and request.query_params.get("study"))
            busy = isinstance(public, dict) and public.get("screen") in IN_STUDY
            return gr.Tabs(selected="survey") if linked or busy else gr.skip()

        common = dict(outputs=[tokens, screen, stimulus], **PARTICIPANT_EVENT)
        then = dict(fn=render, inputs=[screen], outputs=[*boxes, *texts], api_visibility="private", queue=False)

        study.input(self.open, [study, tokens], api_name="survey_open", **common).then(**then)
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

            def answer_by_button(study_name, saved, public, index=index):
                choices = public.get("choices") if isinstance(public, dict) else None
                return self.answer(study_name, saved, public, choices[index] if choices else "")

            button.click(answer_by_button, [study, tokens, screen], api_visibility="private", **common).success(**then)
        gr.api(self.answer, api_name="survey_answer", **PARTICIPANT_EVENT)

    def build_admin(self, demo: gr.Blocks) -> None:
        """The admin page: live status, summary and plot of a study, and its answers as a CSV download."""
        gr.Markdown("# Study admin")
        if not self.gate.enabled:
            gr.Markdown("The admin view is off: set the `SURVEY_ADMIN_PASSWORD` environment variable to turn it on.")
            return
        names = self.flow.studies()
        with gr.Row():
            password = gr.Textbox(type="password", label="Admin password", elem_id="admin-password", scale=3)
            study = gr.Dropdown(
                choices=names, value=self.flow.default_study(), label="Study", scale=2, allow_custom_value=True, elem_id="admin-study"
            )
            show = gr.Button("Show", elem_id="admin-show", scale=1)
        status = gr.Markdown(elem_id="admin-status")
        table = gr.Dataframe(label="Summary", interactive=False, visible=False, wrap=True, max_height=2000, elem_id="admin-table")
        plot = gr.Plot(label="Fooling rate", visible=False, elem_id="admin-plot")
        export = gr.Button("Download responses (CSV)", visible=False, elem_id="admin-export")
        csv = gr.Textbox(visible=False)  # the export on its way to the browser's download, then emptied
        csv_name = gr.Textbox(visible=False)
        timer = gr.Timer(15, active=False)
        shown = gr.State((False, False))
        admitted = gr.State("")  # the password that worked: the live refresh keeps using it
        outputs = [status, table, plot, shown, admitted]

        def refresh_studies():
            return gr.Dropdown(choices=self.flow.studies())

        def reveal(shown: tuple[bool, bool]):
            """No empty table headed "1 2 3", no empty plot: each shows once there is something in it."""
            return gr.Dataframe(visible=shown[0]), gr.Plot(visible=shown[1]), gr.Button(visible=True), gr.Timer(active=True)

        def file_name(study: str) -> str:
            return f"{stem(study)}-responses.csv"

        private = dict(api_visibility="private", queue=False)
        demo.load(refresh_studies, None, [study], **private)
        show.click(self.admin, [password, study], outputs, api_name="survey_admin", api_visibility="undocumented", **ADMIN_EVENT).success(
            reveal, [shown], [table, plot, export, timer], **private
        )
        timer.tick(self.admin, [admitted, study], outputs, api_visibility="private", show_progress="hidden", **ADMIN_EVENT)
        export.click(self.export, [password, study], [csv], api_name="survey_export", api_visibility="undocumented", **ADMIN_EVENT).success(
            file_name, [study], [csv_name], **private
        ).success(None, [csv, csv_name], [csv], js=static_text("download.js"), **private)
