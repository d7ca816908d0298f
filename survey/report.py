"""Evaluation report of a real-or-fake study: pandas summaries, honest intervals, plots.

    python -m survey.report --db URL --study NAME --out results/study-NAME/ \
        [--catch-threshold 0.5] [--min-rt-ms 300] [--drop-fast] [--bootstrap 2000] [--seed 0]

reads `Store(url).trials_frame(study)` and writes `report.md` with CSV tables and PNG figures.

What is estimated (test trials of participants who pass quality control):

- Fooling rate per method. Pair mode: share of trials where the colorization was picked as the
  real photo (chance: 50%). Single mode: share of the method's colorizations judged real, the
  share of real photos judged real, and d' = z(real judged real) - z(fake judged real) with the
  log-linear correction. Rates pool trials (each trial counts once).
- Each rate has a 95% Wilson interval (trials treated as independent), a 95% two-way cluster
  bootstrap interval (participants and images resampled; see `survey.stats.TwoWayBootstrap`),
  and an exact two-sided binomial test against 50%. The Wilson interval and the binomial test
  ignore that answers from one person, or about one image, are alike; when the bootstrap
  interval is wider, it is the one to believe.
- Method comparisons: differences in fooling rate with the same bootstrap (the same replicate
  draws for every method, so the pairing is kept). "A beats B" only when the 95% interval of
  the difference excludes 0.
- Quality control: participants who did not finish, or whose catch-trial accuracy is below the
  threshold, are excluded; answers faster than the floor are counted and, with --drop-fast, dropped.
  Answers the store flagged slow (over the protocol's max_response_ms) are counted; trials served
  again after their exposure window are counted, and dropped when the protocol's reshown_trials
  is "exclude".
- Agreement: Fleiss' kappa over stimuli (image x method) rated by two or more included raters,
  generalised to unequal rater counts (`survey.stats.fleiss_kappa`).

`summary_table(frame)` and `fooling_rate_figure(table)` give the admin view the same table and
main plot live. The gallery's images come from `Store.stimulus_png`. Figures use matplotlib's object API (no pyplot, no GUI backend).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import itertools
import logging
import math
import shlex
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from . import SurveyError
from .simulate import SIMULATED_PREFIX
from .stats import TwoWayBootstrap, binomial_test, dprime, fleiss_kappa, wilson_interval

logger = logging.getLogger(__name__)

__all__ = [
    "Analysis",
    "ReportError",
    "ReportOptions",
    "analyse",
    "fooling_rate_figure",
    "quality_control",
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
DPI = 100


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

    def __post_init__(self) -> None:
        if not 0.0 <= self.catch_threshold <= 1.0:
            raise ReportError(f"The catch threshold must be between 0 and 1, not {self.catch_threshold}.")
        if self.min_rt_ms < 0:
            raise ReportError("The response-time floor cannot be negative.")
        if self.n_boot < 10:
            raise ReportError("Use at least 10 bootstrap replicates (2000 for a report).")
        if not 0.5 <= self.confidence < 1.0:
            raise ReportError("The confidence level must be between 0.5 and 1.")


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


@dataclass
class Analysis:
    """Everything the report shows. `summary` is None when no test answers survive quality control
    (then `problem` says why, in one sentence)."""

    mode: str
    options: ReportOptions
    methods: list[str]
    trials: pd.DataFrame  # every assigned trial, with QC columns added
    participants: pd.DataFrame  # quality_control()
    used: pd.DataFrame  # the test trials the estimates use
    summary: pd.DataFrame | None = None
    comparisons: pd.DataFrame | None = None
    per_image: pd.DataFrame | None = None
    agreement: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    problem: str | None = None

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
    """Quality control, per-method rates with intervals, comparisons, per-image table, agreement.

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

    participants = quality_control(trials, catch_threshold=options.catch_threshold, min_rt_ms=options.min_rt_ms)
    excluded = set(participants.loc[participants["excluded"], "participant"])
    trials["excluded_participant"] = trials["participant"].isin(excluded)
    trials["fast"] = trials["answered"] & (trials["response_ms"] < options.min_rt_ms)
    y = trials["fooled_value"] if mode == "pair" else trials["judged_real_value"]
    trials["outcome"] = y
    trials["used"] = (
        (trials["phase"] == "test")
        & trials["answered"]
        & ~trials["excluded_participant"]
        & ~(trials["fast"] & options.drop_fast)
        & ~(_flag_column(trials, "reshown") & options.exclude_reshown)
        & trials["outcome"].notna()
    )
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
    if n_people < 2 or n_images < 2:
        analysis.notes.append(
            f"Only {n_people} participant(s) and {n_images} image(s) contribute test answers; the cluster "
            "bootstrap needs at least two of each, so only Wilson intervals are given. Do not generalise "
            "from one person or one image."
        )
    for method in all_methods:
        if not (used["method"] == method).any():
            analysis.notes.append(f"Method '{method}' has no usable test answers (nobody who passed quality control saw it).")

    boot, columns = _bootstrap(used, mode, all_methods, options)
    analysis.summary = _summary(used, mode, all_methods, boot, columns, options)
    if summary_only:
        return analysis
    analysis.comparisons = _comparisons(analysis.summary, boot, columns, options)
    analysis.per_image = _per_image(used, mode)
    analysis.agreement = _agreement(used)
    if analysis.comparisons is not None and len(analysis.comparisons) > 1:
        analysis.notes.append(
            f"{len(analysis.comparisons)} pairwise comparisons are made at 95% each, without correction for "
            "multiplicity: among many comparisons of equally good methods, about 1 in 20 will look different by chance."
        )
    return analysis


