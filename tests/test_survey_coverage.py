"""survey.coverage: the coverage study's command runs the real analysis and writes its tables."""

from __future__ import annotations

import pandas as pd
import pytest

from survey.coverage import SCENARIOS, Scenario, main, run_scenario, run_study


def test_one_study_reports_each_measure_against_the_known_truth():
    boundary = next(s for s in SCENARIOS if s.name == "boundary")
    outcomes = run_study(boundary, seed=0, n_boot=100)
    assert len(outcomes["rate: reported interval covers"]) == 3  # never, rare, always
    assert not any(outcomes["rate: reported interval has zero width"])
    assert any(outcomes["rate: cluster bootstrap alone has zero width"])  # 0% and 100% collapse the bootstrap
    equal = run_study(Scenario("equal", "", {"a": 0.3, "b": 0.3, "c": 0.3}), seed=1, n_boot=100)
    assert len(equal["equal methods: study with a false 'beats', Holm"]) == 1
    single = run_study(next(s for s in SCENARIOS if s.name == "single"), seed=2, n_boot=100)
    assert {"difference from real photos: interval covers", "d': interval covers"} <= set(single)
    assert len(single["null true (as real photos): clustered p < 0.05"]) == 1  # the method "same"


def test_shares_come_with_their_monte_carlo_error():
    table = run_scenario(Scenario("tiny", "", {"m": 0.3}, participants=8, images=10), datasets=3, n_boot=50)
    row = table.set_index("measure").loc["rate: reported interval covers"]
    assert row["n"] == 3 and 0.0 <= row["share"] <= 1.0
    assert row["mc_se"] == pytest.approx((row["share"] * (1 - row["share"]) / 3) ** 0.5)


def test_cli_writes_csv_and_markdown_with_its_command(tmp_path, capsys):
    out = tmp_path / "coverage"
    args = ["--out", str(out), "--datasets", "2", "--bootstrap", "50", "--scenario", "reference", "--scenario", "participants-4"]
    assert main(args) == 0
    table = pd.read_csv(out / "coverage.csv")
    assert set(table["scenario"]) == {"reference", "participants-4"} and (table["n"] > 0).all()
    text = (out / "coverage.md").read_text()
    assert "- Command: `python -m survey.coverage --out" in text and "--datasets 2 --bootstrap 50" in text
    assert "### reference:" in text and "## Coverage by number of participants" in text and "Machine:" in text
    with pytest.raises(SystemExit, match="Unknown scenario"):
        main(["--out", str(out), "--scenario", "nope"])
