"""The report's intervals and tests against simulated studies with known truth: `python -m survey.coverage`.

    python -m survey.coverage --out results/report-coverage --datasets 300 --seed 0

Each scenario draws `--datasets` studies from `survey.simulate.simulate_frame` (the response model of
`python -m survey.simulate`: participant and image effects on the logit scale, the Store's own trial
planner), analyses each with `survey.report.analyse` exactly as a report would, and counts:

- coverage: the share of 95% intervals that contain the true value (rates, differences between
  methods, single mode's difference from real photos and d'), for the reported interval, the
  cluster bootstrap alone, and Wilson's (trials independent);
- zero-width intervals (a rate of exactly 0% or 100% collapses the bootstrap);
- false rejections at 5% where the null is true (a method at 50% in pair mode, or as often judged
  real as real photos in single mode), for the clustered p-value and the naive binomial one;
- studies with at least one false "beats" among equal methods, uncorrected and Holm-corrected;
- how coverage falls with few participants or few images: the numbers behind the report's
  small-study thresholds (`ReportOptions.min_participants`, `min_images`);
- with one method per photo (the default design of a public study), by photos per method: how
  often equal methods are called different and how often 30% is told from 40%, both with the
  verdicts counted whatever the study's size and as the report gives them (withheld below
  `min_images` photos or `min_participants` participants behind a rate).

It writes `coverage.csv` (one row per scenario and measure, with its Monte Carlo standard error)
and `coverage.md` (the same as tables, with the command, the machine and the run time).
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from . import SurveyError
from .report import ReportOptions, analyse, md_text
from .simulate import SimulationConfig, simulate_frame
from .study import Protocol

__all__ = ["Scenario", "SCENARIOS", "main", "run_scenario", "run_study"]

logger = logging.getLogger(__name__)

REFERENCE_SD = 0.8  # participant and image effects (logit scale) of the reference scenario
# The small-study grids; the reference scenario (40 participants x 60 images) is the end of both.
PARTICIPANT_GRID = (2, 4, 6, 8, 10, 12, 16, 20, 30)
IMAGE_GRID = (4, 6, 8, 10, 12, 16, 20, 30)
# Photos per method of the one-method-per-photo grids.
ONE_METHOD_EQUAL_GRID = (5, 8, 10, 12, 15, 20)
ONE_METHOD_POWER_GRID = (10, 20, 30, 40)


@dataclass(frozen=True)
class Scenario:
    """One simulated design: who answers, how many, in which mode."""

    name: str
    what: str  # one line: what the scenario checks
    true_rates: Mapping[str, float]
    participants: int = 40
    images: int = 60
    mode: str = "pair"
    real_rate: float = 0.75
    sd: float = REFERENCE_SD
    group: str = "main"  # "main", "participants", "images" (the small-study grids) or "one-method"
    one_method: bool = False  # one method per photo (Protocol.one_method_per_image)
    photos_per_method: int | None = None  # the one-method grid's nominal size

    def config(self) -> SimulationConfig:
        return SimulationConfig(
            true_rates=dict(self.true_rates), real_rate=self.real_rate, participant_sd=self.sd, image_sd=self.sd,
            careless_share=0.0, dropout_share=0.1,
        )  # fmt: skip

    def protocol(self, seed: int) -> Protocol:
        return Protocol(mode=self.mode, practice_trials=2, test_trials=20, catch_rate=0.1, seed=seed, one_method_per_image=self.one_method)


def _one_method(kind: str, n: int) -> Scenario:
    """A one-method-per-photo study of about `n` test photos per method (2 practice photos, 10% kept for catch trials)."""
    rates = {"one": 0.3, "two": 0.3, "three": 0.3} if kind == "equal" else {"lower": 0.3, "higher": 0.4}
    images = round(n * len(rates) / 0.9) + 2
    what = "three equal methods" if kind == "equal" else "30% against 40%"
    return Scenario(f"one-method-{kind}-{n}", f"one method per photo, about {n} photos per method: {what}", rates, images=images,
                    group="one-method", one_method=True, photos_per_method=n)  # fmt: skip


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("reference", "the validated case: two methods mid-range", {"alpha": 0.35, "beta": 0.2}),
    Scenario("boundary", "rates at and near 0% and 100%", {"never": 0.0, "rare": 0.02, "always": 1.0}),
    Scenario("null-chance", "a method at exactly 50%: false rejections of 'rate = 50%'", {"even": 0.5, "other": 0.3}),
    Scenario("three-equal", "three equally good methods: false 'beats' verdicts", {"one": 0.3, "two": 0.3, "three": 0.3}),
    Scenario("single", "single mode: one method as often judged real as real photos, one less", {"same": 0.75, "worse": 0.35}, mode="single"),
    Scenario("single-boundary", "single mode, every real photo judged real, a method never", {"never": 0.0, "half": 0.5}, mode="single", real_rate=1.0),
    *(
        Scenario(f"participants-{n}", f"{n} participants, 60 images", {"alpha": 0.35, "beta": 0.2}, participants=n, group="participants")
        for n in PARTICIPANT_GRID
    ),
    *(Scenario(f"images-{n}", f"40 participants, {n} images", {"alpha": 0.35, "beta": 0.2}, images=n, group="images") for n in IMAGE_GRID),
    *(_one_method("equal", n) for n in ONE_METHOD_EQUAL_GRID),
    *(_one_method("power", n) for n in ONE_METHOD_POWER_GRID),
)


def _inside(low, high, truth) -> bool:
    """low <= truth <= high; an interval that could not be formed (nan) covers nothing. Bounds may be infinite (d')."""
    return bool(not (math.isnan(low) or math.isnan(high)) and low <= truth <= high)


def run_study(scenario: Scenario, seed: int, *, n_boot: int) -> dict[str, list[bool]]:
    """One simulated study of `scenario`, analysed as a report would: measure -> outcomes (True = covered / rejected)."""
    frame = simulate_frame(scenario.config(), participants=scenario.participants, images=scenario.images,
                           protocol=scenario.protocol(seed), seed=seed)  # fmt: skip
    options = ReportOptions(n_boot=n_boot, seed=seed, min_participants=2, min_images=2)  # verdicts always, to count them
    analysis = analyse(frame, methods=sorted(scenario.true_rates), options=options)
    out: dict[str, list[float]] = {}

    def add(measure: str, value: bool | float) -> None:
        out.setdefault(measure, []).append(float(value))

    alpha = options.alpha
    for row in analysis.summary.itertuples():
        if row.n_trials == 0 or not np.isfinite(row.boot_low):
            continue
        truth = scenario.real_rate if row.method == "real" else scenario.true_rates[row.method]
        add("rate: reported interval covers", _inside(row.ci_low, row.ci_high, truth))
        if scenario.group == "main":
            add(f"rate: reported interval covers, true rate {100 * truth:g}%", _inside(row.ci_low, row.ci_high, truth))
        add("rate: cluster bootstrap alone covers", _inside(row.boot_low, row.boot_high, truth))
        add("rate: Wilson (trials independent) covers", _inside(row.wilson_low, row.wilson_high, truth))
        add("rate: reported interval has zero width", row.ci_high - row.ci_low <= 0)
        add("rate: cluster bootstrap alone has zero width", row.boot_high - row.boot_low <= 0)
        if row.method == "real":
            continue
        if scenario.mode == "pair" and truth == 0.5:
            add("null true (rate = 50%): clustered p < 0.05", row.p_cluster < alpha)
            add("null true (rate = 50%): naive binomial p < 0.05", row.p_naive_binomial < alpha)
        if scenario.mode == "single":
            add("difference from real photos: interval covers", _inside(row.diff_vs_real_low, row.diff_vs_real_high, truth - scenario.real_rate))
            true_d = _true_dprime(scenario.real_rate, truth)
            add("d': interval covers", _inside(row.d_prime_low, row.d_prime_high, true_d))
            if truth == scenario.real_rate:
                add("null true (as real photos): clustered p < 0.05", row.p_cluster < alpha)
    if analysis.comparisons is not None:
        for c in analysis.comparisons.itertuples():
            truth = scenario.true_rates[c.method_a] - scenario.true_rates[c.method_b]
            add("difference between methods: interval covers", _inside(c.ci_low, c.ci_high, truth))
            add("difference between methods: zero width", c.ci_high - c.ci_low <= 0)
        holm = [options.significant(p) for p in analysis.comparisons["p_adjusted"]]
        # As the report gives them: only where every rate compared has the photos and participants a verdict needs.
        given = [verdict_given(analysis, (c.method_a, c.method_b)) for c in analysis.comparisons.itertuples()]
        if len(set(scenario.true_rates.values())) == 1:
            add("equal methods: study with a false 'beats', uncorrected", any(options.significant(p) for p in analysis.comparisons["p_cluster"]))
            add("equal methods: study with a false 'beats', Holm", any(holm))
            if scenario.one_method:
                add("equal methods: study with a false 'beats' as reported", any(h and g for h, g in zip(holm, given)))
                add("equal methods: verdicts withheld for too few photos", not all(given))
        elif scenario.one_method:
            add("30% vs 40%: 'beats' found, Holm", any(holm))
            add("30% vs 40%: 'beats' found as reported", any(h and g for h, g in zip(holm, given)))
        if scenario.one_method:
            add("photos per method (mean over methods and studies)", float(analysis.summary.loc[analysis.summary["stimulus"] == "fake", "n_images"].mean()))
    return out


def verdict_given(analysis, methods: Sequence[str], options: ReportOptions | None = None) -> bool:
    """Whether the report, at the default thresholds of `options`, gives a verdict resting on `methods`' rates."""
    options = options or ReportOptions()
    used = analysis.used
    if used["participant"].nunique() < options.min_participants or used["image_key"].nunique() < options.min_images:
        return False
    rows = analysis.summary.set_index("method").loc[list(methods)]
    return bool((rows["n_images"] >= options.min_images).all() and (rows["n_participants"] >= options.min_participants).all())


def _true_dprime(real_rate: float, fake_rate: float) -> float:
    return float(norm.ppf(real_rate) - norm.ppf(fake_rate))


def run_scenario(scenario: Scenario, *, datasets: int, seed: int = 0, n_boot: int = 2000) -> pd.DataFrame:
    """Rows (scenario, measure, n, share, mc_se) over `datasets` simulated studies of `scenario`."""
    totals: dict[str, list[float]] = {}
    for i in range(datasets):
        for measure, values in run_study(scenario, seed + i, n_boot=n_boot).items():
            totals.setdefault(measure, []).extend(values)
    rows = []
    for measure, values in totals.items():
        share = float(np.mean(values))  # a share of True, or the mean of a count
        rows.append(
            {
                "scenario": scenario.name, "group": scenario.group, "mode": scenario.mode,
                "participants": scenario.participants, "images": scenario.images, "sd": scenario.sd,
                "measure": measure, "n": len(values), "share": share, "mc_se": float(np.std(values)) / math.sqrt(len(values)),
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def _share(value: float, se: float) -> str:
    return f"{100 * value:.1f}% ± {100 * se:.1f}"


def coverage_markdown(results: pd.DataFrame, *, command: str, seconds: float, datasets: int, n_boot: int) -> str:
    """coverage.md: every measure per scenario, then the small-study grids side by side."""
    md = [
        "# Coverage of the study report's intervals and tests (simulated studies)",
        "",
        f"- Command: `{command}`",
        f"- Machine: {md_text(platform.platform())}, Python {platform.python_version()}, {md_text(platform.processor() or platform.machine())}; "
        f"run time {seconds / 60:.1f} min.",
        f"- {datasets} simulated studies per scenario, each analysed by `survey.report.analyse` with {n_boot} bootstrap replicates "
        "(verdict thresholds set to 2 participants and 2 images so verdicts are counted even in small studies).",
        f"- Response model (`survey.simulate`): participant and image effects with SD {REFERENCE_SD} on the logit scale, "
        "intercepts solved so the population-average rate is the stated true rate; 10% of participants drop out; "
        "20 test trials per participant (10% catch), 2 practice trials.",
        "- Shares are given ± one Monte Carlo standard error. A 95% interval should cover about 95%; a 5% test "
        "should reject a true null about 5% of the time.",
        "",
    ]
    main_rows = results[results["group"] == "main"]
    if not main_rows.empty:
        md += ["## Scenarios", ""]
    for name, part in main_rows.groupby("scenario", sort=False):
        scenario = next(s for s in SCENARIOS if s.name == name)
        rates = ", ".join(f"{m} {100 * r:g}%" for m, r in scenario.true_rates.items())
        real = f", real photos judged real {100 * scenario.real_rate:g}%" if scenario.mode == "single" else ""
        md += [
            f"### {name}: {scenario.what}",
            "",
            f"{scenario.mode} mode, {scenario.participants} participants x {scenario.images} images; true rates: {rates}{real}.",
            "",
            "| measure | n | share |",
            "|---|---|---|",
            *(f"| {md_text(r.measure)} | {r.n} | {_share(r.share, r.mc_se)} |" for r in part.itertuples()),
            "",
        ]
    for group, label in (("participants", "participants (60 images)"), ("images", "images (40 participants)")):
        part = results[(results["group"] == group) | (results["scenario"] == "reference")]
        if not (part["group"] == group).any():
            continue
        measures = ["rate: reported interval covers", "rate: Wilson (trials independent) covers", "difference between methods: interval covers"]
        md += [f"## Coverage by number of {label}", "", "| " + label.split(" ")[0] + " | " + " | ".join(measures) + " |", "|---" * (len(measures) + 1) + "|"]
        for size, rows in part.groupby(group, sort=True):
            cells = []
            for measure in measures:
                hit = rows[rows["measure"] == measure]
                cells.append(_share(hit["share"].iloc[0], hit["mc_se"].iloc[0]) if len(hit) else "n/a")
            md.append(f"| {size} | " + " | ".join(cells) + " |")
        md.append("")
    md += _one_method_markdown(results)
    md += ["Full table: [`coverage.csv`](coverage.csv).", ""]
    return "\n".join(md)


def _one_method_markdown(results: pd.DataFrame) -> list[str]:
    """The one-method-per-photo grids: false "beats" among equal methods, and power for 30% vs 40%, by photos per method."""
    part = results[results["group"] == "one-method"]
    if part.empty:
        return []

    def cell(kind: str, n: int, measure: str) -> str:
        hit = part[(part["scenario"] == f"one-method-{kind}-{n}") & (part["measure"] == measure)]
        return _share(hit["share"].iloc[0], hit["mc_se"].iloc[0]) if len(hit) else "n/a"

    def photos(kind: str, n: int) -> str:
        hit = part[(part["scenario"] == f"one-method-{kind}-{n}") & (part["measure"] == "photos per method (mean over methods and studies)")]
        return f"{hit['share'].iloc[0]:.1f}" if len(hit) else "n/a"

    md = [
        "## One method per photo: verdicts by photos per method",
        "",
        "40 participants; each test photo tied to one method (`one_method_per_image`), 10% of them kept for catch trials, "
        "2 practice photos. \"Holm\" counts a verdict whatever the study's size; \"as reported\" counts only those the report "
        "gives, which needs at least 10 photos and 10 participants behind every rate compared.",
        "",
        "| photos per method (nominal; mean used) | three equal methods: false 'beats', Holm | false 'beats' as reported | verdicts withheld |",
        "|---|---|---|---|",
    ]
    false_holm, false_reported = "equal methods: study with a false 'beats', Holm", "equal methods: study with a false 'beats' as reported"
    for n in ONE_METHOD_EQUAL_GRID:
        withheld = cell("equal", n, "equal methods: verdicts withheld for too few photos")
        md.append(f"| {n} ({photos('equal', n)}) | {cell('equal', n, false_holm)} | {cell('equal', n, false_reported)} | {withheld} |")
    md += ["", "| photos per method (nominal; mean used) | 30% vs 40%: 'beats' found, Holm | as reported |", "|---|---|---|"]
    found_holm, found_reported = "30% vs 40%: 'beats' found, Holm", "30% vs 40%: 'beats' found as reported"
    for n in ONE_METHOD_POWER_GRID:
        md.append(f"| {n} ({photos('power', n)}) | {cell('power', n, found_holm)} | {cell('power', n, found_reported)} |")
    return [*md, ""]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m survey.coverage", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("results/report-coverage"), help="folder for coverage.csv and coverage.md")
    parser.add_argument("--datasets", type=int, default=300, help="simulated studies per scenario")
    parser.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates per analysis (the report's default)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; study i uses seed + i")
    parser.add_argument("--scenario", action="append", default=None, metavar="NAME",
                        help="run only these scenarios (repeatable); default: all")  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    logging.getLogger("survey.study").setLevel(logging.ERROR)  # "only N images" for every small-image study
    from tqdm.auto import tqdm

    known = {s.name: s for s in SCENARIOS}
    try:
        if args.datasets < 1:
            raise SurveyError("Simulate at least one study per scenario (--datasets 1 or more).")
        unknown = [n for n in args.scenario or [] if n not in known]
        if unknown:
            raise SurveyError(f"Unknown scenario(s) {', '.join(unknown)}; the scenarios are {', '.join(known)}.")
        chosen = [known[n] for n in args.scenario] if args.scenario else list(SCENARIOS)
        start = time.perf_counter()
        parts = [run_scenario(s, datasets=args.datasets, seed=args.seed, n_boot=args.bootstrap) for s in tqdm(chosen, desc="Scenarios", unit="scenario")]
        seconds = time.perf_counter() - start
    except SurveyError as error:
        raise SystemExit(f"error: {error}") from None
    results = pd.concat(parts, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out / "coverage.csv", index=False)
    command = " ".join(shlex.quote(p) for p in ["python", "-m", "survey.coverage", *(sys.argv[1:] if argv is None else argv)])
    text = coverage_markdown(results, command=command, seconds=seconds, datasets=args.datasets, n_boot=args.bootstrap)
    (args.out / "coverage.md").write_text(text, encoding="utf-8")
    print(f"Wrote {args.out / 'coverage.md'} and coverage.csv ({len(chosen)} scenarios, {seconds / 60:.1f} min).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
