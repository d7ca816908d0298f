"""Simulated participants with a known true fooling rate, to check the report end to end.

`python -m survey.simulate --db URL --study NAME --participants 40 --true-rate method=0.35 --seed 0`
answers a stored study through the real storage layer (`Store.start_participant`, `consent`,
`next_trial`, `answer`: the same calls the app makes), so what the report reads is exactly what a
real study would store. `--build-demo-from-synthetic` first creates a small study from synthetic
images (no torch, no downloads) whose fakes are the "gray" baseline under the method names of the
`--true-rate` flags; such studies are marked simulated (see `SIMULATED_PREFIX`).

The response model (one `Responder`, used by the CLI and by `simulate_frame`, which builds a
trials frame without a database for fast coverage tests):

- Attentive participants are fooled by method m with probability expit(mu_m + u_p + v_i), with
  a participant effect u_p ~ N(0, participant_sd^2) and an image effect v_i ~ N(0, image_sd^2)
  on the logit scale (both 0 by default: independent answers). mu_m is solved so that the
  population-average rate E[expit(mu_m + u + v)] equals the requested true rate exactly, so the
  true rate is the quantity the report estimates whatever the random effects. In single mode
  a real photo is judged real with probability `real_rate` (same construction, participant
  effect only), so d' is known too. Catch trials are answered correctly with `catch_accuracy`.
- Careless participants (`careless_share`) answer test trials by a coin flip, fast, and get catch
  trials right only with `careless_catch_accuracy`; the report's catch-trial rule should drop them.
- Drop-outs (`dropout_share`) are attentive but stop after a random number of trials.
- Response times are log-normal (median 1.8 s for attentive, 0.45 s for careless answers); a
  share `fast_share` of attentive answers are slips faster than 300 ms (answered like the rest,
  so dropping them does not move the true rate).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special

from . import SurveyError
from .study import CATCH, REAL, Protocol, is_correct, plan_trials

logger = logging.getLogger(__name__)

# A study whose name starts with this is simulated; the report labels it so in its title.
SIMULATED_PREFIX = "simulated-"

TRIALS_FRAME_COLUMNS = [
    "study", "mode", "participant", "participant_finished", "trial_id", "position", "phase",
    "image_key", "method", "is_real", "real_side", "answered", "choice", "correct", "fooled",
    "judged_real", "response_ms", "answered_at",
]  # fmt: skip

_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(64)
_GH_WEIGHTS = _GH_WEIGHTS / _GH_WEIGHTS.sum()


def logit_intercept(rate: float, sd: float) -> float:
    """mu such that E[expit(mu + sd * Z)] = rate for Z ~ N(0, 1) (Gauss-Hermite quadrature)."""
    if not 0.0 <= rate <= 1.0:
        raise SurveyError(f"A true rate must be between 0 and 1, not {rate}.")
    if rate in (0.0, 1.0):
        return -math.inf if rate == 0.0 else math.inf
    if sd <= 0:
        return float(special.logit(rate))

    def gap(mu: float) -> float:
        return float((_GH_WEIGHTS * special.expit(mu + sd * _GH_NODES)).sum()) - rate

    return float(optimize.brentq(gap, -40.0, 40.0, xtol=1e-12))


@dataclass(frozen=True)
class SimulationConfig:
    """Who the simulated participants are; see the module docstring for the model."""

    true_rates: Mapping[str, float] = field(default_factory=lambda: {"method": 0.35})
    real_rate: float = 0.75
    participant_sd: float = 0.0
    image_sd: float = 0.0
    careless_share: float = 0.1
    dropout_share: float = 0.1
    catch_accuracy: float = 0.97
    careless_catch_accuracy: float = 0.2
    fast_share: float = 0.02

    def __post_init__(self) -> None:
        if not self.true_rates:
            raise SurveyError("Give at least one true rate, e.g. --true-rate method=0.35.")
        for name, rate in self.true_rates.items():
            if name in (REAL, CATCH):
                raise SurveyError(f"'{name}' is reserved and cannot be a method name.")
            if not 0.0 <= float(rate) <= 1.0:
                raise SurveyError(f"The true rate of '{name}' must be between 0 and 1, not {rate}.")
        for name in ("real_rate", "catch_accuracy", "careless_catch_accuracy", "fast_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SurveyError(f"{name} must be between 0 and 1.")
        if self.participant_sd < 0 or self.image_sd < 0:
            raise SurveyError("Random-effect standard deviations cannot be negative.")
        if self.careless_share < 0 or self.dropout_share < 0 or self.careless_share + self.dropout_share > 1:
            raise SurveyError("careless_share and dropout_share must be non-negative and add up to at most 1.")


@dataclass(frozen=True)
class SimParticipant:
    kind: str  # "attentive" | "careless" | "dropout"
    effect: float  # u_p on the logit scale
    stop_after: int | None  # answers given before leaving (drop-outs only)


@dataclass(frozen=True)
class SimAnswer:
    choice: str
    response_ms: float


class Responder:
    """Draws participants and their answers; one instance per simulated study (it remembers image effects)."""

    def __init__(self, config: SimulationConfig, *, seed: int | None = 0) -> None:
        self.config = config
        self.rng = np.random.default_rng(seed)
        total_sd = math.hypot(config.participant_sd, config.image_sd)
        self.intercepts = {m: logit_intercept(float(r), total_sd) for m, r in config.true_rates.items()}
        self.real_intercept = logit_intercept(config.real_rate, config.participant_sd)
        self._image_effects: dict[str, float] = {}

    def participants(self, n: int, *, trials_each: int) -> list[SimParticipant]:
        """`n` participants: round(share * n) careless and drop-outs, the rest attentive, in random order."""
        n_careless = int(round(self.config.careless_share * n))
        n_dropout = min(n - n_careless, int(round(self.config.dropout_share * n)))
        kinds = ["careless"] * n_careless + ["dropout"] * n_dropout + ["attentive"] * (n - n_careless - n_dropout)
        self.rng.shuffle(kinds)
        people = []
        for kind in kinds:
            effect = float(self.rng.normal(0.0, self.config.participant_sd)) if self.config.participant_sd > 0 else 0.0
            stop = int(self.rng.integers(0, max(1, trials_each))) if kind == "dropout" else None
            people.append(SimParticipant(kind, effect, stop))
        return people

    def image_effect(self, image_key: str) -> float:
        if image_key not in self._image_effects:
            sd = self.config.image_sd
            self._image_effects[image_key] = float(self.rng.normal(0.0, sd)) if sd > 0 else 0.0
        return self._image_effects[image_key]

    def _response_ms(self, careless: bool) -> float:
        if careless:
            return float(450.0 * math.exp(0.35 * self.rng.normal()))
        if self.rng.random() < self.config.fast_share:
            return float(self.rng.uniform(120.0, 295.0))
        return float(1800.0 * math.exp(0.5 * self.rng.normal()))

    def answer(self, who: SimParticipant, *, mode: str, phase: str, image_key: str, method: str, real_side: str | None) -> SimAnswer:
        """The choice ("left"/"right" or "real"/"fake") participant `who` gives on one trial."""
        rng = self.rng
        careless = who.kind == "careless"
        if mode == "pair":
            fake_side = "right" if real_side == "left" else "left"
            if phase == "catch":
                right = rng.random() < (self.config.careless_catch_accuracy if careless else self.config.catch_accuracy)
                choice = real_side if right else fake_side
            elif careless:
                choice = "left" if rng.random() < 0.5 else "right"
            else:
                p = special.expit(self.intercepts[method] + who.effect + self.image_effect(image_key))
                choice = fake_side if rng.random() < p else real_side
        elif mode == "single":
            if phase == "catch":
                right = rng.random() < (self.config.careless_catch_accuracy if careless else self.config.catch_accuracy)
                choice = "fake" if right else "real"
            elif careless:
                choice = "real" if rng.random() < 0.5 else "fake"
            else:
                if method == REAL:
                    p = special.expit(self.real_intercept + who.effect)
                else:
                    p = special.expit(self.intercepts[method] + who.effect + self.image_effect(image_key))
                choice = "real" if rng.random() < p else "fake"
        else:
            raise SurveyError(f"The mode must be 'pair' or 'single', not '{mode}'.")
        return SimAnswer(str(choice), self._response_ms(careless))


def simulate_frame(
    config: SimulationConfig,
    *,
    participants: int = 40,
    images: int = 24,
    protocol: Protocol | None = None,
    seed: int = 0,
    study: str = "simulated-frame",
) -> pd.DataFrame:
    """A trials frame (the columns of `Store.trials_frame`) from simulated answers, without a database.

    Trial plans come from `survey.study.plan_trials` (the store's own planner) and answers from the
    same `Responder` the CLI uses, so a thousand studies take seconds.
    """
    protocol = protocol or Protocol(mode="pair", practice_trials=2, test_trials=20, catch_rate=0.1, seed=seed)
    methods = sorted(config.true_rates)
    keys = [f"img{i:03d}" for i in range(images)]
    responder = Responder(config, seed=seed)
    n_trials = protocol.fitted(len(keys))[0].images_needed
    people = responder.participants(participants, trials_each=n_trials)
    rows = []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    trial_id = 0
    for ordinal, who in enumerate(people):
        plan = plan_trials(protocol, image_keys=keys, methods=methods, ordinal=ordinal)
        finished = who.stop_after is None
        for trial in plan:
            trial_id += 1
            answered = who.stop_after is None or trial.position < who.stop_after
            is_real = None if protocol.mode == "pair" else trial.method == REAL
            row = {
                "study": study, "mode": protocol.mode, "participant": ordinal + 1,
                "participant_finished": finished, "trial_id": trial_id, "position": trial.position,
                "phase": trial.phase, "image_key": trial.image_key, "method": trial.method,
                "is_real": np.nan if is_real is None else is_real, "real_side": trial.real_side,
                "answered": answered, "choice": None, "correct": None, "fooled": None,
                "judged_real": None, "response_ms": None, "answered_at": None,
            }  # fmt: skip
            if answered:
                ans = responder.answer(
                    who, mode=protocol.mode, phase=trial.phase, image_key=trial.image_key,
                    method=trial.method, real_side=trial.real_side,
                )  # fmt: skip
                row.update(_derived(protocol.mode, ans.choice, trial.method, trial.real_side))
                row["response_ms"] = ans.response_ms
                row["answered_at"] = start + pd.Timedelta(minutes=ordinal, seconds=trial.position * 3)
            rows.append(row)
    frame = pd.DataFrame(rows, columns=TRIALS_FRAME_COLUMNS)
    return frame


def _derived(mode: str, choice: str, method: str, real_side: str | None) -> dict:
    """choice -> correct / fooled / judged_real, as the store defines them."""
    if mode == "pair":
        correct = is_correct(mode, choice, real_side=real_side, stimulus_is_real=None)
        return {"choice": choice, "correct": correct, "fooled": not correct, "judged_real": None}
    is_real = method == REAL
    correct = is_correct(mode, choice, real_side=None, stimulus_is_real=is_real)
    judged_real = choice == "real"
    return {"choice": choice, "correct": correct, "fooled": None if is_real else judged_real, "judged_real": judged_real}
