"""`python -m survey.admin`: the study's state and its responses, from the command line.

    python -m survey.admin --db sqlite:///survey.sqlite status                 # every study
    python -m survey.admin --db sqlite:///survey.sqlite status --study demo    # one, per method
    python -m survey.admin --db sqlite:///survey.sqlite export --study demo --out demo.csv [--catch-threshold 0.5 ...]

The export has one row per answer with the report's decision on it (`used`, `not_used_reason`,
`excluded_participant`, `exclusion_reason`, `fast`; the trial kind is `phase`), made with the
same quality-control flags as `python -m survey.report`, so a re-analysis need not redo it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import SurveyError
from .report import add_analysis_arguments, export_responses, options_from_arguments, study_options
from .store import Store


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


def status_text(store: Store, study: str) -> str:
    status = store.study_status(study)
    lines = [
        f"Study '{status['study']}' ({status['mode']} mode, {status['images']} images)",
        f"participants: {status['participants_started']} started, {status['participants_consented']} consented, "
        f"{status['participants_finished']} finished",
        f"responses: {status['responses']} of {status['trials_assigned']} assigned trials",
        "",
    ]
    per_method = status["per_method"]
    if per_method:
        lines.append(
            format_table(
                ["method", "trials", "responses", "test trials of finishers"],
                [[m, c["trials"], c["responses"], c["finished_trials"]] for m, c in per_method.items()],
            )
        )
    return "\n".join(lines)


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
            frame = store.trials_frame(args.study)
            options = study_options(options_from_arguments(args), store.get_protocol(args.study))
            rows = export_responses(frame, args.out if args.out else sys.stdout, options=options)
            if args.out:
                print(f"Wrote {rows} responses of '{args.study}' to {args.out}.")
    except SurveyError as error:
        raise SystemExit(f"error: {error}") from None
    except OSError as error:
        raise SystemExit(f"error: cannot write {args.out}: {error.strerror}.") from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
