"""Evaluation report of a real-or-fake study: pandas summaries, honest intervals and tests.

    python -m survey.report --db URL --study NAME --out results/study-NAME/ \
        [--catch-threshold 0.5] [--min-rt-ms 300] [--drop-fast] [--bootstrap 2000] [--seed 0] \
        [--correction holm|none] [--min-participants 10] [--min-images 10]

reads `Store(url).trials_frame(study)` and writes `report.md` with CSV tables and PNG figures
(drawn by `survey.figures`).

What is estimated (test trials of participants who pass quality control):

- Fooling rate per method. Pair mode: share of trials where the colorization was picked as the
  real photo (chance: 50%). Single mode: share of the method's colorizations judged real, beside
  the share of real photos judged real, which is the reference there (50% is not chance when one
  image is shown: people may call most images real); their difference and d' = z(real judged
  real) - z(fake judged real) with the log-linear correction. Rates pool trials.
- Each rate has a 95% Wilson interval (trials treated as independent, shown for comparison) and
  the reported 95% interval: the two-way cluster bootstrap (participants and images resampled;
  `survey.stats.TwoWayBootstrap`), or, at a rate of exactly 0% or 100% where every replicate is the
  same, Wilson's interval on an effective sample size (trials / design effect). `ci_method` says which.
- Tests respect the clustering: each p-value inverts the reported interval (pair mode: against
  50%; single mode: against the real photos' rate). The exact binomial p, which treats trials as
  independent, is kept in the CSV as `p_naive_binomial` and used for nothing.
- Method comparisons: differences with the same bootstrap (the same replicate draws for every
  method, so the pairing is kept). Verdicts ("A beats B", "below chance") are Holm-corrected
  within each family (per-method tests; pairwise comparisons), intervals are shown uncorrected.
- Small studies (fewer than --min-participants participants or --min-images images) get a warning
  at the top and no verdicts: there the cluster intervals cover less than they claim.
- Quality control: participants who did not finish, or whose catch-trial accuracy is below the
  threshold, are excluded; answers faster than the floor are counted and, with --drop-fast, dropped.
  Answers the store flagged slow (over the protocol's max_response_ms) are counted; trials served
  again after their exposure window are counted, and dropped when the protocol's reshown_trials
  is "exclude". `annotated_trials` / `export_responses` give every trial with that decision and its reason.
- Agreement: Fleiss' kappa over stimuli (image x method) rated by two or more included raters,
  generalised to unequal rater counts (`survey.stats.fleiss_kappa`).

`summary_table(frame)` and `fooling_rate_figure(table)` give the admin view the same table and
main plot live. The gallery's images come from `Store.stimulus_png`. Every name that reaches the
Markdown (methods, images, study) is escaped, so no name can break a table or render as HTML.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import math
import re
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from scipy.stats import norm

from . import SurveyError
from .figures import DPI, fooling_rate_figure, gallery_figure, per_image_figure, response_time_figure
from .settings import masked_url
from .stats import (
    BootstrapInterval,
    TwoWayBootstrap,
    binomial_test,
    difference_interval,
    dprime,
    effective_wilson_interval,
    fleiss_kappa,
    holm_adjust,
    inverted_p_value,
    score_test,
    wilson_interval,
)

logger = logging.getLogger(__name__)

__all__ = [
    "Analysis",
    "ReportError",
    "ReportOptions",
    "add_analysis_arguments",
    "analyse",
    "annotated_trials",
    "export_responses",
    "fooling_rate_figure",
    "md_text",
    "options_from_arguments",
    "quality_control",
    "study_options",
    "summary_table",
    "write_report",
]

REAL = "real"
CATCH = "catch"
CHANCE = 0.5
REQUIRED_COLUMNS = (
    "mode", "participant", "participant_finished", "position", "phase", "image_key", "method",
    "answered", "correct", "fooled", "judged_real", "response_ms",
)  # fmt: skip
CORRECTIONS = ("holm", "none")
P_DECIMALS = 3  # p-values are shown, and compared with the level, at this precision
# The columns annotated_trials adds to the trials frame (the trial kind is the frame's own `phase`).
DECISION_COLUMNS = ("used", "not_used_reason", "excluded_participant", "exclusion_reason", "fast")


class ReportError(SurveyError):
    """The report cannot be made (no data, unknown study, ...); the message is one plain sentence."""


@dataclass(frozen=True)
class ReportOptions:
    """The analysis choices; every one is a CLI flag and is written into the report."""

    catch_threshold: float = 0.5  # exclude participants whose catch accuracy is below this
    min_rt_ms: float = 300.0  # answers faster than this are flagged as too fast
    drop_fast: bool = False  # drop the too-fast answers from the analysis
    exclude_reshown: bool = False  # drop trials re-shown after their exposure (the protocol's reshown_trials)
    n_boot: int = 2000  # bootstrap replicates
    seed: int = 0
    confidence: float = 0.95
    correction: str = "holm"  # family-wise control of the verdicts: "holm" or "none"
    # Below either count the report warns and gives no verdicts. In the coverage study (results/report-coverage/)
    # a rate's 95% interval covered 88.8-91.2% with 2 or 6 participants or 4-8 images, 91.3-94.8% from 10 of each up.
    min_participants: int = 10
    min_images: int = 10

    def __post_init__(self) -> None:
        if not 0.0 <= self.catch_threshold <= 1.0:
            raise ReportError(f"The catch threshold must be between 0 and 1, not {self.catch_threshold}.")
        if self.min_rt_ms < 0:
            raise ReportError("The response-time floor cannot be negative.")
        if self.n_boot < 10:
            raise ReportError("Use at least 10 bootstrap replicates (2000 for a report).")
        if not 0.5 <= self.confidence < 1.0:
            raise ReportError("The confidence level must be between 0.5 and 1.")
        if self.correction not in CORRECTIONS:
            raise ReportError(f"The multiple-comparison correction must be one of {', '.join(CORRECTIONS)}, not '{self.correction}'.")
        if self.min_participants < 2 or self.min_images < 2:
            raise ReportError("Verdicts need at least 2 participants and 2 images; use --min-participants and --min-images of 2 or more.")

    @property
    def alpha(self) -> float:
        # Rounded: 1 - 0.95 is 0.05000000000000004 in floating point, which made p = 0.050 "significant".
        return round(1.0 - self.confidence, 12)

    def significant(self, p: float) -> bool:
        """p below the level, compared as the report shows p (3 decimals): a p shown as 0.050 is never
        called significant at 5%, whatever its last digits."""
        return math.isfinite(p) and round(p, P_DECIMALS) < self.alpha


# ----------------------------------------------------------------------------- data preparation


def _flag(series: pd.Series) -> np.ndarray:
    """True/False/None (or 1/0/NaN/NA) -> 1.0/0.0/nan."""
    try:
        return series.astype("boolean").astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        pass
    out = np.full(len(series), np.nan)
    for i, value in enumerate(series.to_numpy(dtype=object)):
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            continue
        out[i] = 1.0 if bool(value) else 0.0
    return out


def _prepare(frame: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise ReportError("The report needs a pandas DataFrame of trials (Store.trials_frame).")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ReportError(f"The trials table lacks the column(s) {', '.join(missing)}; is it from Store.trials_frame?")
    out = frame.copy()
    out["answered"] = _flag(out["answered"]) == 1.0
    out["participant_finished"] = _flag(out["participant_finished"]) == 1.0
    for column in ("correct", "fooled", "judged_real"):
        out[f"{column}_value"] = _flag(out[column])
    out["response_ms"] = pd.to_numeric(out["response_ms"], errors="coerce").astype(float)
    out["image_key"] = out["image_key"].astype(str)
    out["method"] = out["method"].astype(str)
    return out


def _mode(trials: pd.DataFrame) -> str:
    modes = sorted(str(m) for m in trials["mode"].dropna().unique())
    if len(modes) != 1 or modes[0] not in ("pair", "single"):
        raise ReportError(f"The trials must come from one study in 'pair' or 'single' mode; found modes {modes}.")
    return modes[0]


def quality_control(frame: pd.DataFrame, *, catch_threshold: float = 0.5, min_rt_ms: float = 300.0) -> pd.DataFrame:
    """One row per participant: progress, catch-trial accuracy, too-fast answers, and the exclusion verdict.

    A participant is excluded when they did not finish, or when their accuracy on answered catch
    trials is below `catch_threshold` (participants with no catch trial answered are judged on
    finishing alone). Columns: participant, finished, assigned, answered, catch_answered,
    catch_correct, catch_accuracy, fast_answers, slow_answers, reshown_trials, median_response_ms,
    excluded, reason.
    """
    trials = frame if "correct_value" in frame.columns else _prepare(frame)
    codes, people = pd.factorize(trials["participant"], sort=True)
    n = len(people)
    answered = trials["answered"].to_numpy(dtype=bool)
    catch = answered & (trials["phase"].to_numpy() == CATCH)
    rt = trials["response_ms"].to_numpy(dtype=float)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes[mask], minlength=n).astype(int)

    finished = np.zeros(n, dtype=bool)
    finished[codes] = trials["participant_finished"].to_numpy(dtype=bool)
    rt_answered = pd.Series(np.where(answered, rt, np.nan))
    median = rt_answered.groupby(codes).median().reindex(range(n)).to_numpy(dtype=float)
    qc = pd.DataFrame(
        {
            "participant": people,
            "finished": finished,
            "assigned": count(np.ones(len(codes), dtype=bool)),
            "answered": count(answered),
            "catch_answered": count(catch),
            "catch_correct": count(catch & (trials["correct_value"].to_numpy() == 1.0)),
            "fast_answers": count(answered & (rt < min_rt_ms)),
            "slow_answers": count(answered & _flag_column(trials, "slow")),
            "reshown_trials": count(_flag_column(trials, "reshown")),
        }
    )
    qc["median_response_ms"] = median
    with np.errstate(invalid="ignore", divide="ignore"):
        qc["catch_accuracy"] = qc["catch_correct"] / qc["catch_answered"].where(qc["catch_answered"] > 0)
    failed = (qc["catch_answered"] > 0) & (qc["catch_accuracy"] < catch_threshold)
    reasons = []
    for finished, n_answered, n_assigned, fail, right, n_catch in zip(
        qc["finished"], qc["answered"], qc["assigned"], failed, qc["catch_correct"], qc["catch_answered"]
    ):
        why = []
        if not finished:
            why.append(f"did not finish ({n_answered} of {n_assigned} trials answered)")
        if fail:
            why.append(f"failed catch trials ({right} of {n_catch} right, below {catch_threshold:.0%})")
        reasons.append("; ".join(why))
    qc["reason"] = reasons
    qc["excluded"] = qc["reason"] != ""
    columns = [
        "participant", "finished", "assigned", "answered", "catch_answered", "catch_correct",
        "catch_accuracy", "fast_answers", "slow_answers", "reshown_trials", "median_response_ms", "excluded", "reason",
    ]  # fmt: skip
    return qc[columns]


def _flag_column(trials: pd.DataFrame, column: str) -> np.ndarray:
    """A True/False column of the store's flags; all False for frames from before it existed."""
    if column not in trials.columns:
        return np.zeros(len(trials), dtype=bool)
    return _flag(trials[column]) == 1.0