def _bootstrap(used: pd.DataFrame, mode: str, methods: list[str], options: ReportOptions):
    """One two-way bootstrap over the used trials; value columns (n, k) per method (and real)."""
    groups = list(methods) + ([REAL] if mode == "single" else [])
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


def _summary(used, mode, methods, boot, columns, options) -> pd.DataFrame:
    method = used["method"].to_numpy()
    outcome = used["outcome"].to_numpy(dtype=float)
    person = used["participant"].to_numpy()
    image = used["image_key"].to_numpy()
    rows = []
    groups = list(methods) + ([REAL] if mode == "single" else [])
    counts = {}
    for name in groups:
        mask = method == name
        counts[name] = (int(mask.sum()), int(outcome[mask].sum()))
    for name in groups:
        mask = method == name
        n, k = counts[name]
        lo, hi = wilson_interval(k, n, confidence=options.confidence)
        bi = boot.interval(_rate(columns[name]), confidence=options.confidence, bounds=(0.0, 1.0))
        row = {
            "method": name,
            "stimulus": "real" if name == REAL else "fake",
            "n_trials": n,
            "n_participants": len(pd.unique(person[mask])),
            "n_images": len(pd.unique(image[mask])),
            "n_judged_real": k,
            "rate": k / n if n else math.nan,
            "wilson_low": lo,
            "wilson_high": hi,
            "boot_low": bi.low,
            "boot_high": bi.high,
            "boot_se": bi.se,
            "p_value": binomial_test(k, n, p=CHANCE),
        }
        if mode == "single":
            if name == REAL:
                row.update(d_prime=math.nan, d_prime_low=math.nan, d_prime_high=math.nan)
            else:
                (rn, rk), (fn, fk) = columns[REAL], columns[name]
                d = boot.interval(lambda s: dprime(s[..., rk], s[..., rn], s[..., fk], s[..., fn]), confidence=options.confidence)
                real_n, real_k = counts[REAL]
                value = dprime(real_k, real_n, k, n) if n and real_n else math.nan
                row.update(d_prime=value, d_prime_low=d.low, d_prime_high=d.high)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.insert(0, "mode", mode)
    return table


