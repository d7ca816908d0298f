"""Simulated participants with a known true fooling rate, to check the report end to end.

`python -m survey.simulate --db URL --study NAME --participants 40 --true-rate method=0.35 --seed 0`
answers a stored study through the real storage layer (`Store.start_participant`, `consent`,
`next_trial`, `answer`: the same calls the app makes, with response times set through their
`now=` clock), so what the report reads is exactly what a real study would store. The simulated
participant knows each trial's answer key from `Store.trial_truth` (server side only). `--build-demo-from-synthetic` first creates a small study from synthetic
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
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special

from . import SurveyError
from .inputs import quoted
from .store import TRIALS_FRAME_COLUMNS
from .study import CATCH, REAL, Protocol, is_correct, plan_trials, split_pools

if TYPE_CHECKING:  # the Store pulls in SQLAlchemy; simulate_frame does not need it
    from PIL import Image

    from .store import Store, StudySummary

logger = logging.getLogger(__name__)

# A study whose name starts with this is simulated; the report labels it so in its title.
SIMULATED_PREFIX = "simulated-"


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
                raise SurveyError(f"{quoted(name)} is reserved and cannot be a method name.")
            if not 0.0 <= float(rate) <= 1.0:
                raise SurveyError(f"The true rate of {quoted(name)} must be between 0 and 1, not {rate}.")
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
            raise SurveyError(f"The mode must be 'pair' or 'single', not {quoted(mode)}.")
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

    Trial plans come from `survey.study.plan_trials` (the store's own planner, with the practice pool
    a built study would have) and answers from the same `Responder` the CLI uses, so a thousand
    studies take seconds. The default protocol shows every image with every method (the design of
    the reference coverage scenarios); pass one with `one_method_per_image` for the other.
    """
    protocol = protocol or Protocol(mode="pair", practice_trials=2, test_trials=20, catch_rate=0.1, seed=seed, one_method_per_image=False)
    methods = sorted(config.true_rates)
    keys = [f"img{i:03d}" for i in range(images)]
    practice_keys, _ = split_pools(protocol, image_keys=keys, methods=methods)
    responder = Responder(config, seed=seed)
    n_trials = protocol.fitted(len(keys))[0].images_needed
    people = responder.participants(participants, trials_each=n_trials)
    rows = []
    offsets = []  # seconds after the start, for answered_at
    trial_id = 0
    pair = protocol.mode == "pair"
    for ordinal, who in enumerate(people):
        plan = plan_trials(protocol, image_keys=keys, methods=methods, ordinal=ordinal, practice_keys=practice_keys)
        finished = who.stop_after is None
        for trial in plan:
            trial_id += 1
            answered = who.stop_after is None or trial.position < who.stop_after
            is_real = np.nan if pair else trial.method == REAL
            if answered:
                ans = responder.answer(
                    who, mode=protocol.mode, phase=trial.phase, image_key=trial.image_key,
                    method=trial.method, real_side=trial.real_side,
                )  # fmt: skip
                choice, correct, fooled, judged_real = _derived(protocol.mode, ans.choice, trial.method, trial.real_side)
                response_ms, offset = ans.response_ms, 60.0 * ordinal + 3.0 * trial.position
            else:
                choice = correct = fooled = judged_real = response_ms = None
                offset = np.nan
            offsets.append(offset)
            rows.append(
                (study, protocol.mode, f"P{ordinal + 1:04d}", finished, trial_id, trial.position, trial.phase, trial.image_key,
                 trial.method, is_real, trial.real_side, answered, choice, correct, fooled, judged_real, response_ms, None,
                 _is_slow(protocol, response_ms), False)
            )  # fmt: skip
    frame = pd.DataFrame.from_records(rows, columns=TRIALS_FRAME_COLUMNS)
    frame["response_ms"] = frame["response_ms"].astype(float)
    frame["answered_at"] = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.asarray(offsets), unit="s")
    return frame


def _is_slow(protocol: Protocol, response_ms: float | None) -> bool | None:
    """The store's `slow` flag: None for no answer."""
    if response_ms is None:
        return None
    return protocol.max_response_ms is not None and response_ms > protocol.max_response_ms