# ----------------------------------------------------------------------------- the analysis


def _annotate(trials: pd.DataFrame, mode: str, options: ReportOptions) -> pd.DataFrame:
    """Add the quality-control decision to every trial (in place); returns quality_control()'s table.

    Columns added: excluded_participant, exclusion_reason (the participant's), fast, outcome (the
    answer the rates count), used, and not_used_reason (the first reason that applies, "" if used).
    """
    participants = quality_control(trials, catch_threshold=options.catch_threshold, min_rt_ms=options.min_rt_ms)
    reasons = participants.set_index("participant")["reason"]
    trials["excluded_participant"] = trials["participant"].map(reasons).fillna("").ne("")
    trials["exclusion_reason"] = trials["participant"].map(reasons).fillna("")
    trials["fast"] = trials["answered"] & (trials["response_ms"] < options.min_rt_ms)
    trials["outcome"] = trials["fooled_value"] if mode == "pair" else trials["judged_real_value"]
    phase = trials["phase"].to_numpy()
    dropped_fast = trials["fast"].to_numpy() & options.drop_fast
    conditions = [
        phase == "practice",
        phase == CATCH,
        phase != "test",
        ~trials["answered"].to_numpy(),
        trials["excluded_participant"].to_numpy(),
        dropped_fast,
        _flag_column(trials, "reshown") & options.exclude_reshown,
        trials["outcome"].isna().to_numpy(),
    ]
    choices = [
        "practice trial",
        "catch trial (attention check)",
        "not a test trial",
        "not answered",
        "participant excluded",
        f"faster than {options.min_rt_ms:g} ms (dropped with --drop-fast)",
        "shown again after its exposure (the protocol excludes re-shown trials)",
        "no outcome recorded",
    ]
    trials["not_used_reason"] = np.select(conditions, choices, default="")
    trials["used"] = trials["not_used_reason"] == ""
    return participants


