"""survey.report: intervals that cover the truth, quality control, edge cases, the report files and CLI.

The coverage tests draw many studies with `survey.simulate.simulate_frame` (the same response model
the `survey.simulate` CLI uses, and the Store's own trial planner) and check that the 95% intervals
contain the known true fooling rate about 95% of the time. The tests after "issue 15" check the
report a reviewer accepts: intervals at 0% and 100%, small studies, clustered p-values, Holm,
single mode against real photos, the export's decisions, and Markdown that no name can break.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from survey.report import (
    ReportError,
    ReportOptions,
    analyse,
    annotated_trials,
    fooling_rate_figure,
    main,
    quality_control,
    study_options,
    summary_table,
    write_report,
)
from survey.simulate import SimulationConfig, build_synthetic_study, simulate_frame, simulate_study
from survey.store import Store
from survey.study import Protocol

RATES = {"alpha": 0.35, "beta": 0.2}
PAIR = Protocol(mode="pair", practice_trials=2, test_trials=20, catch_rate=0.1)
SINGLE = Protocol(mode="single", practice_trials=2, test_trials=20, catch_rate=0.1, one_method_per_image=False)  # every image with every condition
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
    assert row["ci_low"] > 0 and row["p_cluster"] < 0.05 and row["verdict"] == "good beats bad"

    same = SimulationConfig(true_rates={"one": 0.3, "two": 0.3}, careless_share=0.0, dropout_share=0.0)
    verdicts = []
    for seed in range(10):
        c = analyse(simulate_frame(same, participants=30, seed=seed), options=FAST).comparisons.iloc[0]
        assert (c["ci_low"] > 0) == (c["p_cluster"] < 0.05) == c["verdict"].endswith("beats " + c["method_b"])
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
                "boot_low", "boot_high", "ci_low", "ci_high", "ci_method", "p_cluster", "p_adjusted", "verdict",
                "p_naive_binomial"}  # fmt: skip
    assert expected <= set(table.columns)
    for source in (table, frame):
        fig = fooling_rate_figure(source, title="live", n_boot=100) if source is frame else fooling_rate_figure(source)
        assert isinstance(fig, Figure) and fig.axes[0].get_ylim() == (0.0, 1.0)


def test_every_database_url_shown_has_its_password_masked():
    from survey.settings import masked_url

    assert masked_url("postgresql+psycopg://ann:s3cret@db.example:5432/survey") == "postgresql+psycopg://ann:***@db.example:5432/survey"
    assert masked_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"
    for malformed in ("weird://ann:s3cret@host", "postgresql://ann:s3c@r/et@host:5x/db", "ann:s3cret@host", "postgres://:s3cret@/db?x=1"):
        assert "s3cret" not in masked_url(malformed) and "s3c" not in masked_url(malformed)
    assert masked_url("postgresql://ann@host/db") == "postgresql://ann@host/db"  # no password: nothing to hide


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
    assert {"excluded_participant", "exclusion_reason", "fast", "used", "not_used_reason"} <= set(trials.columns)
    assert "--correction holm --min-participants 10 --min-images 10" in text
    assert (out / "fooling_rate.png").stat().st_size < 200_000


def test_report_cli_explains_unknown_and_empty_studies(simulated_db, tmp_path, capsys):
    assert main(["--db", simulated_db, "--study", "nope", "--out", str(tmp_path / "a")]) == 2
    assert "There is no study called 'nope'" in capsys.readouterr().err
    store = Store(simulated_db)
    build_synthetic_study(store, "simulated-empty", ["alpha"], images=4, protocol=Protocol(practice_trials=1, test_trials=3, image_size=32))
    assert main(["--db", simulated_db, "--study", "simulated-empty", "--out", str(tmp_path / "b")]) == 2
    assert "has no participants yet" in capsys.readouterr().err
    assert not (tmp_path / "b" / "report.md").exists()


# -- issue 15: a report a reviewer accepts ---------------------------------------------------------

CLUSTERED = dict(careless_share=0.0, dropout_share=0.0, participant_sd=0.8, image_sd=0.8)


def test_a_rate_of_0_or_100_percent_gets_an_interval_with_width_and_the_report_says_which():
    config = SimulationConfig(true_rates={"never": 0.0, "always": 1.0, "mid": 0.35}, **CLUSTERED)
    analysis = analyse(simulate_frame(config, participants=40, images=30, seed=11), options=FAST)
    rows = analysis.summary.set_index("method")
    never, always, mid = rows.loc["never"], rows.loc["always"], rows.loc["mid"]
    assert never["n_judged_real"] == 0 and always["n_judged_real"] == always["n_trials"]
    # The bootstrap alone collapses to a point there; the reported interval does not.
    assert (never["boot_low"], never["boot_high"]) == (0.0, 0.0) and (always["boot_low"], always["boot_high"]) == (1.0, 1.0)
    assert never["ci_low"] == 0.0 and 0.005 < never["ci_high"] < 0.1
    assert always["ci_high"] == 1.0 and 0.9 < always["ci_low"] < 0.995
    # Wilson on an effective n (n / design effect) is at least as wide as Wilson on all trials.
    assert never["ci_high"] >= never["wilson_high"] and always["ci_low"] <= always["wilson_low"]
    assert never["ci_method"].startswith("Wilson, effective n") and mid["ci_method"] == "cluster bootstrap"
    assert (mid["ci_low"], mid["ci_high"]) == (mid["boot_low"], mid["boot_high"])
    both = analysis.comparisons.set_index(["method_a", "method_b"]).loc[("always", "never")]
    assert both["boot_low"] == both["boot_high"] == 1.0  # what the report used to print: +100.0 to +100.0
    assert both["ci_high"] == pytest.approx(1.0) and 0.85 < both["ci_low"] < 0.99
    assert both["ci_method"].startswith("MOVER") and both["verdict"] == "always beats never"
    assert any("no width" in note and "'never' (0 of" in note for note in analysis.notes)


@pytest.mark.slow
def test_the_boundary_interval_covers_a_rare_true_rate():
    # A true rate of 1%: many studies see 0 of ~200 fooled. The reported interval must still cover 1% about 95% of
    # the time; the bootstrap alone is a point at 0% in those studies and misses it.
    config = SimulationConfig(true_rates={"rare": 0.01, "mid": 0.3}, **CLUSTERED)
    covered = bootstrap_covered = zero_studies = 0
    for seed in range(60):
        row = summary_table(simulate_frame(config, participants=30, images=30, seed=seed), n_boot=200, seed=seed).set_index("method").loc["rare"]
        covered += row["ci_low"] <= 0.01 <= row["ci_high"]
        bootstrap_covered += row["boot_low"] <= 0.01 <= row["boot_high"]
        zero_studies += row["n_judged_real"] == 0
        assert row["ci_high"] > row["ci_low"]
    assert zero_studies >= 5
    assert covered >= 55 and bootstrap_covered <= covered - zero_studies


def test_a_small_study_warns_at_the_top_and_declares_no_winner(tmp_path):
    config = SimulationConfig(true_rates={"alpha": 0.1, "gamma": 0.6}, careless_share=0.0, dropout_share=0.0)
    frame = simulate_frame(config, participants=2, images=24, seed=0)
    small = analyse(frame, options=FAST)
    assert small.small_study.startswith("Small study: 2 participant(s) and ")
    assert "fewer than the 10 participants and 10 images" in small.small_study
    assert small.comparisons["verdict"].tolist() == ["withheld (small study)"]
    assert set(small.summary["verdict"]) == {"withheld (small study)"}
    # The data do show the difference: with the thresholds lowered, the same analysis would declare it.
    unguarded = analyse(frame, options=ReportOptions(n_boot=200, min_participants=2, min_images=2))
    assert unguarded.small_study is None and unguarded.comparisons["verdict"].tolist() == ["gamma beats alpha"]

    lines = write_report(small, tmp_path, study="s", command="cmd", db_url="sqlite://").read_text().splitlines()
    assert lines[2].startswith("> **WARNING: Small study: 2 participant(s)")
    text = "\n".join(lines)
    assert "gamma beats alpha" not in text and "withheld (small study)" in text
    assert "at least 10 participants and 10 images" in text

    few_images = analyse(simulate_frame(config, participants=40, images=6, seed=0), options=FAST)
    assert few_images.small_study and f"{few_images.used['image_key'].nunique()} image(s)" in few_images.small_study
    large = analyse(simulate_frame(config, participants=40, images=24, seed=0), options=FAST)
    assert large.small_study is None and large.comparisons["verdict"].tolist() == ["gamma beats alpha"]


@pytest.mark.slow
def test_clustered_p_values_hold_their_level_where_the_binomial_test_does_not():
    # True rate exactly 50% with strong participant and image effects: a 5% test should reject ~5% of the time.
    config = SimulationConfig(true_rates={"even": 0.5}, careless_share=0.0, dropout_share=0.0, participant_sd=1.0, image_sd=1.0)
    clustered = naive = 0
    datasets = 60
    for seed in range(datasets):
        row = summary_table(simulate_frame(config, participants=30, images=20, seed=seed), n_boot=300, seed=seed).iloc[0]
        clustered += row["p_cluster"] < 0.05
        naive += row["p_naive_binomial"] < 0.05
        # the p-value inverts the reported interval (up to the bootstrap's resolution)
        if abs(row["p_cluster"] - 0.05) > 0.01:
            assert (row["p_cluster"] < 0.05) == (not row["ci_low"] <= 0.5 <= row["ci_high"])
    assert clustered / datasets <= 0.12
    assert naive / datasets >= clustered / datasets + 0.1, (naive, clustered)


def test_the_report_labels_the_binomial_p_as_naive_and_does_not_show_it(tmp_path):
    analysis = analyse(_frame(participants=24), options=FAST)
    text = write_report(analysis, tmp_path, study="s", command="cmd", db_url="sqlite://").read_text()
    assert "p vs 50% (clustered)" in text and "p, Holm-adjusted" in text
    assert "binomial test against 50%: p" not in text and "p (binomial" not in text
    assert "`p_naive_binomial` for reference only" in text
    assert "p_naive_binomial" in pd.read_csv(tmp_path / "per_method.csv").columns


@pytest.mark.slow
def test_holm_keeps_false_winners_among_equal_methods_rare():
    config = SimulationConfig(true_rates={"one": 0.3, "two": 0.3, "three": 0.3}, **CLUSTERED)
    uncorrected = holm = 0
    datasets = 70
    for seed in range(datasets):
        comparisons = analyse(simulate_frame(config, participants=30, images=30, seed=seed), options=ReportOptions(n_boot=200, seed=seed)).comparisons
        uncorrected += (comparisons["p_cluster"] < 0.05).any()
        holm += comparisons["verdict"].str.contains(" beats ").any()
        for c in comparisons.itertuples():
            assert c.p_adjusted >= c.p_cluster
            if c.p_cluster < 0.05 <= c.p_adjusted:  # the uncorrected interval excludes 0, Holm does not agree
                assert c.verdict.startswith("no detectable difference after Holm correction")
    assert holm < uncorrected and holm / datasets <= 0.08, (holm, uncorrected)
    # Without correction, the report says so instead.
    plain = analyse(simulate_frame(config, participants=30, images=30, seed=0), options=ReportOptions(n_boot=200, correction="none"))
    assert (plain.comparisons["p_adjusted"] == plain.comparisons["p_cluster"]).all()
    assert any("without correction for multiplicity" in note for note in plain.notes)


def test_single_mode_compares_fakes_with_real_photos_not_with_50_percent(tmp_path):
    config = SimulationConfig(true_rates={"same": 0.75, "worse": 0.35}, real_rate=0.75, careless_share=0.0, dropout_share=0.0,
                              participant_sd=0.5, image_sd=0.5)  # fmt: skip
    analysis = analyse(simulate_frame(config, participants=60, images=30, seed=12, protocol=SINGLE), options=FAST)
    rows = analysis.summary.set_index("method")
    same, worse = rows.loc["same"], rows.loc["worse"]
    assert worse["diff_vs_real_low"] <= 0.35 - 0.75 <= worse["diff_vs_real_high"] < 0
    # every replicate beyond 0: the smallest p a bootstrap of B replicates gives, 2 / (B + 1), never 0
    assert worse["verdict"] == "judged real less often than real photos" and worse["p_cluster"] == pytest.approx(2 / (FAST.n_boot + 1))
    assert same["diff_vs_real_low"] <= 0 <= same["diff_vs_real_high"]
    assert same["verdict"] == "no detectable difference from real photos"
    assert same["d_prime_low"] <= 0 <= same["d_prime_high"]
    true_d = 0.674489750 - (-0.385320466)  # z(0.75) - z(0.35)
    assert worse["d_prime_low"] <= true_d <= worse["d_prime_high"]
    assert set(rows["test"]) == {"rate = real photos' rate", ""} and "p_naive_binomial" not in rows.columns

    text = write_report(analysis, tmp_path, study="s", command="cmd", db_url="sqlite://").read_text()
    assert "Against real photos (judged real in" in text and "Against 50%" not in text
    figure = fooling_rate_figure(analysis.summary)
    reference = [line for line in figure.axes[0].get_lines() if "real photos" in line.get_label()]
    assert len(reference) == 1 and reference[0].get_ydata()[0] == pytest.approx(rows.loc["real", "rate"])
    assert not any("chance" in line.get_label() for line in figure.axes[0].get_lines())


def _read_export(path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    return frame.assign(not_used_reason=frame["not_used_reason"].fillna(""), exclusion_reason=frame["exclusion_reason"].fillna(""))


def test_admin_export_carries_each_answers_decision_and_reason(tmp_path):
    from survey.admin import main as admin_main

    url = f"sqlite:///{tmp_path / 'survey.sqlite'}"
    store = Store(url)
    protocol = Protocol(practice_trials=2, test_trials=12, catch_rate=0.2, image_size=32, seed=3)
    build_synthetic_study(store, "simulated-export", ["alpha", "beta"], images=16, protocol=protocol, seed=3)
    config = SimulationConfig(true_rates=RATES, careless_share=0.2, dropout_share=0.2, careless_catch_accuracy=0.0, fast_share=0.1)
    simulate_study(store, "simulated-export", config, participants=15, seed=3)

    out = tmp_path / "export.csv"
    assert admin_main(["--db", url, "export", "--study", "simulated-export", "--out", str(out)]) == 0
    exported = _read_export(out)
    assert {"phase", "used", "not_used_reason", "excluded_participant", "exclusion_reason", "fast"} <= set(exported.columns)
    assert set(exported["phase"]) == {"practice", "catch", "test"}
    reasons = exported.groupby("phase")["not_used_reason"].agg(set)
    assert reasons["practice"] == {"practice trial"} and reasons["catch"] == {"catch trial (attention check)"}
    excluded = exported[exported["excluded_participant"]]
    assert len(excluded) and excluded["exclusion_reason"].str.contains("did not finish|failed catch trials").all()
    assert (excluded.loc[excluded["phase"] == "test", "not_used_reason"] == "participant excluded").all()
    included_test = exported[~exported["excluded_participant"] & (exported["phase"] == "test")]
    assert included_test["used"].all() and (included_test["exclusion_reason"] == "").all()

    # Re-analysing from the export alone gives the report's numbers, without redoing quality control.
    analysis = analyse(store.trials_frame("simulated-export"), options=FAST)
    used = exported[exported["used"]]
    from_export = used.groupby("method")["fooled"].mean()
    for row in analysis.summary.itertuples():
        assert from_export[row.method] == pytest.approx(row.rate)
        assert (used["method"] == row.method).sum() == row.n_trials

    # --drop-fast marks the included participants' fast answers with their own reason.
    assert admin_main(["--db", url, "export", "--study", "simulated-export", "--out", str(out), "--drop-fast"]) == 0
    dropped = _read_export(out)
    fast_test = dropped[dropped["fast"] & (dropped["phase"] == "test") & ~dropped["excluded_participant"]]
    assert len(fast_test) and (fast_test["not_used_reason"] == "faster than 300 ms (dropped with --drop-fast)").all()
    assert not fast_test["used"].any()


def test_annotated_trials_give_the_reason_for_each_trial_left_out():
    frame = _frame(participants=6)
    test_rows = frame.index[(frame["phase"] == "test") & frame["answered"]]
    frame.loc[test_rows[:3], "reshown"] = True
    flagged = annotated_trials(frame)
    assert flagged.loc[test_rows[:3], "used"].all()  # the protocol's default: re-shown trials are only flagged
    excluded = annotated_trials(frame, options=ReportOptions(exclude_reshown=True))
    assert not excluded.loc[test_rows[:3], "used"].any()
    assert set(excluded.loc[test_rows[:3], "not_used_reason"]) == {"shown again after its exposure (the protocol excludes re-shown trials)"}
    assert study_options(ReportOptions(), {"reshown_trials": "exclude"}).exclude_reshown
    assert list(annotated_trials(frame.iloc[0:0]).columns)[-5:] == ["used", "not_used_reason", "excluded_participant", "exclusion_reason", "fast"]


MARKDOWN_NAMES = ["<b>x</b>", "a*b_c", "ours | v2"]


def _rendered_tables(markdown: str) -> list[list[list[str]]]:
    """Every table in `markdown` as rendered by a CommonMark + GFM-table parser: rows of cell texts."""
    from html.parser import HTMLParser

    from markdown_it import MarkdownIt

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tables, self.cell, self.tags = [], None, []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self.cell = ""

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.tables[-1][-1].append(self.cell)
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell += data

    parser = Cells()
    parser.feed(MarkdownIt("commonmark").enable("table").render(markdown))
    return parser.tables, parser.tags


def test_method_names_are_escaped_in_markdown(tmp_path):
    config = SimulationConfig(true_rates=dict(zip(MARKDOWN_NAMES, (0.3, 0.2, 0.4))), careless_share=0.0, dropout_share=0.0)
    analysis = analyse(simulate_frame(config, participants=24, images=24, seed=13), options=FAST)
    text = write_report(analysis, tmp_path, study="<i>s</i> | *", command="cmd `x`", db_url="sqlite://").read_text()
    tables, tags = _rendered_tables(text)
    assert "b" not in tags and "i" not in tags and "em" not in tags and "strong" in tags  # only the report's own bold
    for table in tables:
        assert len({len(row) for row in table}) == 1, table  # no name split a row into extra cells
    per_method = next(t for t in tables if t[0][0] == "method")
    assert [row[0] for row in per_method[1:]] == sorted(MARKDOWN_NAMES)
    comparisons = next(t for t in tables if t[0][0] == "method_a")
    assert {cell for row in comparisons[1:] for cell in row[:2]} == set(MARKDOWN_NAMES)
    assert "Colorizations by **\\<b\\>x\\</b\\>**" in text and "Colorizations by **a\\*b\\_c**" in text
    assert "# Study report: \\<i\\>s\\</i\\> \\| \\*" in text and "- Command: `` cmd `x` ``" in text


# -- issue 27: verdicts that hold in every design -------------------------------------------------

ONE_METHOD = Protocol(mode="pair", practice_trials=2, test_trials=20, catch_rate=0.1, one_method_per_image=True)


def test_with_one_method_per_photo_a_method_with_few_photos_gets_no_verdict_and_a_sentence(tmp_path):
    """40 participants and 21 photos make a study of a size that gets verdicts, but with one method per
    photo each of three methods rests on 6 photos: equal methods were called different 7-11.5% of the
    time there (results/report-coverage-one-method/). Those verdicts are withheld, with a sentence."""
    equal = SimulationConfig(true_rates={"one": 0.3, "two": 0.3, "three": 0.3}, careless_share=0.0, dropout_share=0.0,
                             participant_sd=0.8, image_sd=0.8)  # fmt: skip
    few = analyse(simulate_frame(equal, participants=40, images=22, seed=3, protocol=ONE_METHOD), options=FAST)
    assert few.small_study is None  # the study as a whole is large enough
    assert (few.summary["n_images"] < 10).all()
    assert set(few.summary["verdict"]) == {"withheld (too few photos or participants behind this rate)"}
    assert set(few.comparisons["verdict"]) == {"withheld (too few photos or participants behind one of the rates)"}
    note = next(n for n in few.notes if n.startswith("Too few photos or participants behind"))
    assert "'one' (" in note and "at least 10 photos and 10 participants behind each rate" in note
    text = write_report(few, tmp_path, study="s", command="cmd", db_url="sqlite://").read_text()
    assert "**Power.** A verdict needs at least 10 photos and 10 participants behind every rate" in text
    assert "beats" not in text.split("## Method comparisons")[1].split("## Per-image")[0].replace("\"A beats B\"", "")

    far = SimulationConfig(true_rates={"good": 0.45, "bad": 0.1}, careless_share=0.0, dropout_share=0.0)
    enough = analyse(simulate_frame(far, participants=40, images=40, seed=5, protocol=ONE_METHOD), options=FAST)
    assert (enough.summary["n_images"] >= 10).all() and enough.comparisons["verdict"].tolist() == ["good beats bad"]
    assert not any(n.startswith("Too few photos") for n in enough.notes)


def test_a_p_value_shown_as_0_050_is_not_significant_and_no_bootstrap_p_is_zero():
    options = ReportOptions()
    assert 1.0 - 0.95 > 0.05 and options.alpha == 0.05  # the float that made p = 0.050 "significant" before
    assert not options.significant(0.05) and not options.significant(0.0496) and options.significant(0.0494)
    assert not options.significant(math.nan)
    from survey.stats import TwoWayBootstrap

    rng = np.random.default_rng(0)
    people, images = np.repeat(np.arange(20), 10), np.tile(np.arange(10), 20)
    boot = TwoWayBootstrap(rng.random(200) < 0.9, people, images, n_boot=500, seed=0)
    far = boot.interval(lambda sums: sums[..., 0] / 200, null=0.2)  # every replicate far beyond the null
    assert far.p_value == pytest.approx(2 / 501)  # 2 (k + 1) / (B + 1) with k = 0: never 0
    assert boot.interval(lambda sums: sums[..., 0] / 200, null=far.estimate).p_value > 0.9  # at the estimate: no evidence


def test_differences_are_in_points_single_mode_is_hedged_and_the_per_image_table_has_counts(tmp_path):
    config = SimulationConfig(true_rates={"same": 0.75, "worse": 0.35}, real_rate=0.75, careless_share=0.0, dropout_share=0.0)
    analysis = analyse(simulate_frame(config, participants=40, images=40, seed=12, protocol=SINGLE), options=FAST)
    text = write_report(analysis, tmp_path, study="s", command="cmd", db_url="sqlite://").read_text()
    assert "no detectable difference from real photos (not proof that none exists" in text
    comparisons = text.split("## Method comparisons")[1].split("## Per-image")[0]
    table = [line for line in comparisons.splitlines() if line.startswith("| same") or line.startswith("| worse")]
    assert table and all(" points |" in line and "%" in line for line in table)  # rates in %, differences in points
    difference_cells = [line.split(" | ")[4] for line in table]
    assert all(cell.endswith("points") for cell in difference_cells)
    per_image = text.split("## Per-image results")[1].split("![Per-image")[0]
    rows = [line for line in per_image.splitlines() if line.startswith("| img")]
    assert "answers judged real / answers" in per_image and rows and all("/" in row and "%)" in row for row in rows)


def test_images_are_ranked_by_their_wilson_bounds_not_their_raw_rates():
    from survey.report import _per_image_markdown

    rows = [("lucky", "m", "fake", 2, 2), ("solid", "m", "fake", 15, 12), ("poor", "m", "fake", 15, 1), ("thin", "m", "fake", 1, 0)]
    per_image = pd.DataFrame(rows, columns=["image_key", "method", "stimulus", "n_trials", "n_judged_real"])
    caption, _, table = _per_image_markdown(per_image)
    order = [line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]]
    # least convincing first by the upper bound: 1 of 15 (upper 30%) before 0 of 1 (upper 79%); 2 of 2 (upper 100%) after 12 of 15
    assert order == ["poor", "thin", "solid", "lucky"] and "12/15 (80%)" in table and "2/2 (100%)" in table
    assert "upper Wilson bound" in caption


def test_only_a_study_the_simulator_made_is_titled_simulated_and_with_its_true_rates(tmp_path, capsys):
    from survey.build import build_study
    from survey.simulate import synthetic_sources
    from colorize.pixels import gray_image

    url = f"sqlite:///{tmp_path / 'survey.sqlite'}"
    store = Store(url)
    protocol = Protocol(practice_trials=1, test_trials=8, catch_rate=0.0, image_size=32, one_method_per_image=False)
    build_synthetic_study(store, "simulated-made", ["alpha", "beta"], images=12, protocol=protocol)
    simulate_study(store, "simulated-made", SimulationConfig(true_rates=RATES, careless_share=0.0, dropout_share=0.0), participants=12, seed=4)
    assert store.study_record("simulated-made")["simulated"]["runs"][0]["true_rates"] == RATES
    assert main(["--db", url, "--study", "simulated-made", "--out", str(tmp_path / "made"), "--bootstrap", "50"]) == 0
    made = (tmp_path / "made" / "report.md").read_text()
    assert made.startswith("# SIMULATED — Study report: simulated-made")
    assert "True fooling rates of the 12 simulated participants added with seed 4: alpha 35%, beta 20%" in made

    # A study of people whose name merely starts with "simulated-" is reported as what it is.
    build_study(store, name="simulated-looking", sources=synthetic_sources(12, size=32), makers={"alpha": gray_image}, protocol=protocol, progress=False)
    token = store.start_participant("simulated-looking")
    store.consent(token)
    while (trial := store.next_trial(token)) is not None:
        store.answer(token, trial.trial_id, "left")
    assert main(["--db", url, "--study", "simulated-looking", "--out", str(tmp_path / "people"), "--bootstrap", "50"]) == 0
    people = (tmp_path / "people" / "report.md").read_text()
    assert people.startswith("# Study report: simulated-looking") and "SIMULATED" not in people
