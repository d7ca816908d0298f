"""survey.simulate: the response model hits its true rates, and the CLI goes through the real Store."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit

from survey import SurveyError
from survey.simulate import (
    Responder,
    SimulationConfig,
    build_synthetic_study,
    logit_intercept,
    main,
    simulate_frame,
    simulate_study,
)
from survey.store import TRIALS_FRAME_COLUMNS, Store
from survey.study import Protocol


@pytest.mark.parametrize("rate", [0.05, 0.35, 0.5, 0.9])
def test_intercept_makes_the_population_average_the_true_rate(rate):
    sd = 1.2
    mu = logit_intercept(rate, sd)
    z = np.random.default_rng(0).standard_normal(400_000)
    assert expit(mu + sd * z).mean() == pytest.approx(rate, abs=0.003)
    assert logit_intercept(rate, 0.0) == pytest.approx(np.log(rate / (1 - rate)))


def test_attentive_answers_fool_at_the_true_rate_with_random_effects():
    config = SimulationConfig(true_rates={"m": 0.3}, participant_sd=0.8, image_sd=0.8, careless_share=0, dropout_share=0)
    responder = Responder(config, seed=1)
    people = responder.participants(400, trials_each=30)
    fooled = [
        responder.answer(who, mode="pair", phase="test", image_key=f"{p}-{j}", method="m", real_side="left").choice == "right"
        for p, who in enumerate(people)
        for j in range(30)  # many distinct images, so their effects average out too
    ]
    assert np.mean(fooled) == pytest.approx(0.3, abs=0.03)


def test_simulated_frame_has_the_store_columns_and_is_reproducible():
    config = SimulationConfig(true_rates={"a": 0.4, "b": 0.2}, careless_share=0.1, dropout_share=0.2)
    frame = simulate_frame(config, participants=20, seed=3)
    assert list(frame.columns) == TRIALS_FRAME_COLUMNS
    assert frame["participant"].nunique() == 20
    unfinished = frame.groupby("participant")["participant_finished"].first()
    assert (~unfinished).sum() == 4
    test = frame[(frame["phase"] == "test") & frame["answered"]]
    assert set(test["method"]) == {"a", "b"}
    assert (test["fooled"] == (test["choice"] != test["real_side"])).all()
    assert frame.equals(simulate_frame(config, participants=20, seed=3))
    assert not frame.equals(simulate_frame(config, participants=20, seed=4))


def test_single_mode_frame_marks_reals():
    config = SimulationConfig(true_rates={"a": 0.4}, careless_share=0, dropout_share=0)
    frame = simulate_frame(config, participants=4, seed=0, protocol=Protocol(mode="single", practice_trials=1, test_trials=10))
    test = frame[frame["phase"] == "test"]
    assert set(test["method"]) == {"a", "real"}
    assert (test["is_real"] == (test["method"] == "real")).all()
    assert test.loc[test["method"] == "real", "fooled"].isna().all()
    assert (test["judged_real"] == (test["choice"] == "real")).all()


def test_simulation_goes_through_the_store_and_only_into_simulated_studies():
    store = Store("sqlite://")
    protocol = Protocol(practice_trials=1, test_trials=6, catch_rate=0.2, image_size=32)
    summary = build_synthetic_study(store, "simulated-s", ["m1", "m2"], images=10, protocol=protocol)
    assert summary.methods == ("m1", "m2") and summary.images == 10
    config = SimulationConfig(true_rates={"m1": 0.3, "m2": 0.3}, careless_share=0.0, dropout_share=0.25)
    kinds = simulate_study(store, "simulated-s", config, participants=4, seed=0)
    assert kinds == {"attentive": 3, "dropout": 1}
    frame = store.trials_frame("simulated-s")
    per_person = frame.groupby("participant").agg(finished=("participant_finished", "first"), answered=("answered", "sum"))
    assert len(per_person) == 4 and per_person["finished"].sum() == 3
    assert (per_person.loc[per_person["finished"], "answered"] == 7).all()
    answered = frame[frame["answered"]]
    assert answered["response_ms"].between(100, 60_000).all()  # imposed through Store.answer(now=...)

    with pytest.raises(SurveyError, match="start with 'simulated-'"):
        build_synthetic_study(store, "birds", ["m1"], images=4, protocol=protocol)
    with pytest.raises(SurveyError, match="missing m2"):
        simulate_study(store, "simulated-s", SimulationConfig(true_rates={"m1": 0.3}), participants=1)
    from survey.build import build_study
    from survey.simulate import synthetic_sources
    from colorize.pixels import gray_image

    build_study(store, name="demo", sources=synthetic_sources(4, size=32), makers={"m1": gray_image}, protocol=protocol, progress=False)
    with pytest.raises(SurveyError, match="starts with 'simulated-'"):
        simulate_study(store, "demo", SimulationConfig(true_rates={"m1": 0.3}), participants=1)
    assert store.trials_frame("demo").empty  # a real study is never touched


@pytest.mark.slow
def test_cli_builds_and_simulates(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    common = ["--db", url, "--study", "simulated-x", "--true-rate", "gray=0.4", "--participants", "3", "--trials", "5",
              "--practice", "1", "--images", "6", "--size", "32", "--dropout-share", "0", "--careless-share", "0"]  # fmt: skip
    assert main(common + ["--build-demo-from-synthetic", "--mode", "single"]) == 0
    assert main(common) == 0  # a second batch into the existing study
    out = capsys.readouterr().out
    assert "Built the simulated study 'simulated-x'" in out and "Added 3 simulated participants" in out
    frame = Store(url).trials_frame("simulated-x")
    assert frame["participant"].nunique() == 6 and set(frame["mode"]) == {"single"}
    with pytest.raises(SystemExit, match="start with 'simulated-'"):
        main(["--db", url, "--study", "real", "--true-rate", "gray=0.4", "--build-demo-from-synthetic"])
    with pytest.raises(SystemExit):
        main(["--db", url, "--study", "simulated-x", "--true-rate", "gray"])
    assert "METHOD=RATE" in capsys.readouterr().err


@pytest.mark.slow
def test_report_and_simulation_never_import_torch():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from survey.report import summary_table\n"
        "from survey.simulate import SimulationConfig, build_synthetic_study, simulate_study\n"
        "from survey.store import Store\n"
        "from survey.study import Protocol\n"
        "store = Store('sqlite://')\n"
        "build_synthetic_study(store, 'simulated-t', ['m'], images=4, protocol=Protocol(practice_trials=1, test_trials=3, image_size=32))\n"
        "simulate_study(store, 'simulated-t', SimulationConfig(true_rates={'m': 0.3}, dropout_share=0, careless_share=0), participants=2)\n"
        "summary_table(store.trials_frame('simulated-t'), n_boot=20)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