def _comparisons(summary: pd.DataFrame, boot, columns, options) -> pd.DataFrame | None:
    fakes = summary[(summary["stimulus"] == "fake") & (summary["n_trials"] > 0)]
    if len(fakes) < 2:
        return None
    rows = []
    for (_, a), (_, b) in itertools.combinations(fakes.iterrows(), 2):
        if b["rate"] > a["rate"]:
            a, b = b, a
        fa, fb = _rate(columns[a["method"]]), _rate(columns[b["method"]])
        bi = boot.interval(lambda s: fa(s) - fb(s), confidence=options.confidence, bounds=(-1.0, 1.0))
        diff = a["rate"] - b["rate"]
        if math.isnan(bi.low):
            verdict = "cannot tell (too few participants or images for an interval)"
        elif bi.low > 0:
            verdict = f"{a['method']} beats {b['method']}"
        elif bi.high < 0:  # possible only with a very skewed bootstrap distribution
            a, b = b, a
            diff, bi = -diff, type(bi)(-bi.estimate, -bi.high, -bi.low, bi.se, bi.se_pigeonhole, bi.reps_used)
            verdict = f"{a['method']} beats {b['method']}"
        else:
            verdict = "no detectable difference"
        rows.append(
            {
                "method_a": a["method"], "method_b": b["method"], "rate_a": a["rate"], "rate_b": b["rate"],
                "difference": diff, "boot_low": bi.low, "boot_high": bi.high, "verdict": verdict,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def _per_image(used: pd.DataFrame, mode: str) -> pd.DataFrame:
    """image_key x method: trials, judged real, rate (fakes; single mode also the real photo)."""
    grouped = used.groupby(["image_key", "method"], sort=True)["outcome"].agg(n_trials="size", n_judged_real="sum").reset_index()
    grouped["n_judged_real"] = grouped["n_judged_real"].astype(int)
    grouped["rate"] = grouped["n_judged_real"] / grouped["n_trials"]
    grouped["stimulus"] = np.where(grouped["method"] == REAL, "real", "fake")
    return grouped[["image_key", "method", "stimulus", "n_trials", "n_judged_real", "rate"]]


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


def summary_table(
    frame: pd.DataFrame,
    *,
    methods: Sequence[str] | None = None,
    catch_threshold: float = 0.5,
    min_rt_ms: float = 300.0,
    drop_fast: bool = False,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per-method fooling rates with Wilson and cluster-bootstrap intervals and binomial p-values.

    `frame` is `Store.trials_frame(study)`. One row per fake method (single mode: and a row
    "real" for real photos). Columns: mode, method, stimulus ("fake"|"real"), n_trials,
    n_participants, n_images, n_judged_real, rate, wilson_low, wilson_high, boot_low, boot_high,
    boot_se, p_value (exact binomial vs 50%); single mode adds d_prime, d_prime_low, d_prime_high.
    `rate` is the fooling rate (pair: colorization picked as real; single: judged real). Raises
    ReportError with a plain sentence when there is nothing to summarise yet.
    """
    options = ReportOptions(catch_threshold=catch_threshold, min_rt_ms=min_rt_ms, drop_fast=drop_fast, n_boot=n_boot, seed=seed, confidence=confidence)
    analysis = analyse(frame, methods=methods, options=options, summary_only=True)
    if analysis.summary is None:
        raise ReportError(analysis.problem or "There is nothing to summarise yet.")
    return analysis.summary


# ----------------------------------------------------------------------------- figures


def _pct(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.{digits}f}%"


def fooling_rate_figure(table: pd.DataFrame, *, title: str | None = None, **summary_options) -> Figure:
    """The main plot: each method's rate with its Wilson (thin) and cluster-bootstrap (thick) 95% intervals.

    `table` is `summary_table(...)`'s result; a trials frame is accepted too (summarised with
    `summary_options`). Pair mode draws the 50% chance line; single mode also the rate at which
    real photos were judged real.
    """
    if "rate" not in table.columns:
        table = summary_table(table, **summary_options)
    mode = str(table["mode"].iloc[0]) if "mode" in table.columns and len(table) else "pair"
    rows = table.reset_index(drop=True)
    fig = Figure(figsize=(max(4.5, 1.1 * len(rows) + 2.5), 3.8), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    rate = rows["rate"].to_numpy(dtype=float)
    for offset, low, high, width, label, colour in (
        (-0.12, "wilson_low", "wilson_high", 1.2, "Wilson 95% (trials independent)", "#555555"),
        (0.12, "boot_low", "boot_high", 3.0, "cluster bootstrap 95% (participants x images)", "#1f77b4"),
    ):
        lo = rows[low].to_numpy(dtype=float)
        hi = rows[high].to_numpy(dtype=float)
        ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(rate)
        # a rescaled bootstrap bound can sit a hair on the wrong side of the estimate: draw it flat.
        ax.errorbar(x[ok] + offset, rate[ok], yerr=[np.maximum(rate[ok] - lo[ok], 0.0), np.maximum(hi[ok] - rate[ok], 0.0)], fmt="none", ecolor=colour, elinewidth=width, capsize=3 if width < 2 else 0, label=label)
    colours = np.where(rows["stimulus"].to_numpy() == "real", "#2ca02c", "#d62728")
    finite = np.isfinite(rate)
    ax.scatter(x[finite], rate[finite], c=list(colours[finite]), zorder=3, s=30)
    for xi in x[~finite]:
        ax.text(xi, 0.05, "no data", ha="center", fontsize=8, color="#777777")
    ax.axhline(CHANCE, ls="--", lw=1, color="#999999", label="50% (chance in pair mode)" if mode == "pair" else "50%")
    ax.set_xticks(x, [f"{m}\n(n={n})" for m, n in zip(rows["method"], rows["n_trials"])], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("picked as the real photo" if mode == "pair" else "judged real")
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_title(title or ("Fooling rate per method" if mode == "pair" else "Share judged real (fakes: fooling rate)"), fontsize=10)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    return fig


def response_time_figure(trials: pd.DataFrame, *, min_rt_ms: float = 300.0) -> Figure:
    """Histogram (log time axis) of answered trials' response times, split by exclusion, with the floor."""
    fig = Figure(figsize=(6, 3.2), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    answered = trials[trials["answered"] & trials["response_ms"].notna() & (trials["response_ms"] > 0)]
    if answered.empty:
        ax.text(0.5, 0.5, "no answered trials", ha="center", va="center", transform=ax.transAxes)
        return fig
    rt = answered["response_ms"].to_numpy(dtype=float)
    lo, hi = max(10.0, min(rt.min(), min_rt_ms) * 0.8), max(rt.max(), min_rt_ms) * 1.25
    bins = np.geomspace(lo, hi, 40)
    excluded = answered["excluded_participant"].to_numpy() if "excluded_participant" in answered else np.zeros(len(rt), bool)
    ax.hist([rt[~excluded], rt[excluded]], bins=bins, stacked=True, color=["#1f77b4", "#ff7f0e"], label=["included participants", "excluded participants"])
    ax.axvline(min_rt_ms, color="#d62728", ls="--", lw=1, label=f"floor {min_rt_ms:g} ms ({int((rt < min_rt_ms).sum())} faster)")
    ax.set_xscale("log")
    ax.set_xlabel("response time (ms, server-side)")
    ax.set_ylabel("answers")
    ax.legend(fontsize=7, frameon=False)
    ax.set_title("Response times", fontsize=10)
    return fig


def per_image_figure(per_image: pd.DataFrame, *, mode: str) -> Figure:
    """Per-image rates for each method: a box over images plus every image as a dot (size ~ trials)."""
    methods = sorted(per_image["method"].unique(), key=lambda m: (m == REAL, m))
    fig = Figure(figsize=(max(4.5, 1.2 * len(methods) + 2.5), 3.5), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    data = [per_image.loc[per_image["method"] == m, "rate"].to_numpy(dtype=float) for m in methods]
    if methods:
        ax.boxplot(data, positions=np.arange(len(methods)), widths=0.5, showfliers=False)
    for i, m in enumerate(methods):
        part = per_image[per_image["method"] == m]
        ax.scatter(i + rng.uniform(-0.18, 0.18, len(part)), part["rate"], s=6 + 4 * part["n_trials"], alpha=0.5, color="#2ca02c" if m == REAL else "#d62728")
    ax.axhline(CHANCE, ls="--", lw=1, color="#999999")
    ax.set_xticks(np.arange(len(methods)), methods, fontsize=8)
    ax.set_ylim(-0.03, 1.03)
    ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    ax.set_ylabel("picked as real, per image" if mode == "pair" else "judged real, per image")
    ax.set_title("Per-image rates (dot size: trials)", fontsize=10)
    return fig


def gallery_figure(items: list[tuple[str, bytes, bytes | None]]) -> Figure:
    """Rows of (caption, colorization PNG, real PNG) drawn side by side."""
    from PIL import Image

    fig = Figure(figsize=(3.8, 1.9 * max(1, len(items))), dpi=DPI, layout="constrained")
    axes = fig.subplots(max(1, len(items)), 2, squeeze=False)
    for row, (caption, fake, real) in zip(axes, items):
        for ax, png, label in ((row[0], fake, "colorization"), (row[1], real, "real photo")):
            ax.set_axis_off()
            if png:
                ax.imshow(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
            else:
                ax.text(0.5, 0.5, "(not stored)", ha="center", va="center", transform=ax.transAxes)
            ax.set_title(f"{caption}" if label == "colorization" else label, fontsize=7)
    return fig


# ----------------------------------------------------------------------------- markdown


def _fmt(value, kind: str) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if kind == "pct":
        return _pct(float(value))
    if kind == "p":
        return "< 0.001" if value < 0.001 else f"{value:.3f}"
    if kind == "f2":
        return f"{value:.2f}"
    if kind == "ms":
        return f"{value:.0f}"
    return str(value)


def _md_table(frame: pd.DataFrame, formats: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> str:
    formats = formats or {}
    headers = headers or {}
    cols = list(frame.columns)
    lines = ["| " + " | ".join(headers.get(c, c) for c in cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], formats.get(c, "")).replace("|", "/") for c in cols) + " |")
    return "\n".join(lines)


def _p_text(p: float) -> str:
    return "n/a" if not np.isfinite(p) else ("< 0.001" if p < 0.001 else f"= {p:.3f}")


def _points(low: float, high: float) -> str:
    return "n/a" if not (np.isfinite(low) and np.isfinite(high)) else f"{100 * low:+.1f} to {100 * high:+.1f} points"


def _interval(low: float, high: float) -> str:
    if not (np.isfinite(low) and np.isfinite(high)):
        return "n/a"
    return f"{100 * low:.1f}–{100 * high:.1f}%"


def _method_sentences(analysis: Analysis) -> list[str]:
    out = []
    s = analysis.summary
    real_row = s[s["method"] == REAL]
    for _, r in s.iterrows():
        if r["n_trials"] == 0:
            out.append(f"- **{r['method']}**: no usable test answers.")
            continue
        what = "picked as the real photo" if analysis.mode == "pair" else "judged real"
        subject = "real photos" if r["method"] == REAL else f"colorizations by **{r['method']}**"
        text = (
            f"- {subject[0].upper() + subject[1:]} were {what} in {_pct(r['rate'])} of {r['n_trials']} trials "
            f"({r['n_participants']} participants, {r['n_images']} images); 95% Wilson {_interval(r['wilson_low'], r['wilson_high'])}, "
            f"cluster bootstrap {_interval(r['boot_low'], r['boot_high'])}; exact binomial test against 50%: p {_p_text(r['p_value'])}."
        )
        if r["method"] != REAL:
            if np.isfinite(r["boot_low"]):
                if analysis.mode == "pair":
                    if r["boot_high"] < CHANCE:
                        text += " The cluster interval lies below 50%: people can tell these from real photos more often than by guessing."
                    elif r["boot_low"] > CHANCE:
                        text += " The cluster interval lies above 50%: the colorizations were picked over the real photos more often than by guessing."
                    else:
                        text += " The cluster interval includes 50%: no detectable difference from guessing (which is not proof that none exists; the interval shows how large one the data allow)."
            if analysis.mode == "single" and np.isfinite(r.get("d_prime", math.nan)):
                d_int = f"{r['d_prime_low']:.2f} to {r['d_prime_high']:.2f}" if np.isfinite(r["d_prime_low"]) else "n/a"
                text += f" d' = {r['d_prime']:.2f} (cluster bootstrap 95%: {d_int}; 0 = indistinguishable from real photos"
                if len(real_row) and real_row["n_trials"].iloc[0] > 0:
                    text += f", which were judged real in {_pct(real_row['rate'].iloc[0])} of trials"
                text += ")."
        out.append(text)
    return out


def _protocol_lines(analysis: Analysis, protocol: dict | None) -> list[str]:
    trials = analysis.trials
    per_person = trials.groupby("participant")["phase"].value_counts().unstack(fill_value=0)
    lines = [f"- Mode: **{analysis.mode}** ({'two images side by side, pick the real one; chance 50%' if analysis.mode == 'pair' else 'one image at a time, real or fake?'})."]
    if protocol:
        keep = ["practice_trials", "test_trials", "catch_rate", "exposure_ms", "image_size", "seed"]
        lines.append("- Stored protocol: " + ", ".join(f"{k} = {protocol[k]}" for k in keep if k in protocol) + ".")
    phases = ", ".join(f"{ph}: {int(per_person[ph].median()) if ph in per_person else 0}" for ph in ("practice", "test", "catch"))
    lines.append(f"- Trials assigned per participant (median): {phases}.")
    lines.append(f"- Methods: {', '.join(analysis.methods)}; {trials['image_key'].nunique()} source images in the trials.")
    o = analysis.options
    lines.append(
        f"- Analysis: test trials only (practice and catch trials excluded); participants excluded if they did not finish or "
        f"got fewer than {o.catch_threshold:.0%} of catch trials right; answers under {o.min_rt_ms:g} ms flagged"
        f"{' and dropped' if o.drop_fast else ' (kept; --drop-fast drops them)'}; {o.n_boot} bootstrap replicates, seed {o.seed}."
    )
    return lines


STATISTICS_NOTES = """\
- **Wilson interval**: the score interval for a binomial proportion; it treats every trial as independent.
- **Cluster bootstrap** (two-way, `survey.stats.TwoWayBootstrap`): each replicate resamples participants with
  replacement and, independently, images with replacement, and keeps every trial whose participant and image were
  both drawn, weighted by the product of their multiplicities (Owen 2007's pigeonhole bootstrap). That product
  resampling alone counts trial-level noise about three times, so from the same draws we also take the
  participants-only and images-only replicates and use the two-way cluster variance
  V = 2·V_participants + 2·V_images − V_both (Cameron, Gelbach & Miller 2011), floored at the larger one-way variance;
  the interval is the percentile interval of the product replicates rescaled about the estimate to that variance.
  Differences between methods use the same replicate draws for both methods.
- **Exact binomial test**: two-sided, against 50%, treating trials as independent (so it is optimistic when people
  or images differ; prefer the cluster interval).
- **d'** (single mode): z(real photos judged real) − z(colorizations judged real), pooled over trials, with the
  log-linear correction (0.5 added to each count, 1 to each total) so rates of 0 or 1 stay finite.
- **Fleiss' kappa**: items are stimuli (image × method) answered by at least two included participants; the
  categories are the two answers (pair: picked the colorization or the real photo; single: real or fake). Items have
  different numbers of raters; per-item agreement is averaged with equal weight and chance agreement uses the pooled
  answer shares, which is Fleiss (1971) exactly when every item has the same number of raters.
"""


def strip_password(url: str) -> str:
    """The database URL with any password replaced by ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy understands: hide anything between ':' and '@'
        import re

        return re.sub(r"(//[^:/@]*:)[^@]*@", r"\1***@", url)


def write_report(
    analysis: Analysis,
    out_dir: str | Path,
    *,
    study: str,
    command: str,
    db_url: str,
    simulated: bool = False,
    protocol: dict | None = None,
    fetch_png: Callable[[str, str], bytes | None] | None = None,
    gallery_size: int = 3,
    data_command: str | None = None,
) -> Path:
    """Write report.md, CSV tables and PNG figures into `out_dir`; returns the path of report.md."""
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

    trial_cols = [c for c in a.trials.columns if not c.endswith("_value") and c != "outcome"]
    save_csv(a.trials[trial_cols], "trials.csv")
    save_csv(a.participants, "participants.csv")

    title = f"{'SIMULATED — ' if simulated else ''}Study report: {study}"
    md = [f"# {title}", ""]
    if simulated:
        md += [
            "> **SIMULATED DATA.** Every answer in this report was generated by `survey.simulate` from a model with known",
            "> true fooling rates; no person took part. It exists to check the analysis, not to rank methods.",
            "",
        ]
    md += [
        f"- Generated: {stamp}",
        f"- Database: `{strip_password(db_url)}`",
        f"- Command: `{command}`",
        *([f"- Data made by: `{data_command}`"] if data_command else []),
        "",
        "## Protocol",
        "",
        *_protocol_lines(a, protocol),
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
        "",
    ]
    excluded = qc[qc["excluded"]][["participant", "answered", "assigned", "catch_correct", "catch_answered", "fast_answers", "reason"]]
    if len(excluded):
        md += ["Excluded participants:", "", _md_table(excluded), ""]
    save_png(response_time_figure(a.trials, min_rt_ms=a.options.min_rt_ms), "response_times.png")
    md += ["![Response times](response_times.png)", ""]

    if a.summary is None:
        md += ["## Fooling rate per method", "", f"**{a.problem}**", ""]
    else:
        save_csv(a.summary, "per_method.csv")
        save_csv(a.per_image, "per_image.csv")
        save_png(fooling_rate_figure(a.summary, title=("SIMULATED — " if simulated else "") + ("Fooling rate per method" if a.mode == "pair" else "Share judged real")), "fooling_rate.png")
        cols = ["method", "n_trials", "n_participants", "n_images", "n_judged_real", "rate", "wilson_low", "wilson_high", "boot_low", "boot_high", "p_value"]
        if a.mode == "single":
            cols += ["d_prime", "d_prime_low", "d_prime_high"]
        fmt = {c: "pct" for c in ("rate", "wilson_low", "wilson_high", "boot_low", "boot_high")} | {"p_value": "p", "d_prime": "f2", "d_prime_low": "f2", "d_prime_high": "f2"}
        heads = {"n_judged_real": "picked as real" if a.mode == "pair" else "judged real", "rate": "fooling rate" if a.mode == "pair" else "judged real (%)", "p_value": "p (binomial vs 50%)"}
        md += ["## Fooling rate per method", ""]
        if a.mode == "single":
            md += ["Rows are fake methods (their rate is the fooling rate) and `real` (how often real photos were judged real).", ""]
        md += [_md_table(a.summary[cols], fmt, heads), "", *_method_sentences(a), "", "![Fooling rate per method](fooling_rate.png)", ""]
        for note in a.notes:
            md += [f"> Note: {note}", ""]

        md += ["## Method comparisons", ""]
        if a.comparisons is None:
            md += ["Fewer than two methods have answers, so there is nothing to compare.", ""]
        else:
            save_csv(a.comparisons, "comparisons.csv")
            md += [
                "Difference in fooling rate (higher minus lower) with a 95% cluster-bootstrap interval. "
                "\"A beats B\" is said only when the interval excludes 0.",
                "",
                _md_table(a.comparisons, {"rate_a": "pct", "rate_b": "pct", "difference": "pct", "boot_low": "pct", "boot_high": "pct"}),
                "",
            ]
            for _, c in a.comparisons.iterrows():
                if c["verdict"].endswith(f"beats {c['method_b']}"):
                    md.append(f"- **{c['method_a']} beats {c['method_b']}**: fooling rate higher by {100 * c['difference']:.1f} points (95% interval {_points(c['boot_low'], c['boot_high'])}).")
                elif c["verdict"] == "no detectable difference":
                    md.append(f"- {c['method_a']} vs {c['method_b']}: no detectable difference ({100 * c['difference']:+.1f} points, 95% interval {_points(c['boot_low'], c['boot_high'])}).")
                else:
                    md.append(f"- {c['method_a']} vs {c['method_b']}: {c['verdict']}.")
            md.append("")

        md += ["## Per-image results", ""]
        save_png(per_image_figure(a.per_image, mode=a.mode), "per_image.png")
        wide = a.per_image.pivot_table(index="image_key", columns="method", values="rate").reset_index()
        wide_n = a.per_image.pivot_table(index="image_key", columns="method", values="n_trials", aggfunc="sum")
        shown = wide
        caption = "Rate per image and method (all images; `n/a`: not shown to an included participant). Full table with counts: `per_image.csv`."
        if len(wide) > 30:
            order = wide.set_index("image_key").mean(axis=1).sort_values()
            keys = list(order.index[:10]) + list(order.index[-10:])
            shown = wide.set_index("image_key").loc[keys].reset_index()
            caption = "The 10 least and 10 most convincing images (mean over methods). Full table: `per_image.csv`."
        md += [caption, "", _md_table(shown, {c: "pct" for c in shown.columns if c != "image_key"}), "", f"Trials per cell: median {float(np.nanmedian(wide_n.to_numpy())):.0f}.", "", "![Per-image rates](per_image.png)", ""]

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

    md += ["## Statistics used", "", STATISTICS_NOTES, "## Files", ""]
    md += [f"- [`{name}`]({name})" for name in files]
    md.append("")
    path = out / "report.md"
    path.write_text("\n".join(md), encoding="utf-8")
    return path


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


def command_line(args: argparse.Namespace) -> str:
    """The command that reproduces this report, every option spelled out, password hidden."""
    parts = ["python", "-m", "survey.report", "--db", strip_password(args.db), "--study", args.study, "--out", str(args.out)]
    parts += ["--catch-threshold", f"{args.catch_threshold:g}", "--min-rt-ms", f"{args.min_rt_ms:g}"]
    parts += ["--bootstrap", str(args.bootstrap), "--seed", str(args.seed)]
    if args.drop_fast:
        parts.append("--drop-fast")
    if args.simulated:
        parts.append("--simulated")
    if args.data_command:
        parts += ["--data-command", args.data_command]
    return " ".join(shlex.quote(p) for p in parts)


def build_parser() -> argparse.ArgumentParser:
    default = ReportOptions()
    parser = argparse.ArgumentParser(prog="python -m survey.report", description="Evaluation report of a real-or-fake study.")
    parser.add_argument("--db", default=None, help="database URL (default: SURVEY_DB_URL or sqlite:///survey.sqlite)")
    parser.add_argument("--study", required=True, help="study name")
    parser.add_argument("--out", default=None, type=Path, help="output folder (default: results/study-NAME/)")
    parser.add_argument("--catch-threshold", type=float, default=default.catch_threshold,
                        help="exclude participants whose catch-trial accuracy is below this")  # fmt: skip
    parser.add_argument("--min-rt-ms", type=float, default=default.min_rt_ms, help="flag answers faster than this")
    parser.add_argument("--drop-fast", action="store_true", help="drop the flagged too-fast answers from the analysis")
    parser.add_argument("--bootstrap", type=int, default=default.n_boot, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=default.seed, help="bootstrap seed")
    parser.add_argument("--simulated", action="store_true",
                        help=f"label the report SIMULATED (automatic for studies named '{SIMULATED_PREFIX}...')")  # fmt: skip
    parser.add_argument("--data-command", default=None, help="the command that produced the data, recorded in the report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from .settings import database_url
    from .store import Store

    args.db = database_url(args.db)
    args.out = args.out or Path("results") / f"study-{args.study}"
    args.simulated = args.simulated or args.study.startswith(SIMULATED_PREFIX)
    try:
        options = ReportOptions(
            catch_threshold=args.catch_threshold, min_rt_ms=args.min_rt_ms, drop_fast=args.drop_fast,
            n_boot=args.bootstrap, seed=args.seed,
        )  # fmt: skip
        store = Store(args.db)
        summary = next((s for s in store.list_studies() if s.name == args.study), None)
        if summary is None:
            raise ReportError(f"There is no study called '{args.study}' in {store!r}.")
        frame = store.trials_frame(args.study)
        if frame.empty:
            raise ReportError(f"The study '{args.study}' has no participants yet, so there is nothing to report.")
        protocol = store.get_protocol(args.study).to_dict()
        options = dataclasses.replace(options, exclude_reshown=protocol["reshown_trials"] == "exclude")
        analysis = analyse(frame, methods=summary.methods, options=options)
        path = write_report(
            analysis, args.out, study=args.study, command=command_line(args), db_url=args.db,
            simulated=args.simulated, protocol=protocol, fetch_png=lambda key, method: store.stimulus_png(args.study, key, method),
            data_command=args.data_command,
        )  # fmt: skip
    except SurveyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path} ({analysis.problem or 'report complete'}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