def _derived(mode: str, choice: str, method: str, real_side: str | None) -> tuple:
    """choice -> (choice, correct, fooled, judged_real), as the store defines them."""
    if mode == "pair":
        correct = is_correct(mode, choice, real_side=real_side, stimulus_is_real=None)
        return choice, correct, not correct, None
    is_real = method == REAL
    judged_real = choice == "real"
    correct = is_correct(mode, choice, real_side=None, stimulus_is_real=is_real)
    return choice, correct, None if is_real else judged_real, judged_real


# ----------------------------------------------------------------------------- through the Store


def simulate_study(
    store: "Store",
    study: str,
    config: SimulationConfig,
    *,
    participants: int,
    seed: int = 0,
    start: datetime | None = None,
    progress: bool = False,
) -> dict[str, int]:
    """Add `participants` simulated participants to `study` through the Store's participant flow.

    Only studies named "simulated-..." are accepted, so simulated answers can never be mixed into
    a real study. Response times are imposed through the Store's `now=` clock override: each
    answer comes `response_ms` after its trial was served. The study's record gets this run (its
    true rates, seed and count) under "simulated", which is what titles its report SIMULATED.
    Returns counts per participant kind.
    """
    from tqdm.auto import tqdm

    if not study.startswith(SIMULATED_PREFIX):
        raise SurveyError(
            f"Simulated answers go only into studies whose name starts with '{SIMULATED_PREFIX}' (so no real study "
            f"is ever mixed with them and reports label them); {quoted(study)} does not."
        )
    if participants < 1:
        raise SurveyError("Simulate at least one participant.")
    summary = next((s for s in store.list_studies() if s.name == study), None)
    if summary is None:
        raise SurveyError(f"There is no study called {quoted(study)}; create one with --build-demo-from-synthetic.")
    unknown = sorted(set(summary.methods) - set(config.true_rates))
    if unknown:
        raise SurveyError(
            f"Give a true rate for every method of {quoted(study)}: missing {', '.join(unknown)} (e.g. --true-rate {unknown[0]}=0.3)."
        )
    protocol = store.get_protocol(study)
    run = {
        "true_rates": {m: float(r) for m, r in config.true_rates.items()}, "participant_sd": config.participant_sd,
        "image_sd": config.image_sd, "participants": participants, "seed": seed,
        **({"real_rate": config.real_rate} if protocol.mode == "single" else {}),
    }  # fmt: skip
    earlier = store.study_record(study).get("simulated", {}).get("runs", [])
    store.update_study_record(study, simulated={"runs": [*earlier, run]})
    responder = Responder(config, seed=seed)
    people = responder.participants(participants, trials_each=protocol.images_needed)
    clock = start or datetime.now(timezone.utc).replace(microsecond=0)
    kinds: dict[str, int] = {}
    for who in tqdm(people, desc="Simulating", unit="participant", disable=not progress):
        kinds[who.kind] = kinds.get(who.kind, 0) + 1
        token = store.start_participant(study)
        store.consent(token, now=clock)
        done = 0
        while (view := store.next_trial(token, now=clock)) is not None:
            if who.stop_after is not None and done >= who.stop_after:
                break  # leaves with this trial on screen, unanswered
            # The answer key (server side only): a simulated participant answers by the model, not the pixels.
            truth = store.trial_truth(view.trial_id)
            answer = responder.answer(
                who, mode=protocol.mode, phase=truth.phase, image_key=truth.image_key,
                method=truth.method, real_side=truth.real_side,
            )  # fmt: skip
            clock += timedelta(milliseconds=answer.response_ms)
            store.answer(token, view.trial_id, answer.choice, now=clock)
            clock += timedelta(milliseconds=400)
            done += 1
        clock += timedelta(seconds=30)
    return kinds


