"""A study's state for its organisers: `python -m survey.admin`, and the app's admin view (`dashboard`).

    python -m survey.admin --db sqlite:///survey.sqlite status                 # every study
    python -m survey.admin --db sqlite:///survey.sqlite status --study demo    # one, per method
    python -m survey.admin --db sqlite:///survey.sqlite export --study demo --out demo.csv [--catch-threshold 0.5 ...]

The export has one row per answer with the report's decision on it (`used`, `not_used_reason`,
`excluded_participant`, `exclusion_reason`, `fast`; the trial kind is `phase`), made with the
same quality-control flags as `python -m survey.report`, so a re-analysis need not redo it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import pandas as pd

from . import SurveyError
from .report import (
    ReportOptions, add_analysis_arguments, export_responses, fooling_rate_figure, options_from_arguments, study_options,
    summary_table,
)
from .store import Store
from .study import CATCH, Protocol

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with left-aligned columns."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def studies_table(store: Store) -> str:
    studies = store.list_studies()
    if not studies:
        return "No studies yet; create one with `python -m survey.build` or `python -m survey.demo`."
    return format_table(
        ["study", "mode", "images", "methods", "participants", "finished", "created (UTC)"],
        [
            [s.name, s.mode, s.images, ", ".join(s.methods), s.participants, s.finished, f"{s.created_at:%Y-%m-%d %H:%M}"]
            for s in studies
        ],
    )


RECURRENCE_RISK = (
    "This study shows each photo with every method over the participations: someone who takes it many times (or pools "
    "answers with others) can find the real photo as the picture that comes back beside changing fakes, whatever its "
    "colours. For a public study, build it with one method per photo (the default of `python -m survey.build`)."
)


def status_lines(status: dict, protocol: Protocol | None = None) -> list[str]:
    """Sentences on a study (`Store.study_status`): what it is, how far its participants are, and
    (given its protocol) the recurrence risk of a design that shows each photo with every method."""
    lines = [
        f"Study '{status['study']}': {status['mode']} mode, {status['images']} images, methods {', '.join(status['methods'])}.",
        f"Participants: {status['participants_started']} started, {status['participants_consented']} consented, "
        f"{status['participants_finished']} finished; responses: {status['responses']} of {status['trials_assigned']} assigned trials.",
    ]
    if protocol is not None and not protocol.one_method_per_image and len(status["methods"]) > 1:
        lines.append(RECURRENCE_RISK)
    return lines


def balance_line(status: dict) -> str:
    """How evenly the methods are spread over the test trials of those who finished (`Store.finished_balance`)."""
    counts = {method: c["finished_trials"] for method, c in status["per_method"].items() if method != CATCH}
    if not status["participants_finished"] or not counts:
        return "Method balance: nobody has finished yet."
    spread = max(counts.values()) - min(counts.values())
    listed = ", ".join(f"{method} {count}" for method, count in counts.items())
    return (
        f"Method balance among the {status['participants_finished']} who finished (test trials, catch trials aside): "
        f"{listed}; {'even' if spread == 0 else f'{spread} apart'}."
    )


def status_text(store: Store, study: str) -> str:
    status = store.study_status(study)
    lines = [*status_lines(status, store.get_protocol(study)), ""]
    per_method = status["per_method"]
    if per_method:
        lines.append(
            format_table(
                ["method", "trials", "responses", "test trials of finishers"],
                [[m, c["trials"], c["responses"], c["finished_trials"]] for m, c in per_method.items()],
            )
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Dashboard:
    """What the app's admin view shows of a study; `table` and `figure` are None until there is something to summarise.

    `table` has a column per method and a row per measure (`readable_summary` turned on its side):
    a study has a few methods but ten measures, which were too wide for a phone, and for a desktop.
    """

    status: str  # Markdown paragraphs
    table: pd.DataFrame | None
    figure: Figure | None


def dashboard(store: Store, study: str, *, n_boot: int = 500) -> Dashboard:
    """The study's status, its readable summary table and its fooling-rate plot, made with the
    report's choices for this study (`report.study_options`). Raises SurveyError.

    Fewer bootstrap replicates than the report's: the admin view refreshes live.
    """
    status = store.study_status(study)
    protocol = store.get_protocol(study)
    lines = [*status_lines(status, protocol), balance_line(status)]
    if not status["responses"]:
        lines.append("No answers yet: the summary and the plot appear with the first answers.")
        return Dashboard("\n\n".join(lines), None, None)
    options = study_options(ReportOptions(n_boot=n_boot), protocol)
    try:
        summary = summary_table(store.trials_frame(study), n_boot=options.n_boot, exclude_reshown=options.exclude_reshown)
    except SurveyError as error:  # e.g. every answer so far is a practice answer
        lines.append(f"No summary yet: {error}")
        return Dashboard("\n\n".join(lines), None, None)
    try:
        figure = fooling_rate_figure(summary, title=f"{study}: fooling rate per method")
    except ValueError as error:  # a plotting corner case must not hide the status and the table
        logger.warning("The fooling-rate plot of %s failed: %s", study, error)
        lines.append("The plot could not be drawn for these numbers.")
        figure = None
    by_method = readable_summary(summary).set_index("method").T.rename_axis(index="method", columns=None).reset_index()
    return Dashboard("\n\n".join(lines), by_method, figure)


def readable_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """`report.summary_table` as people read it: percentages and intervals as text.

    `rate` is the fooling rate for fakes (pair: picked as the real photo; single: judged real)
    and, in single mode, the share of real photos judged real.
    """

    def pct(value: float) -> str:
        return "n/a" if value != value else f"{100 * value:.0f}%"

    return pd.DataFrame(
        [
            {
                "method": row["method"],
                "trials": int(row["n_trials"]),
                "participants": int(row["n_participants"]),
                "shown": row["stimulus"],
                "rate": pct(row["rate"]),
                "95% interval": f"{pct(row['ci_low'])} to {pct(row['ci_high'])}",
                "interval from": row["ci_method"],
                "Wilson 95% (trials independent)": f"{pct(row['wilson_low'])} to {pct(row['wilson_high'])}",
                "p (clustered)": "n/a" if row["p_cluster"] != row["p_cluster"] else f"{row['p_cluster']:.3g}",
                "verdict": row["verdict"],
            }
            for _, row in summary.iterrows()
        ]
    )


def export_answers(store: Store, study: str, path_or_buffer, *, options: ReportOptions | None = None) -> int:
    """The study's answers as CSV with the report's quality-control decision on each (the study's own
    choices on top of `options`); returns how many rows were written."""
    options = study_options(options or ReportOptions(), store.get_protocol(study))
    return export_responses(store.trials_frame(study), path_or_buffer, options=options)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m survey.admin", description="Survey status and export.")
    parser.add_argument("--db", default=None, help="database URL (default: SURVEY_DB_URL or sqlite:///survey.sqlite)")
    commands = parser.add_subparsers(dest="command", required=True)
    status = commands.add_parser("status", help="participants and responses (all studies without --study)")
    status.add_argument("--study", default=None)
    export = commands.add_parser("export", help="the responses of a study as CSV, with the report's quality-control decisions")
    export.add_argument("--study", required=True)
    export.add_argument("--out", default=None, help="CSV file to write (default: standard output)")
    add_analysis_arguments(export, statistics=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        store = Store(args.db)
        if args.command == "status":
            print(status_text(store, args.study) if args.study else studies_table(store))
        else:
            rows = export_answers(store, args.study, args.out if args.out else sys.stdout, options=options_from_arguments(args))
            if args.out:
                print(f"Wrote {rows} responses of '{args.study}' to {args.out}.")
    except SurveyError as error:
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        raise SystemExit(f"error: cannot write {args.out}: {error.strerror}.") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
