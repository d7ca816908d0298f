"""The real-or-fake human study: storage, study building, the participant's screens, admin (never imports torch nor gradio).

Modules, one role each:

- `settings`  the database URL and the admin password (environment + explicit values)
- `access`    the admin password gate: constant-time check, a delay on wrong guesses, lockouts
- `models`    SQLAlchemy tables
- `store`     `Store`: sessions, transactions, queries; the only module that writes
- `study`     `Protocol` and the per-participant trial plan (pure logic, no I/O)
- `texts`     what participants read (consent, instructions, end screen), written from the protocol
- `inputs`    what participants send: whole-number ids, short quotes of bad input in messages
- `stimuli`   image preparation: crop, catch versions, anonymised PNG encoding, per-trial presentation
- `participant` the participant's screens (consent, instructions, trials, feedback, done) for any front end
- `build`     `python -m survey.build`: images + colorization methods -> a stored study
- `demo`      `python -m survey.demo`: a small study from scikit-image's photos
- `admin`     `python -m survey.admin`: status table and CSV export; the app's admin dashboard
- `report`    `python -m survey.report`: the analysis of `Store.trials_frame`, report.md, the QC-annotated export
- `figures`   the report's matplotlib figures (names in any script, legends off the data)
- `stats`     intervals, tests and the two-way cluster bootstrap: pure functions over numbers
- `simulate`  simulated participants answering through the real `Store`, to check the report
- `coverage`  `python -m survey.coverage`: the report's intervals and tests on simulated studies with known truth
"""

from __future__ import annotations

__all__ = ["SurveyError"]


class SurveyError(Exception):
    """A mistake a person can fix (unknown token, wrong trial, bad study name); one plain sentence."""