def _public_columns(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials frame's own columns and the decision columns, without the analysis' helpers."""
    return trials[[c for c in trials.columns if not c.endswith("_value") and c != "outcome"]]


def annotated_trials(frame: pd.DataFrame, *, options: ReportOptions | None = None) -> pd.DataFrame:
    """Every trial of `frame` (`Store.trials_frame`) with the report's decision on it, for re-analysis.

    Adds `used` (the trial counts in the estimates), `not_used_reason` ("practice trial", "catch
    trial (attention check)", "not answered", "participant excluded", "faster than ... ms (dropped
    with --drop-fast)"; "" when used), `excluded_participant` and `exclusion_reason` (the
    participant's: did not finish, failed catch trials) and `fast`. The trial kind is `phase`
    (practice, catch, test). The same `options` give the same decisions as the report.
    """
    options = options or ReportOptions()
    trials = _prepare(frame)
    if trials.empty:
        return _public_columns(trials.assign(**{c: pd.Series(dtype=bool if c in ("used", "excluded_participant", "fast") else object) for c in DECISION_COLUMNS}))
    _annotate(trials, _mode(trials), options)
    return _public_columns(trials)


def export_responses(frame: pd.DataFrame, path_or_buffer, *, options: ReportOptions | None = None) -> int:
    """Write the answered trials of `annotated_trials(frame)` as CSV; returns how many rows were written."""
    trials = annotated_trials(frame, options=options)
    answered = trials[trials["answered"].astype(bool)]
    answered.to_csv(path_or_buffer, index=False)
    return len(answered)


@dataclass
class Analysis:
    """Everything the report shows. `summary` is None when no test answers survive quality control
    (then `problem` says why, in one sentence). `small_study` is the warning sentence when the study
    is below the size at which verdicts are given (then every verdict says "withheld")."""

    mode: str
    options: ReportOptions
    methods: list[str]
    trials: pd.DataFrame  # every assigned trial, with the decision columns of annotated_trials
    participants: pd.DataFrame  # quality_control()
    used: pd.DataFrame  # the test trials the estimates use
    summary: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    per_image: pd.DataFrame | None = None
    agreement: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problem: str | None = None
    small_study: str | None = None

    @property
    def fast_total(self) -> int:
        return int(self.trials["fast"].sum())


def analyse(
    frame: pd.DataFrame,
    *,
    methods: Sequence[str] | None = None,
    options: ReportOptions | None = None,
    summary_only: bool = False,
) -> Analysis:
    """Quality control, per-method rates with intervals and tests, comparisons, per-image table, agreement.

    `methods`: the study's fake methods, so one nobody has seen yet still gets a row (with n = 0);
    default: those in the frame. `summary_only` skips comparisons, per-image table and agreement.
    Raises ReportError when the frame has no trials at all.
    """
    options = options or ReportOptions()
    trials = _prepare(frame)
    if trials.empty:
        raise ReportError("The study has no participants yet, so there is nothing to report.")
    mode = _mode(trials)
    seen = sorted(str(m) for m in trials["method"].unique() if m not in (REAL, CATCH))
    all_methods = sorted(set(methods or []) | set(seen))
    if not all_methods:
        raise ReportError("The study has no colorization methods in its trials.")

    participants = _annotate(trials, mode, options)
    used = trials[trials["used"]].copy()
    analysis = Analysis(mode, options, all_methods, trials, participants, used)

    n_included = int((~participants["excluded"]).sum())
    if used.empty:
        analysis.problem = (
            f"No test answers are left after quality control ({len(participants)} participant(s) started, "
            f"{n_included} passed), so no fooling rate can be estimated yet."
        )
        return analysis
    n_people = used["participant"].nunique()
    n_images = used["image_key"].nunique()
    if n_people < options.min_participants or n_images < options.min_images:
        analysis.small_study = (
            f"Small study: {n_people} participant(s) and {n_images} image(s) contribute test answers, fewer than the "
            f"{options.min_participants} participants and {options.min_images} images this report needs before it gives "
            "verdicts (below those numbers the cluster-bootstrap intervals cover the true rate less often than 95% in "
            "simulations: results/report-coverage/). Rates and intervals are shown; no method is declared better than "
            "another or different from the reference."
        )
    if n_people < 2 or n_images < 2:
        analysis.notes.append(
            f"Only {n_people} participant(s) and {n_images} image(s) contribute test answers; the cluster "
            "bootstrap needs at least two of each, so only Wilson intervals are given. Do not generalise "
            "from one person or one image."
        )
    for method in all_methods:
        if not (used["method"] == method).any():
            analysis.notes.append(f"Method '{method}' has no usable test answers (nobody who passed quality control saw it).")

    groups = list(all_methods) + ([REAL] if mode == "single" else [])
    boot, columns = _bootstrap(used, groups, options)
    rates = _rates(used, groups, boot, columns, options)
    analysis.notes += _boundary_notes(rates)
    small = analysis.small_study is not None
    if not small:
        analysis.notes += _few_photos_notes(rates, options, single=mode == "single")
    analysis.summary = _summary(mode, all_methods, rates, boot, columns, options, small_study=small)
    if summary_only:
        return analysis
    analysis.comparisons = _comparisons(analysis.summary, rates, boot, columns, options, small_study=small)
    analysis.per_image = _per_image(used, mode)
    analysis.agreement = _agreement(used)
    if analysis.comparisons is not None and len(analysis.comparisons) > 1 and options.correction == "none":
        analysis.notes.append(
            f"{len(analysis.comparisons)} pairwise comparisons are made at {options.confidence:.0%} each, without "
            "correction for multiplicity (--correction none): among many comparisons of equally good methods, "
            f"about 1 in {round(1 / options.alpha)} will look different by chance."
        )
    return analysis


def _bootstrap(used: pd.DataFrame, groups: list[str], options: ReportOptions):
    """One two-way bootstrap over the used trials; value columns (n, k) per group (methods, and real)."""
    values = np.zeros((len(used), 2 * len(groups)))
    columns: dict[str, tuple[int, int]] = {}
    outcome = used["outcome"].to_numpy(dtype=float)
    method = used["method"].to_numpy()
    for j, name in enumerate(groups):
        is_m = (method == name).astype(float)
        values[:, 2 * j] = is_m
        values[:, 2 * j + 1] = is_m * outcome
        columns[name] = (2 * j, 2 * j + 1)
    boot = TwoWayBootstrap(values, used["participant"].astype(str).to_numpy(), used["image_key"].to_numpy(), n_boot=options.n_boot, seed=options.seed)
    return boot, columns


def _rate(col: tuple[int, int]) -> Callable[[np.ndarray], np.ndarray]:
    n, k = col
    return lambda s: s[..., k] / s[..., n]


@dataclass(frozen=True)
class _Rate:
    """One group's rate and the interval the report shows for it."""

    n: int
    k: int
    participants: int
    images: int
    estimate: float
    low: float
    high: float
    method: str  # how the interval was made: "cluster bootstrap", "Wilson (effective n 87)", ...
    boot: BootstrapInterval
    effective_n: float  # the boundary fallback's sample size; nan when the bootstrap interval is shown
    design_effect: float  # the one the fallback used; nan when none (or no fallback)
    interval_at: Callable[[float], tuple[float, float]]  # the same kind of interval at any confidence

    @property
    def boundary(self) -> bool:
        return math.isfinite(self.effective_n)


def _rates(used: pd.DataFrame, groups: list[str], boot: TwoWayBootstrap, columns, options: ReportOptions) -> dict[str, _Rate]:
    """Each group's rate with the cluster-bootstrap interval, or the boundary fallback at 0% or 100%.

    At 0 or n successes every bootstrap replicate has the same rate, so the bootstrap interval has
    no width. There the interval is Wilson's on n / design effect, the design effect being the
    largest (bootstrap variance / binomial variance) among the study's other rates; clustering
    inflates variance less near 0% and 100% than mid-range, so borrowing it is conservative. With
    no rate to borrow from, the effective n is the fewer of the group's participants and images.
    """
    method = used["method"].to_numpy()
    outcome = used["outcome"].to_numpy(dtype=float)
    person = used["participant"].to_numpy()
    image = used["image_key"].to_numpy()
    raw = {}
    for name in groups:
        mask = method == name
        bi = boot.interval(_rate(columns[name]), confidence=options.confidence, bounds=(0.0, 1.0), null=CHANCE)
        raw[name] = (int(mask.sum()), int(outcome[mask].sum()), len(pd.unique(person[mask])), len(pd.unique(image[mask])), bi)
    effects = [
        bi.se**2 / (k / n * (1 - k / n) / n)
        for n, k, _, _, bi in raw.values()
        if 0 < k < n and math.isfinite(bi.se) and bi.se > 0
    ]
    design_effect = max([1.0, *effects]) if effects else math.nan
    out = {}
    for name, (n, k, people, images, bi) in raw.items():
        estimate = k / n if n else math.nan
        boundary = n > 0 and math.isfinite(bi.low) and k in (0, n)
        if boundary:
            effective_n = n / design_effect if math.isfinite(design_effect) else float(min(n, people, images))

            def interval_at(c: float, k=k, n=n, e=effective_n) -> tuple[float, float]:
                return effective_wilson_interval(k, n, e, confidence=c)

            how = f"Wilson, effective n {effective_n:.0f}"
        else:
            effective_n = math.nan

            def interval_at(c: float, f=_rate(columns[name])) -> tuple[float, float]:
                result = boot.interval(f, confidence=c, bounds=(0.0, 1.0))
                return (result.low, result.high)

            how = "cluster bootstrap" if math.isfinite(bi.low) else ("no answers" if n == 0 else "none (needs two participants and two images)")
        low, high = interval_at(options.confidence) if boundary else (bi.low, bi.high)
        out[name] = _Rate(
            n, k, people, images, estimate, low, high, how, bi, effective_n,
            design_effect if boundary else math.nan, interval_at,
        )  # fmt: skip
    return out


def _boundary_notes(rates: dict[str, _Rate]) -> list[str]:
    at_boundary = {name: r for name, r in rates.items() if r.boundary}
    if not at_boundary:
        return []
    named = ", ".join(f"'{name}' ({r.k} of {r.n})" for name, r in at_boundary.items())
    effects = {r.design_effect for r in at_boundary.values()}
    if all(math.isfinite(e) for e in effects):
        source = (
            f"n divided by the design effect {max(effects):.2f}, the largest among this study's other rates (clustering "
            "widens intervals less near 0% and 100% than mid-range, so this errs on the wide side)"
        )
    else:
        source = "the fewer of the participants and images behind the rate (no other rate gave a design effect)"
    return [
        f"At 0% or 100% every bootstrap replicate is the same, so the bootstrap interval has no width. For {named} the "
        f"reported interval is Wilson's on an effective sample size: {source}. Differences involving such a rate combine "
        "the two rates' intervals (MOVER), and their p-values invert those intervals."
    ]


def _difference(a: _Rate, b: _Rate, fa, fb, boot: TwoWayBootstrap, options: ReportOptions) -> dict:
    """a - b with its interval and two-sided p against 0: the bootstrap's, or MOVER when a rate is at the boundary."""
    bi = boot.interval(lambda s: fa(s) - fb(s), confidence=options.confidence, bounds=(-1.0, 1.0), null=0.0)
    row = {"difference": a.estimate - b.estimate, "boot_low": bi.low, "boot_high": bi.high}
    if (a.boundary or b.boundary or bi.collapsed) and math.isfinite(a.low) and math.isfinite(b.low):

        def interval_at(c: float) -> tuple[float, float]:
            return difference_interval(a.estimate, a.interval_at(c), b.estimate, b.interval_at(c))

        low, high = interval_at(options.confidence)
        row.update(ci_low=low, ci_high=high, ci_method="MOVER from the two rates' intervals", p_cluster=inverted_p_value(interval_at, 0.0))
    else:
        how = "cluster bootstrap" if math.isfinite(bi.low) else "none (needs two participants and two images)"
        row.update(ci_low=bi.low, ci_high=bi.high, ci_method=how, p_cluster=bi.p_value)
    return row


def _probit_interval(r: _Rate, confidence: float) -> tuple[float, float]:
    """The rate's interval on d's scale. The bounds are not log-linear corrected: a bound at 0% or 100%
    becomes an infinite z, since a rate that may be 100% allows any d'."""
    low, high = r.interval_at(confidence)
    return (float(norm.ppf(low)), float(norm.ppf(high)))


def _dprime(fake: _Rate, real: _Rate, columns: dict, name: str, boot: TwoWayBootstrap, options: ReportOptions) -> dict:
    """d' of one method against the real photos with its interval (MOVER on the z scale at the boundary)."""
    if not (fake.n and real.n):
        return {"d_prime": math.nan, "d_prime_low": math.nan, "d_prime_high": math.nan}
    value = float(dprime(real.k, real.n, fake.k, fake.n))
    if (fake.boundary or real.boundary) and math.isfinite(fake.low) and math.isfinite(real.low):
        z_real = float(norm.ppf((real.k + 0.5) / (real.n + 1.0)))
        z_fake = float(norm.ppf((fake.k + 0.5) / (fake.n + 1.0)))
        low, high = difference_interval(z_real, _probit_interval(real, options.confidence), z_fake, _probit_interval(fake, options.confidence))
    else:
        (rn, rk), (fn, fk) = columns[REAL], columns[name]
        d = boot.interval(lambda s: dprime(s[..., rk], s[..., rn], s[..., fk], s[..., fn]), confidence=options.confidence)
        low, high = d.low, d.high
    return {"d_prime": value, "d_prime_low": low, "d_prime_high": high}


SMALL_STUDY = "small study"
FEW_PHOTOS = "too few photos or participants behind this rate"
FEW_PHOTOS_PAIR = "too few photos or participants behind one of the rates"


def _short(rate: _Rate, options: ReportOptions) -> bool:
    """Whether `rate` rests on fewer photos or participants than a verdict needs. With one method per
    photo each method has photos of its own, so a study large enough as a whole can still have too
    few photos per method: in the coverage study such rates declared equal methods different more
    often than the 5% a verdict promises."""
    return 0 < rate.n and (rate.images < options.min_images or rate.participants < options.min_participants)


def _few_photos_notes(rates: dict[str, _Rate], options: ReportOptions, *, single: bool) -> list[str]:
    short = {name: r for name, r in rates.items() if _short(r, options)}
    if not short:
        return []
    named = ", ".join(f"'{name}' ({r.images} photo(s), {r.participants} participant(s))" for name, r in short.items())
    which = "every method's comparison with real photos" if single and REAL in short else "the verdicts involving them"
    return [
        f"Too few photos or participants behind {named}: a verdict needs at least {options.min_images} photos and "
        f"{options.min_participants} participants behind each rate it rests on, so {which} are withheld (rates and intervals "
        "are shown). With one method per photo each method is judged on photos of its own; see the power note below."
    ]


def _verdict(p_raw: float, p_adjusted: float, options: ReportOptions, *, withheld: str | None, differs: str, same: str) -> str:
    if not math.isfinite(p_raw):
        return "cannot tell (no interval)"
    if withheld:
        return f"withheld ({withheld})"
    if options.significant(p_adjusted):
        return differs
    if options.significant(p_raw):
        return f"{same} after {options.correction.capitalize()} correction (uncorrected p {_p_text(p_raw)})"
    return same


def _adjust(p_values, options: ReportOptions) -> np.ndarray:
    p = np.asarray(p_values, dtype=float)
    return holm_adjust(p) if options.correction == "holm" else p


def _summary(mode, methods, rates: dict[str, _Rate], boot, columns, options: ReportOptions, *, small_study: bool) -> pd.DataFrame:
    rows = []
    for name in list(methods) + ([REAL] if mode == "single" else []):
        r = rates[name]
        wilson = wilson_interval(r.k, r.n, confidence=options.confidence)
        row = {
            "method": name,
            "stimulus": "real" if name == REAL else "fake",
            "n_trials": r.n,
            "n_participants": r.participants,
            "n_images": r.images,
            "n_judged_real": r.k,
            "rate": r.estimate,
            "wilson_low": wilson[0],
            "wilson_high": wilson[1],
            "boot_low": r.boot.low,
            "boot_high": r.boot.high,
            "boot_se": r.boot.se,
            "ci_low": r.low,
            "ci_high": r.high,
            "ci_method": r.method,
        }
        if mode == "pair":
            p = score_test(r.k, r.n, p=CHANCE, effective_trials=r.effective_n) if r.boundary else r.boot.p_value
            row.update(test="rate = 50% (chance)", p_cluster=p if r.n else math.nan, p_naive_binomial=binomial_test(r.k, r.n, p=CHANCE))
        elif name == REAL:
            row.update(test="", p_cluster=math.nan, diff_vs_real=math.nan, diff_vs_real_low=math.nan, diff_vs_real_high=math.nan, diff_vs_real_method="")
            row.update(d_prime=math.nan, d_prime_low=math.nan, d_prime_high=math.nan)
        else:
            real = rates[REAL]
            if r.n and real.n:
                diff = _difference(r, real, _rate(columns[name]), _rate(columns[REAL]), boot, options)
            else:
                diff = {"difference": math.nan, "ci_low": math.nan, "ci_high": math.nan, "ci_method": "no answers", "p_cluster": math.nan}
            row.update(
                test="rate = real photos' rate", p_cluster=diff["p_cluster"], diff_vs_real=diff["difference"],
                diff_vs_real_low=diff["ci_low"], diff_vs_real_high=diff["ci_high"], diff_vs_real_method=diff["ci_method"],
            )  # fmt: skip
            row.update(_dprime(r, real, columns, name, boot, options))
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(0, "mode", mode)
    table["p_adjusted"] = _adjust(table["p_cluster"], options)
    verdicts = []
    for row in table.itertuples():
        if row.stimulus == "real":
            verdicts.append("")
            continue
        if mode == "pair":
            differs = "above chance" if row.rate > CHANCE else "below chance"
            same = "no detectable difference from chance"
        else:
            differs = f"judged real {'more' if row.diff_vs_real > 0 else 'less'} often than real photos"
            same = "no detectable difference from real photos"
        short = _short(rates[row.method], options) or (mode == "single" and _short(rates[REAL], options))
        withheld = SMALL_STUDY if small_study else (FEW_PHOTOS if short else None)
        verdicts.append(_verdict(row.p_cluster, row.p_adjusted, options, withheld=withheld, differs=differs, same=same))
    table["verdict"] = verdicts
    return table


def _comparisons(summary: pd.DataFrame, rates: dict[str, _Rate], boot, columns, options: ReportOptions, *, small_study: bool) -> pd.DataFrame | None:
    fakes = summary[(summary["stimulus"] == "fake") & (summary["n_trials"] > 0)]
    if len(fakes) < 2:
        return None
    rows = []
    for a, b in itertools.combinations(fakes["method"], 2):
        if rates[b].estimate > rates[a].estimate:
            a, b = b, a
        diff = _difference(rates[a], rates[b], _rate(columns[a]), _rate(columns[b]), boot, options)
        if diff["ci_high"] < 0:  # possible only with a very skewed bootstrap distribution
            a, b = b, a
            diff = _difference(rates[a], rates[b], _rate(columns[a]), _rate(columns[b]), boot, options)
        rows.append({"method_a": a, "method_b": b, "rate_a": rates[a].estimate, "rate_b": rates[b].estimate, **diff})
    table = pd.DataFrame(rows)
    table["p_adjusted"] = _adjust(table["p_cluster"], options)
    def withheld(a: str, b: str) -> str | None:
        return SMALL_STUDY if small_study else (FEW_PHOTOS_PAIR if _short(rates[a], options) or _short(rates[b], options) else None)

    table["verdict"] = [
        _verdict(r.p_cluster, r.p_adjusted, options, withheld=withheld(r.method_a, r.method_b),
                 differs=f"{r.method_a} beats {r.method_b}", same="no detectable difference")  # fmt: skip
        for r in table.itertuples()
    ]
    order = ["method_a", "method_b", "rate_a", "rate_b", "difference", "ci_low", "ci_high", "ci_method",
             "p_cluster", "p_adjusted", "verdict", "boot_low", "boot_high"]  # fmt: skip
    return table[order]


def _per_image(used: pd.DataFrame, mode: str) -> pd.DataFrame:
    """image_key x method: trials, judged real, rate and its Wilson bounds (fakes; single mode also the real photo)."""
    grouped = used.groupby(["image_key", "method"], sort=True)["outcome"].agg(n_trials="size", n_judged_real="sum").reset_index()
    grouped["n_judged_real"] = grouped["n_judged_real"].astype(int)
    grouped["rate"] = grouped["n_judged_real"] / grouped["n_trials"]
    bounds = [wilson_interval(k, n) for k, n in zip(grouped["n_judged_real"], grouped["n_trials"])]
    grouped["wilson_low"] = [low for low, _ in bounds]
    grouped["wilson_high"] = [high for _, high in bounds]
    grouped["stimulus"] = np.where(grouped["method"] == REAL, "real", "fake")
    return grouped[["image_key", "method", "stimulus", "n_trials", "n_judged_real", "rate", "wilson_low", "wilson_high"]]


def _agreement(used: pd.DataFrame) -> dict:
    """Fleiss' kappa over stimuli (image_key, method) with >= 2 raters; categories: outcome 1 / 0."""
    counts = used.groupby(["image_key", "method"])["outcome"].agg(["size", "sum"])
    table = np.column_stack([counts["size"] - counts["sum"], counts["sum"]])
    raters = counts["size"].to_numpy()
    usable = raters >= 2
    return {
        "kappa": fleiss_kappa(table) if usable.any() else math.nan,
        "items": int(usable.sum()),
        "items_total": int(len(raters)),
        "raters_min": int(raters[usable].min()) if usable.any() else 0,
        "raters_median": float(np.median(raters[usable])) if usable.any() else 0.0,
        "raters_max": int(raters[usable].max()) if usable.any() else 0,
    }


def summary_table(frame: pd.DataFrame, *, methods: Sequence[str] | None = None, n_boot: int = 2000, seed: int = 0, **options) -> pd.DataFrame:
    """Per-method rates with Wilson and reported (cluster) intervals, clustered p-values and verdicts.

    `frame` is `Store.trials_frame(study)`; `options` are ReportOptions fields (catch_threshold,
    min_rt_ms, drop_fast, confidence, correction, min_participants, min_images). One row per fake
    method (single mode: and a row "real" for real photos). Columns: mode, method, stimulus
    ("fake"|"real"), n_trials, n_participants, n_images, n_judged_real, rate, wilson_low,
    wilson_high, boot_low, boot_high, boot_se, ci_low, ci_high (the reported interval), ci_method
    (how it was made), test (the null hypothesis), p_cluster, p_adjusted (Holm by default), verdict;
    pair mode adds p_naive_binomial (trials independent; for reference only); single mode adds
    diff_vs_real, diff_vs_real_low, diff_vs_real_high, diff_vs_real_method, d_prime, d_prime_low,
    d_prime_high. Raises ReportError with a plain sentence when there is nothing to summarise yet.
    """
    try:
        report_options = ReportOptions(n_boot=n_boot, seed=seed, **options)
    except TypeError as error:
        raise ReportError(f"Unknown summary option: {error}.") from None
    analysis = analyse(frame, methods=methods, options=report_options, summary_only=True)
    if analysis.summary is None:
        raise ReportError(analysis.problem or "There is nothing to summarise yet.")
    return analysis.summary


# ----------------------------------------------------------------------------- markdown

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|$~&#!])")


def md_text(value) -> str:
    """`value` as literal Markdown text: every character Markdown or HTML would interpret is escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(value).splitlines()))


def md_code(text: str) -> str:
    """`text` as an inline code span, whatever backticks it contains."""
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _pct(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}%"


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if kind == "pct":
        return _pct(float(value))
    if kind == "p":
        return "< 0.001" if value < 0.001 else f"{value:.{P_DECIMALS}f}"
    if kind == "f2":
        return f"{value:.2f}"
    if kind == "points":
        return f"{100 * value:+.1f} points"
    if kind == "ms":
        return f"{value:.0f}"
    return str(value)


def _md_table(frame: pd.DataFrame, formats: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> str:
    """A GitHub-flavoured Markdown table; every header and cell is escaped (a '|' in a name stays a '|')."""
    formats = formats or {}
    headers = headers or {}
    cols = list(frame.columns)
    lines = ["| " + " | ".join(md_text(headers.get(c, c)) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(md_text(_fmt(row[c], formats.get(c, ""))) for c in cols) + " |")
    return "\n".join(lines)


def _p_text(p: float) -> str:
    return "n/a" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"= {p:.{P_DECIMALS}f}")


def _points(low: float, high: float) -> str:
    return "n/a" if not (np.isfinite(low) and np.isfinite(high)) else f"{100 * low:+.1f} to {100 * high:+.1f} points"


def _interval(low: float, high: float) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    return f"{100 * low:.1f}–{100 * high:.1f}%"


def _tests_text(row, options: ReportOptions, family: tuple[int, str]) -> str:
    """"p = 0.012 (clustered; Holm-adjusted over the 3 methods: 0.036)"."""
    size, members = family
    text = f"p {_p_text(row['p_cluster'])} (clustered"
    if options.correction == "holm" and size > 1:
        text += f"; Holm-adjusted over the {size} {members}: {_p_text(row['p_adjusted']).removeprefix('= ')}"
    return text + ")"


HEDGE = "not proof that none exists; the interval shows how large one the data allow"
VERDICT_EXPLANATIONS = {
    "below chance": "people tell these from real photos more often than guessing would",
    "above chance": "the colorizations were picked over the real photos more often than guessing would",
    "no detectable difference from chance": f"no detectable difference from guessing ({HEDGE})",
    "no detectable difference from real photos": f"no detectable difference from real photos ({HEDGE})",
    "no detectable difference": f"no detectable difference ({HEDGE})",
    f"withheld ({SMALL_STUDY})": "no verdict: the study is too small (see the warning at the top)",
    f"withheld ({FEW_PHOTOS})": "no verdict: too few photos or participants behind this rate (see the note below the table)",
    f"withheld ({FEW_PHOTOS_PAIR})": "no verdict: too few photos or participants behind one of the two rates (see the notes)",
}


def _method_sentences(analysis: Analysis) -> list[str]:
    out = []
    s = analysis.summary
    options = analysis.options
    family = (int(((s["stimulus"] == "fake") & s["p_cluster"].notna()).sum()), "methods")
    real_row = s[s["method"] == REAL]
    for _, r in s.iterrows():
        name = md_text(r["method"])
        if r["n_trials"] == 0:
            out.append(f"- **{name}**: no usable test answers.")
            continue
        what = "picked as the real photo" if analysis.mode == "pair" else "judged real"
        subject = "Real photos" if r["method"] == REAL else f"Colorizations by **{name}**"
        text = (
            f"- {subject} were {what} in {_pct(r['rate'])} of {r['n_trials']} trials ({r['n_participants']} participants, "
            f"{r['n_images']} images); 95% interval {_interval(r['ci_low'], r['ci_high'])} ({md_text(r['ci_method'])}; "
            f"Wilson with trials independent: {_interval(r['wilson_low'], r['wilson_high'])})."
        )
        verdict = str(r["verdict"])
        if r["method"] == REAL:
            text += " They are the reference for the colorizations (with one image shown, 50% is not chance: people may call most images real, or most fake)."
        elif analysis.mode == "pair":
            explained = VERDICT_EXPLANATIONS.get(verdict, verdict)
            text += f" Against 50%: {_tests_text(r, options, family)}: {md_text(explained)}."
        else:
            real_rate = _pct(real_row["rate"].iloc[0]) if len(real_row) else "n/a"
            text += (
                f" Against real photos (judged real in {real_rate}): difference {_fmt(r['diff_vs_real'], 'points')} "
                f"(95% interval {_points(r['diff_vs_real_low'], r['diff_vs_real_high'])}, {md_text(r['diff_vs_real_method'])}), "
                f"{_tests_text(r, options, family)}: {md_text(VERDICT_EXPLANATIONS.get(verdict, verdict))}."
            )
            if np.isfinite(r.get("d_prime", math.nan)):
                d_int = f"{_fmt(r['d_prime_low'], 'f2')} to {_fmt(r['d_prime_high'], 'f2')}"
                text += f" d' = {r['d_prime']:.2f} (95%: {d_int}; 0 = indistinguishable from real photos)."
        out.append(text)
    return out


def _comparison_sentences(analysis: Analysis) -> list[str]:
    out = []
    options = analysis.options
    family = (len(analysis.comparisons), "comparisons")
    for _, c in analysis.comparisons.iterrows():
        a, b = md_text(c["method_a"]), md_text(c["method_b"])
        interval = f"95% interval {_points(c['ci_low'], c['ci_high'])}, {md_text(c['ci_method'])}; {_tests_text(c, options, family)}"
        if c["verdict"] == f"{c['method_a']} beats {c['method_b']}":
            out.append(f"- **{a} beats {b}**: fooling rate higher by {100 * c['difference']:.1f} points ({interval}).")
        else:
            out.append(f"- {a} vs {b}: {md_text(VERDICT_EXPLANATIONS.get(c['verdict'], c['verdict']))} ({100 * c['difference']:+.1f} points, {interval}).")
    return out


def _protocol_lines(analysis: Analysis, protocol: dict | None) -> list[str]:
    trials = analysis.trials
    per_person = trials.groupby("participant")["phase"].value_counts().unstack(fill_value=0)
    lines = [f"- Mode: **{analysis.mode}** ({'two images side by side, pick the real one; chance 50%' if analysis.mode == 'pair' else 'one image at a time, real or fake?'})."]
    if protocol:
        keep = ["practice_trials", "test_trials", "catch_rate", "exposure_ms", "image_size", "seed"]
        lines.append("- Stored protocol: " + ", ".join(f"{k} = {md_text(protocol[k])}" for k in keep if k in protocol) + ".")
    phases = ", ".join(f"{ph}: {int(per_person[ph].median()) if ph in per_person else 0}" for ph in ("practice", "test", "catch"))
    lines.append(f"- Trials assigned per participant (median): {phases}.")
    lines.append(f"- Methods: {', '.join(md_text(m) for m in analysis.methods)}; {trials['image_key'].nunique()} source images in the trials.")
    o = analysis.options
    lines.append(
        f"- Analysis: test trials only (practice and catch trials excluded); participants excluded if they did not finish or "
        f"got fewer than {o.catch_threshold:.0%} of catch trials right; answers under {o.min_rt_ms:g} ms flagged"
        f"{' and dropped' if o.drop_fast else ' (kept; --drop-fast drops them)'}; {o.n_boot} bootstrap replicates, seed {o.seed}; "
        f"verdicts {'Holm-corrected' if o.correction == 'holm' else 'not corrected for multiplicity'}, and given only with at least "
        f"{o.min_participants} participants and {o.min_images} images."
    )
    return lines


STATISTICS_NOTES = """\
- **Wilson interval**: the score interval for a binomial proportion; it treats every trial as independent, so with
  answers that cluster by participant and image it is too narrow. Shown for comparison; no verdict uses it.
- **Cluster bootstrap** (two-way, `survey.stats.TwoWayBootstrap`): each replicate resamples participants with
  replacement and, independently, images with replacement, and keeps every trial whose participant and image were
  both drawn, weighted by the product of their multiplicities (Owen 2007's pigeonhole bootstrap). That product
  resampling alone counts trial-level noise about three times, so from the same draws we also take the
  participants-only and images-only replicates and use the two-way cluster variance
  V = 2·V_participants + 2·V_images − V_both (Cameron, Gelbach & Miller 2011), floored at the larger one-way variance;
  the interval is the percentile interval of the product replicates rescaled about the estimate to that variance.
  Differences between methods use the same replicate draws for both methods.
- **At 0% or 100%** every replicate is identical and the bootstrap interval has no width. The reported interval is
  then Wilson's on an effective sample size n / D, D being the largest design effect (bootstrap variance over binomial
  variance) among the study's other rates, or, if none has one, the fewer of the rate's participants and images.
  `ci_method` names the interval used. Differences involving such a rate use MOVER (Zou & Donner 2008: the
  difference's interval from the two rates' own intervals, treating them as independent, which errs wide here).
- **p-values** respect the clustering: each inverts the reported interval (the p below which the interval would
  exclude the null): twice the share of rescaled bootstrap replicates beyond the null, the score test on the same
  effective n at 0% or 100%, or the level at which the MOVER interval reaches 0. Pair mode tests each method against
  50%; single mode against the real photos' rate. The exact binomial test, which treats trials as independent, is
  kept in `per_method.csv` as `p_naive_binomial` for reference only.
- **Multiple comparisons**: verdicts are Holm-corrected (Holm 1979) within each family, the per-method tests and the
  pairwise comparisons, so the chance of any false verdict in a family stays at most 5% (`--correction none` turns
  this off). The intervals shown are the uncorrected 95% intervals.
- **Small studies**: with fewer than the stated numbers of participants or images, the cluster intervals cover the
  true rate less often than 95% in simulations (`python -m survey.coverage`, results/report-coverage/); the report then
  warns at the top and gives no verdicts.
- **d'** (single mode): z(real photos judged real) − z(colorizations judged real), pooled over trials, with the
  log-linear correction (0.5 added to each count, 1 to each total) so rates of 0 or 1 stay finite. Its interval is
  the cluster bootstrap's, or MOVER on the z scale when a rate is at 0% or 100%.
- **Fleiss' kappa**: items are stimuli (image × method) answered by at least two included participants; the
  categories are the two answers (pair: picked the colorization or the real photo; single: real or fake). Items have
  different numbers of raters; per-item agreement is averaged with equal weight and chance agreement uses the pooled
  answer shares, which is Fleiss (1971) exactly when every item has the same number of raters.
"""


def simulated_banner(simulated: dict) -> list[str]:
    """The lines that open a simulated study's report: what made the answers, and the true rates they were drawn with."""
    runs = simulated.get("runs") or []
    lines = [
        "**SIMULATED DATA.** Every answer in this report was generated by `survey.simulate` from a model with known true "
        "rates; no person took part. It exists to check the analysis, not to rank methods."
    ]
    for run in runs:
        rates = ", ".join(f"{md_text(m)} {100 * float(r):g}%" for m, r in sorted(run.get("true_rates", {}).items()))
        extra = f"; real photos judged real {100 * float(run['real_rate']):g}% (single mode)" if "real_rate" in run else ""
        lines.append(
            f"True fooling rates of the {run.get('participants', '?')} simulated participants added with seed "
            f"{run.get('seed', '?')}: {rates}{extra}; participant and image effects SD {run.get('participant_sd', 0):g} and "
            f"{run.get('image_sd', 0):g} (logit scale)."
        )
    if not runs:
        lines.append("No simulated answers were added yet.")
    return lines


def method_descriptions(records: pd.DataFrame | None, methods: Sequence[str]) -> pd.DataFrame:
    """One row per method: how its fakes were made (what, model, checkpoint, settings, hints), from
    the records stored with them (`Store.stimulus_records`); "not recorded" for fakes stored without."""
    rows = []
    for method in methods:
        made = [] if records is None else [r for r in records.loc[records["method"] == method, "record"] if isinstance(r, dict)]
        first = made[0] if made else {}
        settings = first.get("settings") or {}
        hinted = [len(r["hint_points"]) for r in made if isinstance(r.get("hint_points"), list)]
        rows.append(
            {
                "method": method,
                "made by": {"model": "colorization model", "untrained": "untrained generator", "baseline": "baseline",
                            "function": "a function"}.get(first.get("kind"), "not recorded"),  # fmt: skip
                "model": first.get("model") or first.get("baseline") or first.get("function") or "",
                "checkpoint": first.get("checkpoint") or (f"random weights, seed {first['untrained_seed']}" if "untrained_seed" in first else ""),
                "weights (sha256)": first.get("weights_sha256") or "",
                "settings": ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None),
                "hints per photo": (f"{first.get('hints', 0)} simulated from the real photo (seeded per photo)"
                                    if first.get("hints") else "none"),  # fmt: skip
                "fakes made": len(made) if made else "",
            }
        )
        if hinted and len(set(hinted)) > 1:
            rows[-1]["hints per photo"] += f" ({min(hinted)} to {max(hinted)} recorded)"
    return pd.DataFrame(rows)


def _methods_markdown(methods: Sequence[str], records: pd.DataFrame | None) -> list[str]:
    table = method_descriptions(records, methods)
    return [
        "How each method's fakes were made, from the record stored with every fake (`survey.build`): the model and its "
        "checkpoint, the inference settings it ran at, and the colour hints it was given (each fake's own hints are in the "
        "database, `Store.stimulus_records`).",
        "",
        _md_table(table),
    ]


def _real_photos_lines(protocol: dict | None, records: pd.DataFrame | None) -> list[str]:
    """What the study did to its real photos' colour, from the protocol and the real photos' records."""
    if not protocol or not protocol.get("equal_chroma_bandwidth", False):
        return ["- Real photos: shown with their colour at full resolution (as photographed; equal_chroma_bandwidth off)."]
    made = [] if records is None else [r for r in records.loc[records["method"] == REAL, "record"] if isinstance(r, dict)]
    shapes = sorted({(tuple(r["chroma_shape"]), float(r.get("detail_blur", 0.0)), r["as_method"]) for r in made if "chroma_shape" in r})
    if not shapes:
        return ["- Real photos: shown at full colour resolution: no method of the study renders its colour at a smaller size."]
    described = "; ".join(
        f"{h}x{w}{f' softened by a {blur:g}-pixel Gaussian' if blur else ''} beside {md_text(method)}" for (h, w), blur, method in shapes
    )
    return [
        f"- Real photos shown with colour at the model's resolution: each one's colour taken down to the model's render shape "
        f"({described}) and back up as that model's colour is, on the gray lightness its fakes are made from, so how finely "
        "the colour was resolved does not tell real from fake (equal_chroma_bandwidth)."
    ]


def write_report(
    analysis: Analysis,
    out_dir: str | Path,
    *,
    study: str,
    command: str,
    db_url: str,
    simulated: dict | None = None,
    protocol: dict | None = None,
    fetch_png: Callable[[str, str], bytes | None] | None = None,
    gallery_size: int = 3,
    data_command: str | None = None,
    records: pd.DataFrame | None = None,
) -> Path:
    """Write report.md, CSV tables and PNG figures into `out_dir`; returns the path of report.md.

    simulated: the study record's "simulated" entry (`survey.simulate` wrote it, with its true
    rates), which titles the report SIMULATED; None for a study of people. records:
    `Store.stimulus_records`, from which each method and the real photos are described.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    a = analysis
    files: list[str] = []

    def save_csv(frame: pd.DataFrame, name: str) -> None:
        frame.to_csv(out / name, index=False)
        files.append(name)

    def save_png(fig: Figure, name: str) -> None:
        fig.savefig(out / name, dpi=DPI)
        files.append(name)

    save_csv(_public_columns(a.trials), "trials.csv")
    save_csv(a.participants, "participants.csv")

    title = f"{'SIMULATED — ' if simulated else ''}Study report: {md_text(study)}"
    md = [f"# {title}", ""]
    if simulated:
        md += [*(f"> {line}" for line in simulated_banner(simulated)), ""]
    if a.small_study:
        md += [f"> **WARNING: {md_text(a.small_study)}**", ""]
    md += [
        f"- Generated: {stamp}",
        f"- Database: {md_code(masked_url(db_url))}",
        f"- Command: {md_code(command)}",
        *([f"- Data made by: {md_code(data_command)}"] if data_command else []),
        "",
        "## Protocol",
        "",
        *_protocol_lines(a, protocol),
        *_real_photos_lines(protocol, records),
        "",
        "## Methods",
        "",
        *_methods_markdown(a.methods, records),
        "",
        "## Participants and quality control",
        "",
    ]
    qc = a.participants
    not_finished = int((~qc["finished"]).sum())
    failed_catch = int(qc["reason"].str.contains("catch").sum())
    md += [
        f"- Started: {len(qc)}; finished: {int(qc['finished'].sum())}; excluded: {int(qc['excluded'].sum())} "
        f"(did not finish: {not_finished}; failed catch trials: {failed_catch}; both reasons can apply); "
        f"included: {int((~qc['excluded']).sum())}.",
        f"- Answers faster than {a.options.min_rt_ms:g} ms: {a.fast_total} of {int(a.trials['answered'].sum())} answers "
        f"({int(a.trials.loc[a.trials['fast'] & ~a.trials['excluded_participant']].shape[0])} from included participants); "
        f"{'dropped from' if a.options.drop_fast else 'kept in'} the analysis.",
        f"- Answers slower than the protocol's limit (flagged when stored): {int(qc['slow_answers'].sum())}; trials "
        f"served again after their exposure window: {int(qc['reshown_trials'].sum())}, "
        f"{'dropped from' if a.options.exclude_reshown else 'kept in'} the analysis.",
        "- `trials.csv` has every trial with the decision on it (`used`, `not_used_reason`, `excluded_participant`, "
        "`exclusion_reason`, `fast`; the trial kind is `phase`), so a re-analysis need not redo quality control.",
        "",
    ]
    excluded = qc[qc["excluded"]][["participant", "answered", "assigned", "catch_correct", "catch_answered", "fast_answers", "reason"]]
    if len(excluded):
        md += ["Excluded participants:", "", _md_table(excluded), ""]
    save_png(response_time_figure(a.trials, min_rt_ms=a.options.min_rt_ms), "response_times.png")
    md += ["![Response times](response_times.png)", ""]

    if a.summary is None:
        md += ["## Fooling rate per method", "", f"**{md_text(a.problem)}**", ""]
    else:
        md += _results_markdown(a, simulated=bool(simulated), save_csv=save_csv, save_png=save_png, fetch_png=fetch_png, gallery_size=gallery_size)

    md += ["## Statistics used", "", STATISTICS_NOTES, "## Files", ""]
    md += [f"- [`{name}`]({name})" for name in files]
    md.append("")
    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path


def _results_markdown(a: Analysis, *, simulated: bool, save_csv, save_png, fetch_png, gallery_size: int) -> list[str]:
    """The report's sections from the per-method table to the gallery."""
    save_csv(a.summary, "per_method.csv")
    save_csv(a.per_image, "per_image.csv")
    save_png(fooling_rate_figure(a.summary, title=("SIMULATED — " if simulated else "") + ("Fooling rate per method" if a.mode == "pair" else "Share judged real")), "fooling_rate.png")
    table = a.summary.assign(
        wilson=[_interval(lo, hi) for lo, hi in zip(a.summary["wilson_low"], a.summary["wilson_high"])],
        interval=[_interval(lo, hi) for lo, hi in zip(a.summary["ci_low"], a.summary["ci_high"])],
    )
    cols = ["method", "n_trials", "n_participants", "n_images", "n_judged_real", "rate", "interval", "ci_method", "wilson", "p_cluster"]
    if a.options.correction == "holm":
        cols.append("p_adjusted")
    cols.append("verdict")
    if a.mode == "single":
        table = table.assign(vs_real=[_points(lo, hi) for lo, hi in zip(table["diff_vs_real_low"], table["diff_vs_real_high"])])
        cols[cols.index("p_cluster"):cols.index("p_cluster")] = ["diff_vs_real", "vs_real"]
        cols += ["d_prime", "d_prime_low", "d_prime_high"]
    fmt = {"rate": "pct", "diff_vs_real": "points", "p_cluster": "p", "p_adjusted": "p", "d_prime": "f2", "d_prime_low": "f2", "d_prime_high": "f2"}
    heads = {
        "n_trials": "trials",
        "n_participants": "participants",
        "n_images": "images",
        "n_judged_real": "picked as real" if a.mode == "pair" else "judged real",
        "rate": "fooling rate" if a.mode == "pair" else "judged real (%)",
        "interval": "95% interval",
        "ci_method": "interval from",
        "wilson": "Wilson 95% (trials independent)",
        "p_cluster": "p vs 50% (clustered)" if a.mode == "pair" else "p vs real photos (clustered)",
        "p_adjusted": "p, Holm-adjusted",
        "diff_vs_real": "minus real photos",
        "vs_real": "95% interval of the difference",
        "d_prime": "d'",
        "d_prime_low": "d' 95% low",
        "d_prime_high": "d' 95% high",
    }
    md = ["## Fooling rate per method", ""]
    if a.mode == "single":
        md += [
            "Rows are fake methods (their rate is the fooling rate) and `real` (how often real photos were judged real). With one "
            "image at a time 50% is not chance, so each method is compared with the real photos: the difference of the two "
            "judged-real rates, and d'.",
            "",
        ]
    md += [_md_table(table[cols], fmt, heads), "", *_method_sentences(a), "", "![Fooling rate per method](fooling_rate.png)", ""]
    for note in a.notes:
        md += [f"> Note: {md_text(note)}", ""]
    md += [_power_note(a), ""]

    md += ["## Method comparisons", ""]
    if a.comparisons is None:
        md += ["Fewer than two methods have answers, so there is nothing to compare.", ""]
    else:
        save_csv(a.comparisons, "comparisons.csv")
        correction = (
            f"Verdicts are Holm-corrected over the {len(a.comparisons)} comparisons; the intervals are the uncorrected 95% ones."
            if a.options.correction == "holm" and len(a.comparisons) > 1
            else "With one comparison there is nothing to correct for."
            if a.options.correction == "holm"
            else "Verdicts are not corrected for multiple comparisons (--correction none)."
        )
        md += [
            f"Difference in fooling rate (higher minus lower) with its 95% interval and clustered p-value. {correction} "
            "\"A beats B\" is said only when the (adjusted) p-value is below 0.05.",
            "",
            _md_table(
                a.comparisons.drop(columns=["boot_low", "boot_high"]),
                {"rate_a": "pct", "rate_b": "pct", "difference": "points", "ci_low": "points", "ci_high": "points", "p_cluster": "p", "p_adjusted": "p"},
                {"ci_low": "95% low", "ci_high": "95% high", "ci_method": "interval from", "p_cluster": "p (clustered)", "p_adjusted": "p, Holm-adjusted"},
            ),
            "",
            *_comparison_sentences(a),
            "",
        ]

    md += ["## Per-image results", ""]
    save_png(per_image_figure(a.per_image, mode=a.mode), "per_image.png")
    md += [*_per_image_markdown(a.per_image), "", "![Per-image rates](per_image.png)", ""]

    md += ["## Agreement between raters", ""]
    ag = a.agreement
    if ag["items"] == 0:
        md += ["No stimulus was answered by two or more included participants, so agreement cannot be measured.", ""]
    else:
        md += [
            f"Fleiss' kappa = **{ag['kappa']:.3f}** over {ag['items']} of {ag['items_total']} stimuli (those answered by at least "
            f"two included participants; raters per stimulus: min {ag['raters_min']}, median {ag['raters_median']:g}, max {ag['raters_max']}). "
            "0 is the agreement expected by chance alone, 1 is perfect agreement"
            + (" (in pair mode: agreement on whether the colorization or the real photo is the real one)." if a.mode == "pair" else "."),
            "",
        ]

    md += ["## Gallery: most and least convincing colorizations", ""]
    gallery = _gallery(a, fetch_png, gallery_size)
    if gallery is None:
        md += ["The stimulus images could not be read from the database, so there is no gallery.", ""]
    elif not gallery:
        md += ["No colorization has answers yet.", ""]
    else:
        save_png(gallery_figure(gallery), "gallery.png")
        md += [
            f"The {gallery_size} colorizations (image × method) most and least often taken for real, each beside its "
            "real photo; ranked by the lower (most) and upper (least) Wilson bound, so one lucky answer does not top the list.",
            "",
            "![Gallery](gallery.png)",
            "",
        ]
    return md


def _power_note(a: Analysis) -> str:
    """How many photos the verdicts need, and what this study has behind each rate."""
    o = a.options
    behind = ", ".join(
        f"{md_text(row.method)} {row.n_images} photo(s) and {row.n_participants} participant(s)" for row in a.summary.itertuples() if row.n_trials
    )
    return (
        f"**Power.** A verdict needs at least {o.min_images} photos and {o.min_participants} participants behind every rate it "
        f"rests on (here: {behind}). With one method per photo, the default design of a public study, each method is judged on "
        f"photos of its own, so such a study needs {o.min_images} photos per method at the very least and more to see a small "
        "difference: `results/report-coverage-one-method/coverage.md` gives, for 5 to 40 photos per method, how often equal "
        "methods are called different and how often 30% is told from 40%."
    )


def _per_image_markdown(per_image: pd.DataFrame) -> list[str]:
    """The per-image table: each cell "k/n" (judged real of shown) with its rate; with many images the
    10 least and 10 most convincing, ranked by the Wilson bounds of all their answers pooled (the
    upper and the lower one), so an image with 2 answers of 2 does not outrank one with 12 of 15."""
    cells = per_image.assign(cell=[f"{k}/{n} ({_pct(k / n, 0)})" for k, n in zip(per_image["n_judged_real"], per_image["n_trials"])])
    wide = cells.pivot(index="image_key", columns="method", values="cell").fillna("n/a")
    pooled = per_image[per_image["stimulus"] == "fake"].groupby("image_key")[["n_judged_real", "n_trials"]].sum()
    bounds = pd.DataFrame(
        [wilson_interval(k, n) for k, n in zip(pooled["n_judged_real"], pooled["n_trials"])], index=pooled.index, columns=["low", "high"]
    )
    order = list(bounds.sort_values(["high", "low"]).index) + [key for key in wide.index if key not in bounds.index]
    caption = (
        "Colorizations judged real per image and method, as answers judged real / answers (`n/a`: not shown to an included "
        "participant), least convincing first: ranked by the upper Wilson bound of each image's answers pooled over its "
        "fakes. Full table with the bounds: `per_image.csv`."
    )
    if len(order) > 30:
        most = list(bounds.sort_values(["low", "high"], ascending=False).index[:10])
        order = [key for key in order if key not in most][:10] + most[::-1]
        caption = (
            "The 10 least convincing images (lowest upper Wilson bound of their answers pooled over their fakes) and the 10 "
            "most convincing (highest lower bound), each cell answers judged real / answers. Full table: `per_image.csv`."
        )
    shown = wide.loc[order].reset_index()
    return [caption, "", _md_table(shown)]


def _gallery(a: Analysis, fetch_png, size: int):
    if fetch_png is None:
        return None
    fakes = a.per_image[a.per_image["stimulus"] == "fake"]
    if fakes.empty:
        return []
    fakes = fakes.assign(
        low=[wilson_interval(k, n)[0] for k, n in zip(fakes["n_judged_real"], fakes["n_trials"])],
        high=[wilson_interval(k, n)[1] for k, n in zip(fakes["n_judged_real"], fakes["n_trials"])],
    )
    # Ranked by the Wilson bounds, not the raw rate, so "2 of 2" does not beat "12 of 15".
    top = fakes.sort_values(["low", "rate"], ascending=[False, False]).head(size)
    bottom = fakes[~fakes.index.isin(top.index)].sort_values(["high", "rate"], ascending=[True, True]).head(size)
    items = []
    try:
        for label, part in (("most convincing", top), ("least convincing", bottom)):
            for _, r in part.iterrows():
                caption = f"{label}: {r['method']} / {r['image_key']}\n{int(r['n_judged_real'])} of {int(r['n_trials'])} taken for real"
                items.append((caption, fetch_png(r["image_key"], r["method"]), fetch_png(r["image_key"], REAL)))
    except Exception as exc:  # a gallery is a nicety; the numbers must not depend on it
        logger.warning("Could not read stimulus images for the gallery: %s", exc)
        return None
    return items


# ----------------------------------------------------------------------------- database and CLI


def add_analysis_arguments(parser: argparse.ArgumentParser, *, statistics: bool = True) -> None:
    """The analysis flags (quality control; with `statistics`, also bootstrap, correction and study-size thresholds).

    Shared by `survey.report` and `survey.admin export`, so an export makes the report's decisions.
    """
    default = ReportOptions()
    parser.add_argument("--catch-threshold", type=float, default=default.catch_threshold,
                        help="exclude participants whose catch-trial accuracy is below this")  # fmt: skip
    parser.add_argument("--min-rt-ms", type=float, default=default.min_rt_ms, help="flag answers faster than this")
    parser.add_argument("--drop-fast", action="store_true", help="drop the flagged too-fast answers from the analysis")
    if not statistics:
        return
    parser.add_argument("--bootstrap", type=int, default=default.n_boot, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=default.seed, help="bootstrap seed")
    parser.add_argument("--correction", choices=CORRECTIONS, default=default.correction,
                        help="family-wise control of the verdicts (default: holm)")  # fmt: skip
    parser.add_argument("--min-participants", type=int, default=default.min_participants,
                        help="fewer participants: warn and give no verdicts")  # fmt: skip
    parser.add_argument("--min-images", type=int, default=default.min_images, help="fewer images: warn and give no verdicts")


def options_from_arguments(args: argparse.Namespace) -> ReportOptions:
    """ReportOptions from the flags of add_analysis_arguments (defaults for those not given)."""
    names = {"catch_threshold": "catch_threshold", "min_rt_ms": "min_rt_ms", "drop_fast": "drop_fast", "n_boot": "bootstrap",
             "seed": "seed", "correction": "correction", "min_participants": "min_participants", "min_images": "min_images"}  # fmt: skip
    return ReportOptions(**{field_name: getattr(args, flag) for field_name, flag in names.items() if hasattr(args, flag)})


def study_options(options: ReportOptions, protocol) -> ReportOptions:
    """`options` with the study's own analysis choice from its protocol (`Protocol` or its dict): whether
    trials re-shown after their exposure are excluded. The report, the admin export and the app all use it."""
    reshown = protocol["reshown_trials"] if isinstance(protocol, dict) else protocol.reshown_trials
    return dataclasses.replace(options, exclude_reshown=reshown == "exclude")


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this report, every option spelled out, password hidden."""
    parts = ["python", "-m", "survey.report", "--db", masked_url(args.db), "--study", args.study, "--out", str(args.out)]
    parts += ["--catch-threshold", f"{args.catch_threshold:g}", "--min-rt-ms", f"{args.min_rt_ms:g}"]
    parts += ["--bootstrap", str(args.bootstrap), "--seed", str(args.seed), "--correction", args.correction]
    parts += ["--min-participants", str(args.min_participants), "--min-images", str(args.min_images)]
    if args.drop_fast:
        parts.append("--drop-fast")
    if args.data_command:
        parts += ["--data-command", args.data_command]
    return " ".join(shlex.quote(p) for p in parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m survey.report", description="Evaluation report of a real-or-fake study.")
    parser.add_argument("--db", default=None, help="database URL (default: SURVEY_DB_URL or sqlite:///survey.sqlite)")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--out", default=None, type=Path, help="output folder (default: results/study-NAME/)")
    add_analysis_arguments(parser)
    parser.add_argument("--data-command", default=None, help="the command that produced the data, recorded in the report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from .settings import database_url
    from .store import Store

    args.db = database_url(args.db)
    args.out = args.out or Path("results") / f"study-{args.study}"
    try:
        options = options_from_arguments(args)
        store = Store(args.db)
        summary = next((s for s in store.list_studies() if s.name == args.study), None)
        if summary is None:
            raise ReportError(f"There is no study called '{args.study}' in {store!r}.")
        frame = store.trials_frame(args.study)
        if frame.empty:
            raise ReportError(f"The study '{args.study}' has no participants yet, so there is nothing to report.")
        protocol = store.get_protocol(args.study).to_dict()
        options = study_options(options, protocol)
        analysis = analyse(frame, methods=summary.methods, options=options)
        path = write_report(
            analysis, args.out, study=args.study, command=command_line(args), db_url=args.db,
            simulated=store.study_record(args.study).get("simulated"), protocol=protocol,
            fetch_png=lambda key, method: store.stimulus_png(args.study, key, method), data_command=args.data_command,
            records=store.stimulus_records(args.study),
        )  # fmt: skip
    except SurveyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path} ({analysis.problem or 'report complete'}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
