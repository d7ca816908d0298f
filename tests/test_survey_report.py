"""survey.report: intervals that cover the truth, quality control, edge cases, the report files and CLI.

The coverage tests draw many studies with `survey.simulate.simulate_frame` (the same response model
the `survey.simulate` CLI uses, and the Store's own trial planner) and check that the 95% intervals
contain the known true fooling rate about 95% of the time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from survey.report import (
    ReportError,
    ReportOptions,
    analyse,
    fooling_rate_figure,
    main,
    quality_control,
    strip_password,
    summary_table,
    write_report,
)
from survey.simulate import SimulationConfig, build_synthetic_study, simulate_frame, simulate_study
from survey.store import Store
from survey.study import Protocol

RATES = {"alpha": 0.35, "beta": 0.2}
PAIR = Protocol(mode="pair", practice_trials=2, test_trials=20, catch_rate=0.1)
SINGLE = Protocol(mode="single", practice_trials=2, test_trials=20, catch_rate=0.1)
FAST = ReportOptions(n_boot=200)  # few replicates keep the suite quick; reports use 2000


def coverage(config: SimulationConfig, *, datasets: int, participants: int = 40, images: int = 24, protocol=PAIR):
    """Share of 95% Wilson and bootstrap intervals (both methods) that contain the true rate."""
    wilson = boot = total = 0
    for seed in range(datasets):
        frame = simulate_frame(config, participants=participants, images=images, seed=seed, protocol=protocol)
        table = summary_table(frame, n_boot=200, seed=seed)
        for row in table[table["stimulus"] == "fake"].itertuples():
            truth = config.true_rates[row.method]
            wilson += row.wilson_low <= truth <= row.wilson_high
            boot += row.boot_low <= truth <= row.boot_high
            total += 1
    return wilson / total, boot / total


@pytest.mark.slow
def test_intervals_cover_the_true_rate_when_answers_are_independent():
    config = SimulationConfig(true_rates=RATES, careless_share=0.0, dropout_share=0.1)
    wilson, boot = coverage(config, datasets=200)
    assert 0.88 <= wilson <= 0.99, wilson
    assert 0.88 <= boot <= 0.99, boot


@pytest.mark.slow
def test_bootstrap_covers_with_participant_and_image_effects_where_wilson_does_not():
    # People and images differ (logit SD 0.7 each): answers are correlated within both, so the
    # Wilson interval, which assumes independent trials, is too narrow; the two-way bootstrap is not.
    config = SimulationConfig(true_rates=RATES, careless_share=0.0, dropout_share=0.1, participant_sd=0.7, image_sd=0.7)
    wilson, boot = coverage(config, datasets=120)
    assert 0.88 <= boot <= 0.99, boot
    assert wilson < 0.88 and wilson < boot - 0.05, (wilson, boot)


def test_estimate_converges_to_the_true_rate_as_participants_grow():
    config = SimulationConfig(true_rates={"alpha": 0.3}, careless_share=0.0, dropout_share=0.0)
    errors, widths = [], []
    for n in (8, 32, 128):
        err, width = [], []
        for seed in range(6):
            table = summary_table(simulate_frame(config, participants=n, images=40, seed=seed), n_boot=100)
            err.append(abs(table["rate"].iloc[0] - 0.3))
            width.append(table["wilson_high"].iloc[0] - table["wilson_low"].iloc[0])
        errors.append(np.mean(err))
        widths.append(np.mean(width))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02
    assert widths[2] < widths[1] / 1.6 < widths[0] / 1.6**2  # ~ 1/sqrt(n): halves per 4x


def test_quality_control_excludes_careless_and_unfinished_participants():
    config = SimulationConfig(true_rates=RATES, careless_share=0.25, dropout_share=0.125, careless_catch_accuracy=0.0)
    frame = simulate_frame(config, participants=40, images=24, seed=3)
    qc = quality_control(frame, catch_threshold=0.5)
    assert len(qc) == 40
    assert int((~qc["finished"]).sum()) == 5
    failed = qc["reason"].str.contains("failed catch")
    assert failed.sum() >= 10 - 1  # careless participants get every catch trial wrong (one may have quit first)
    assert qc.loc[failed, "catch_accuracy"].max() < 0.5
    assert set(qc.loc[qc["excluded"], "participant"]) == set(qc.loc[failed | ~qc["finished"], "participant"])

    # Without exclusions the careless coin-flippers pull the rates towards 50%.
    strict = summary_table(frame, n_boot=50)
    lax = summary_table(frame, n_boot=50, catch_threshold=0.0)
    alpha = lambda t: t.set_index("method").loc["alpha"]  # noqa: E731
    assert alpha(strict)["n_participants"] < alpha(lax)["n_participants"]
    assert alpha(strict)["rate"] < alpha(lax)["rate"]


def test_fast_answers_are_flagged_and_dropped_only_on_request():
    config = SimulationConfig(true_rates=RATES, careless_share=0.0, dropout_share=0.0, fast_share=0.2)
    frame = simulate_frame(config, participants=20, images=24, seed=4)
    kept = analyse(frame, options=FAST)
    fast_test = kept.trials["fast"] & (kept.trials["phase"] == "test")
    assert kept.fast_total > 0 and fast_test.sum() > 0
    dropped = summary_table(frame, n_boot=50, drop_fast=True)
    assert dropped["n_trials"].sum() == kept.summary["n_trials"].sum() - fast_test.sum()
    assert quality_control(frame)["fast_answers"].sum() == kept.fast_total


def test_comparisons_claim_a_winner_only_when_the_interval_excludes_zero():
    far = SimulationConfig(true_rates={"good": 0.45, "bad": 0.1}, careless_share=0.0, dropout_share=0.0)
    a = analyse(simulate_frame(far, participants=40, seed=5), options=FAST)
    row = a.comparisons.iloc[0]
    assert (row["method_a"], row["method_b"]) == ("good", "bad")
    assert row["boot_low"] > 0 and row["verdict"] == "good beats bad"

    same = SimulationConfig(true_rates={"one": 0.3, "two": 0.3}, careless_share=0.0, dropout_share=0.0)
    verdicts = []
    for seed in range(10):
        c = analyse(simulate_frame(same, participants=30, seed=seed), options=FAST).comparisons.iloc[0]
        assert (c["boot_low"] > 0) == c["verdict"].endswith("beats " + c["method_b"])
        verdicts.append(c["verdict"])
    assert verdicts.count("no detectable difference") >= 8


def test_single_mode_reports_reals_and_dprime():
    config = SimulationConfig(true_rates={"alpha": 0.35}, real_rate=0.75, careless_share=0.0, dropout_share=0.0)
    table = summary_table(simulate_frame(config, participants=120, images=24, seed=6, protocol=SINGLE), n_boot=200)
    rows = table.set_index("method")
    assert list(rows["stimulus"]) == ["fake", "real"]
    assert rows.loc["real", "rate"] == pytest.approx(0.75, abs=0.05)
    assert rows.loc["alpha", "rate"] == pytest.approx(0.35, abs=0.05)
    true_d = 0.674489750 - (-0.385320466)  # z(0.75) - z(0.35)
    assert rows.loc["alpha", "d_prime"] == pytest.approx(true_d, abs=0.25)
    assert rows.loc["alpha", "d_prime_low"] < rows.loc["alpha", "d_prime"] < rows.loc["alpha", "d_prime_high"]
    assert math.isnan(rows.loc["real", "d_prime"])


def test_agreement_is_fleiss_kappa_over_stimuli():
    config = SimulationConfig(true_rates=RATES, careless_share=0.0, dropout_share=0.0)
    independent = analyse(simulate_frame(config, participants=40, seed=7), options=FAST).agreement
    assert independent["items"] > 20 and independent["raters_min"] >= 2
    assert abs(independent["kappa"]) < 0.1  # independent answers: chance agreement only
    strong = SimulationConfig(true_rates=RATES, careless_share=0.0, dropout_share=0.0, image_sd=3.0)
    assert analyse(simulate_frame(strong, participants=40, seed=7), options=FAST).agreement["kappa"] > 0.3


# -- edge cases: a plain sentence, never a traceback -------------------------------------------


def _frame(**kwargs) -> pd.DataFrame:
    config = SimulationConfig(true_rates=RATES, careless_share=0.0, dropout_share=0.0)
    return simulate_frame(config, seed=8, **kwargs)


def test_empty_study_raises_a_report_error():
    empty = _frame(participants=1).iloc[0:0]
    with pytest.raises(ReportError, match="no participants yet"):
        summary_table(empty)
    with pytest.raises(ReportError, match="column"):
        summary_table(pd.DataFrame({"participant": [1]}))


def test_everyone_excluded_gives_a_sentence(tmp_path):
    frame = _frame(participants=3)
    frame["participant_finished"] = False
    with pytest.raises(ReportError, match="No test answers are left after quality control"):
        summary_table(frame)
    analysis = analyse(frame, options=FAST)
    text = write_report(analysis, tmp_path, study="s", command="cmd", db_url="sqlite://").read_text()
    assert "No test answers are left after quality control" in text
    assert "did not finish" in text


def test_one_participant_gets_wilson_but_no_cluster_interval(tmp_path):
    analysis = analyse(_frame(participants=1), options=FAST)
    table = analysis.summary
    assert (table["n_participants"] == 1).all()
    assert table["wilson_low"].notna().all() and table["boot_low"].isna().all()
    assert any("Only 1 participant" in note for note in analysis.notes)
    text = write_report(analysis, tmp_path, study="s", command="cmd", db_url="sqlite://").read_text()
    assert "Only 1 participant" in text
    axes = fooling_rate_figure(table).axes[0]
    assert [label.get_text().split("\n")[0] for label in axes.get_xticklabels()] == table["method"].tolist()
    bars = [segment[:, 1] for container in axes.containers for segment in container.lines[2][0].get_segments()]
    expected = table[["wilson_low", "wilson_high"]].to_numpy()  # Wilson bars only: no bootstrap with one person
    assert np.allclose(sorted(map(tuple, bars)), sorted(map(tuple, expected)))


def test_a_method_nobody_saw_gets_an_empty_row_and_a_note(tmp_path):
    analysis = analyse(_frame(participants=6), methods=["alpha", "beta", "gamma"], options=FAST)
    gamma = analysis.summary.set_index("method").loc["gamma"]
    assert gamma["n_trials"] == 0 and math.isnan(gamma["rate"]) and math.isnan(gamma["wilson_low"])
    assert any("'gamma' has no usable test answers" in note for note in analysis.notes)
    assert set(analysis.comparisons[["method_a", "method_b"]].to_numpy().ravel()) == {"alpha", "beta"}
    text = write_report(analysis, tmp_path, study="s", command="cmd", db_url="sqlite://").read_text()
    assert "**gamma**: no usable test answers" in text
    assert isinstance(fooling_rate_figure(analysis.summary), Figure)


def test_admin_helpers_give_table_and_figure_from_a_trials_frame():
    frame = _frame(participants=10)
    table = summary_table(frame, n_boot=100)
    expected = {"mode", "method", "stimulus", "n_trials", "n_participants", "rate", "wilson_low", "wilson_high",
                "boot_low", "boot_high", "p_value"}  # fmt: skip
    assert expected <= set(table.columns)
    for source in (table, frame):
        fig = fooling_rate_figure(source, title="live", n_boot=100) if source is frame else fooling_rate_figure(source)
        assert isinstance(fig, Figure) and fig.axes[0].get_ylim() == (0.0, 1.0)


def test_strip_password():
    assert strip_password("postgresql+psycopg://ann:s3cret@db.example:5432/survey") == "postgresql+psycopg://ann:***@db.example:5432/survey"
    assert strip_password("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    assert "s3cret" not in strip_password("weird://ann:s3cret@host")


# -- through the real Store and the CLI --------------------------------------------------------


@pytest.mark.slow
def test_store_round_trip_estimates_the_true_rate():
    """The end-to-end run: synthetic study, simulated participants through Store calls, report numbers."""
    store = Store("sqlite://")
    protocol = Protocol(practice_trials=1, test_trials=14, catch_rate=0.15, image_size=32, seed=1)
    build_synthetic_study(store, "simulated-e2e", ["alpha", "beta"], images=16, protocol=protocol, seed=1)
    config = SimulationConfig(true_rates=RATES, careless_share=0.125, dropout_share=0.125, careless_catch_accuracy=0.0)
    simulate_study(store, "simulated-e2e", config, participants=16, seed=1)
    frame = store.trials_frame("simulated-e2e")
    assert frame["participant"].nunique() == 16
    analysis = analyse(frame, methods=["alpha", "beta"], options=FAST)
    qc = analysis.participants
    assert int((~qc["finished"]).sum()) == 2 and int(qc["excluded"].sum()) >= 3
    for row in analysis.summary.itertuples():
        assert row.boot_low <= RATES[row.method] <= row.boot_high
        assert row.wilson_low <= RATES[row.method] <= row.wilson_high
    # The simulated response times went through the Store's clock: some are faster than the floor.
    answered = frame[frame["answered"]]
    assert answered["response_ms"].gt(0).all() and answered["response_ms"].lt(300).any()


@pytest.fixture(scope="module")
def simulated_db(tmp_path_factory) -> str:
    from survey.simulate import main as simulate_main

    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'survey.sqlite'}"
    args = ["--db", url, "--study", "simulated-cli", "--participants", "10", "--true-rate", "alpha=0.35",
            "--true-rate", "beta=0.2", "--seed", "2", "--build-demo-from-synthetic", "--images", "14",
            "--trials", "10", "--practice", "1", "--catch-rate", "0.2", "--size", "32", "--careless-share", "0.2"]  # fmt: skip
    assert simulate_main(args) == 0
    return url


@pytest.mark.slow
def test_report_cli_writes_markdown_csvs_and_pngs(simulated_db, tmp_path, capsys):
    out = tmp_path / "study-simulated-cli"
    code = main(["--db", simulated_db, "--study", "simulated-cli", "--out", str(out), "--bootstrap", "100", "--seed", "1"])
    assert code == 0, capsys.readouterr().err
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "trials.csv", "participants.csv", "per_method.csv", "per_image.csv", "comparisons.csv"} <= names
    assert {"fooling_rate.png", "response_times.png", "per_image.png", "gallery.png"} <= names
    text = (out / "report.md").read_text()
    assert text.startswith("# SIMULATED — Study report: simulated-cli")
    assert "**SIMULATED DATA.**" in text
    assert f"python -m survey.report --db {simulated_db} --study simulated-cli" in text
    assert "--bootstrap 100 --seed 1" in text and "Generated: " in text and "Stored protocol:" in text
    for name in names - {"report.md"}:
        if name.endswith((".png", ".csv")):
            assert f"({name})" in text  # every file linked or embedded by relative path
    assert "![Fooling rate per method](fooling_rate.png)" in text
    per_method = pd.read_csv(out / "per_method.csv")
    assert set(per_method["method"]) == {"alpha", "beta"}
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == len(Store(simulated_db).trials_frame("simulated-cli"))
    assert {"excluded_participant", "fast", "used"} <= set(trials.columns)
    assert (out / "fooling_rate.png").stat().st_size < 200_000


def test_report_cli_explains_unknown_and_empty_studies(simulated_db, tmp_path, capsys):
    assert main(["--db", simulated_db, "--study", "nope", "--out", str(tmp_path / "a")]) == 2
    assert "There is no study called 'nope'" in capsys.readouterr().err
    store = Store(simulated_db)
    build_synthetic_study(store, "simulated-empty", ["alpha"], images=4, protocol=Protocol(practice_trials=1, test_trials=3, image_size=32))
    assert main(["--db", simulated_db, "--study", "simulated-empty", "--out", str(tmp_path / "b")]) == 2
    assert "has no participants yet" in capsys.readouterr().err
    assert not (tmp_path / "b" / "report.md").exists()