def synthetic_sources(n: int, *, size: int = 64, seed: int = 0) -> list[tuple[str, "Image.Image"]]:
    """`n` colourful synthetic photos (smooth colour fields with a few discs), no download needed."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    sources = []
    for i in range(n):
        rgb = np.zeros((size, size, 3))
        for c in range(3):
            a, b, phase = rng.uniform(-3, 3, 3)
            rgb[..., c] = 0.5 + 0.35 * np.sin(2 * np.pi * (a * xx + b * yy) / 2 + phase)
        for _ in range(3):
            cx, cy, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.2)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            rgb[disc] = rng.uniform(0.05, 0.95, 3)
        sources.append((f"synthetic-{i:03d}", Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).convert("RGB")))
    return sources


def build_synthetic_study(
    store: "Store", name: str, methods: Sequence[str], *, images: int = 24, protocol: Protocol | None = None, seed: int = 0
) -> "StudySummary":
    """A simulated study: synthetic photos, every method the "gray" baseline under its own name.

    Built with `survey.build.build_study` (the real pipeline: crop, gray, catch, anonymised PNGs),
    without torch. The fakes are placeholders: simulated answers come from the response model,
    not from the pixels.
    """
    from .build import build_study
    from colorize.pixels import gray_image

    if not name.startswith(SIMULATED_PREFIX):
        raise SurveyError(f"A simulated study's name must start with '{SIMULATED_PREFIX}' (e.g. '{SIMULATED_PREFIX}{name}'), so its report is labelled.")
    protocol = protocol or Protocol(practice_trials=2, test_trials=20, catch_rate=0.1, image_size=64, seed=seed)
    sources = synthetic_sources(images, size=protocol.image_size, seed=seed)
    makers = {method: gray_image for method in methods}
    return build_study(store, name=name, sources=sources, makers=makers, protocol=protocol, progress=False)


# ----------------------------------------------------------------------------- command line

_CONFIG_HELP = {
    "real_rate": "single mode: share of real photos judged real by attentive participants",
    "participant_sd": "SD of the participant random effect (logit scale); 0 = none",
    "image_sd": "SD of the image random effect (logit scale); 0 = none",
    "careless_share": "share of careless participants (coin-flip answers, fail catch trials)",
    "dropout_share": "share of participants who stop before the end",
    "catch_accuracy": "attentive participants' accuracy on catch trials",
    "careless_catch_accuracy": "careless participants' accuracy on catch trials",
    "fast_share": "share of attentive answers faster than 300 ms",
}


def _true_rate(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name.strip():
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not METHOD=RATE (e.g. gray=0.35)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m survey.simulate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=None, help="database URL (default: SURVEY_DB_URL or sqlite:///survey.sqlite)")
    parser.add_argument("--study", required=True, help=f"study name; must start with '{SIMULATED_PREFIX}'")
    parser.add_argument("--participants", type=int, default=40, help="simulated participants to add")
    parser.add_argument("--true-rate", type=_true_rate, action="append", required=True, metavar="METHOD=RATE",
                        help="population fooling rate of a method; repeat for each method")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seeds participants, answers and the synthetic study")
    parser.add_argument("--build-demo-from-synthetic", action="store_true",
                        help="first create the study from synthetic images (methods: the gray baseline renamed)")  # fmt: skip
    build = parser.add_argument_group("the synthetic study (with --build-demo-from-synthetic)")
    default = Protocol()
    build.add_argument("--mode", choices=("pair", "single"), default=default.mode)
    build.add_argument("--images", type=int, default=24, help="synthetic source images")
    build.add_argument("--practice", type=int, default=2, help="practice trials per participant")
    build.add_argument("--trials", type=int, default=default.test_trials, help="test trials per participant (catch included)")
    build.add_argument("--catch-rate", type=float, default=default.catch_rate)
    build.add_argument("--size", type=int, default=64, help="side of the square stimuli in pixels")
    model = parser.add_argument_group("the response model")
    for f in dataclasses.fields(SimulationConfig):
        if f.name == "true_rates":
            continue
        model.add_argument(f"--{f.name.replace('_', '-')}", type=float, default=f.default, help=f"{_CONFIG_HELP.get(f.name, '')} (default {f.default})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    from .store import Store

    try:
        rates = dict(args.true_rate)
        fields = {f.name: getattr(args, f.name) for f in dataclasses.fields(SimulationConfig) if f.name != "true_rates"}
        config = SimulationConfig(true_rates=rates, **fields)
        store = Store(args.db)
        if args.build_demo_from_synthetic:
            protocol = Protocol(
                mode=args.mode, practice_trials=args.practice, test_trials=args.trials,
                catch_rate=args.catch_rate, image_size=args.size, seed=args.seed,
            )  # fmt: skip
            summary = build_synthetic_study(store, args.study, sorted(rates), images=args.images, protocol=protocol, seed=args.seed)
            print(f"Built the simulated study '{summary.name}' ({summary.images} synthetic images, methods {', '.join(summary.methods)}).")
        kinds = simulate_study(store, args.study, config, participants=args.participants, seed=args.seed, progress=True)
    except SurveyError as error:
        raise SystemExit(f"error: {error}") from None
    counts = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    print(f"Added {sum(kinds.values())} simulated participants to '{args.study}' ({counts}) in {store!r}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
