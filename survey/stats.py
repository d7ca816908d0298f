"""Statistics for the real-or-fake study: pure functions over numbers and arrays.

Nothing here reads the database or draws plots; `survey.report` does that and calls these.

- `wilson_interval`: score interval for one binomial proportion (Wilson 1927).
- `binomial_test`: exact two-sided binomial test (scipy.stats.binomtest).
- `dprime`: signal-detection sensitivity with the log-linear correction (Hautus 1995).
- `fleiss_kappa`: agreement between raters, generalised to unequal numbers of raters per item.
- `TwoWayBootstrap`: a cluster bootstrap that resamples participants AND images (crossed design),
  with the variance correction described in its docstring; its intervals invert to p-values.
- `effective_wilson_interval`, `score_test`: Wilson's interval and the score test it inverts, on an
  effective sample size (trials divided by a design effect), for rates of exactly 0% or 100%,
  where every bootstrap replicate is the same and the bootstrap interval has no width.
- `difference_interval`: an interval for a difference from the two estimates' own intervals
  (MOVER, Zou & Donner 2008; Newcombe 1998's method 10 when those are Wilson intervals).
- `inverted_p_value`: the p-value of any family of nested intervals (the level where one touches the null).
- `holm_adjust`: Holm's (1979) step-down adjustment for a family of p-values.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as _st

__all__ = [
    "BootstrapInterval",
    "TwoWayBootstrap",
    "binomial_test",
    "difference_interval",
    "dprime",
    "effective_wilson_interval",
    "fleiss_kappa",
    "holm_adjust",
    "inverted_p_value",
    "score_test",
    "wilson_interval",
]


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}.")
    return float(_st.norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(successes: float, trials: float, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion `successes / trials`.

    Returns (nan, nan) when there are no trials. Unlike the Wald interval it stays inside [0, 1]
    and keeps close to nominal coverage for small n and rates near 0 or 1 (Newcombe 1998).
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}.")
    if trials == 0:
        return (math.nan, math.nan)
    z = _z(confidence)
    p = successes / trials
    denom = 1.0 + z * z / trials
    centre = (p + z * z / (2.0 * trials)) / denom
    half = z * math.sqrt(p * (1.0 - p) / trials + z * z / (4.0 * trials * trials)) / denom
    # at 0 or n successes the bound is exactly 0 or 1; rounding would otherwise leave 1e-17.
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == trials else min(1.0, centre + half)
    return (lower, upper)


def binomial_test(successes: int, trials: int, *, p: float = 0.5) -> float:
    """Exact two-sided binomial test of H0: rate == p. Returns the p-value (nan with no trials).

    Treats trials as independent; with correlated answers (the same person, the same image)
    it is anti-conservative, which is why the report also gives a cluster-bootstrap interval.
    """
    if trials == 0:
        return math.nan
    return _binomtest(int(successes), int(trials), float(p))


@functools.lru_cache(maxsize=4096)
def _binomtest(successes: int, trials: int, p: float) -> float:
    # Cached: the admin view and the coverage simulations ask for the same few (k, n) again and again.
    return float(_st.binomtest(successes, trials, p, alternative="two-sided").pvalue)


def effective_wilson_interval(
    successes: float, trials: float, effective_trials: float, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Wilson interval for the rate `successes / trials` as if it came from `effective_trials` independent trials.

    Answers that share a participant or an image carry less information than their number; with
    effective_trials = trials / design effect (Kish 1965) the interval widens accordingly. Unlike a
    bootstrap it keeps its width at a rate of exactly 0 or 1. Returns (nan, nan) with no trials.
    """
    if trials == 0:
        return (math.nan, math.nan)
    if not 0.0 < effective_trials <= trials:
        raise ValueError(f"need 0 < effective_trials <= trials, got {effective_trials} of {trials}.")
    return wilson_interval(successes / trials * effective_trials, effective_trials, confidence=confidence)


def score_test(successes: float, trials: float, *, p: float = 0.5, effective_trials: float | None = None) -> float:
    """Two-sided score test of H0: rate == p, on `effective_trials` (default: `trials`) independent trials.

    It is the test the Wilson interval inverts: the interval at level 1 - alpha excludes p exactly
    when this p-value is below alpha. Returns nan with no trials.
    """
    if trials == 0:
        return math.nan
    if not 0.0 < p < 1.0:
        raise ValueError(f"the null rate must be strictly between 0 and 1, got {p}.")
    n = trials if effective_trials is None else effective_trials
    z = (successes / trials - p) / math.sqrt(p * (1.0 - p) / n)
    return float(2.0 * _st.norm.sf(abs(z)))


def difference_interval(
    estimate_a: float, interval_a: tuple[float, float], estimate_b: float, interval_b: tuple[float, float]
) -> tuple[float, float]:
    """Interval for estimate_a - estimate_b built from each estimate's own interval (MOVER).

    L = d - sqrt((a - low_a)^2 + (high_b - b)^2), U = d + sqrt((high_a - a)^2 + (b - low_b)^2)
    (Zou & Donner 2008; with Wilson intervals this is Newcombe 1998's method 10). It treats the two
    estimates as independent, which is conservative when, as here, they share participants and
    images (a positive correlation makes the true difference less variable). nan in, nan out.
    """
    a, b = float(estimate_a), float(estimate_b)
    (low_a, high_a), (low_b, high_b) = interval_a, interval_b
    d = a - b
    low = d - math.sqrt((a - low_a) ** 2 + (high_b - b) ** 2)
    high = d + math.sqrt((high_a - a) ** 2 + (b - low_b) ** 2)
    return (low, high)


def inverted_p_value(interval_at: Callable[[float], tuple[float, float]], null: float, *, tol: float = 1e-7) -> float:
    """Two-sided p-value of H0: value == null from a family of nested intervals.

    `interval_at(confidence)` gives the interval at that level; the p-value is 1 - the level at
    which the interval's nearer end reaches `null` (found by bisection), so "p < alpha" and "the
    1 - alpha interval excludes the null" always agree. nan when the interval cannot be formed.
    """
    def excludes(confidence: float) -> bool:
        low, high = interval_at(confidence)
        return not (low <= null <= high)

    narrow, wide = 1e-9, 1.0 - 1e-9
    low, high = interval_at(narrow)
    if not (math.isfinite(low) and math.isfinite(high)):
        return math.nan
    if not excludes(narrow):
        return 1.0
    if excludes(wide):
        return 1.0 - wide
    while wide - narrow > tol:  # excludes(narrow) is True, excludes(wide) is False
        middle = 0.5 * (narrow + wide)
        if excludes(middle):
            narrow = middle
        else:
            wide = middle
    return 1.0 - 0.5 * (narrow + wide)


def holm_adjust(p_values) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values; rejecting where adjusted p < alpha keeps the chance of
    any false rejection in the family at most alpha, whatever the dependence between the tests.

    nan entries (tests that could not be made) are left nan and do not count towards the family size.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = len(finite)
    if m == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def dprime(hits, n_signal, false_alarms, n_noise, *, correction: str | None = "loglinear"):
    """Sensitivity d' = z(hit rate) - z(false-alarm rate).

    In this study "signal" is a real photograph and "yes" is the answer "real": a hit is a real
    photo judged real, a false alarm is a colorization judged real. d' = 0 means observers cannot
    tell the method's output from real photographs.

    correction="loglinear" (Hautus 1995) adds 0.5 to every hit and false-alarm count and 1 to
    every count of trials, always (not only when a rate is 0 or 1, which would bias d' by where the
    cut-off lies); it keeps d' finite when a rate is exactly 0 or 1. `None` uses the raw rates.
    Works element-wise on numpy arrays (the bootstrap passes weighted counts).
    """
    hits = np.asarray(hits, dtype=float)
    false_alarms = np.asarray(false_alarms, dtype=float)
    n_signal = np.asarray(n_signal, dtype=float)
    n_noise = np.asarray(n_noise, dtype=float)
    if correction == "loglinear":
        hit_rate = (hits + 0.5) / (n_signal + 1.0)
        fa_rate = (false_alarms + 0.5) / (n_noise + 1.0)
    elif correction is None:
        with np.errstate(divide="ignore", invalid="ignore"):
            hit_rate = hits / n_signal
            fa_rate = false_alarms / n_noise
    else:
        raise ValueError(f"unknown correction {correction!r}; use 'loglinear' or None.")
    with np.errstate(invalid="ignore"):
        value = _st.norm.ppf(hit_rate) - _st.norm.ppf(fa_rate)
    empty = (n_signal <= 0) | (n_noise <= 0)
    value = np.where(empty, np.nan, value)
    return float(value) if value.ndim == 0 else value


def fleiss_kappa(counts) -> float:
    """Fleiss' kappa from an items x categories table of rating counts.

    `counts[i, j]` is how many raters put item i in category j. Items rated by fewer than two
    raters carry no information about agreement and are dropped. Items may have different numbers
    of raters: the per-item agreement P_i = sum_j n_ij (n_ij - 1) / (n_i (n_i - 1)) is averaged
    with equal weight per item, and the chance agreement uses category shares pooled over all
    ratings, p_j = sum_i n_ij / sum_i n_i. With equal rater counts this is exactly Fleiss (1971).
    Returns nan when fewer than one item is usable or every rating falls in one category.
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2:
        raise ValueError("counts must be a 2-D table: items x categories.")
    if np.any(table < 0):
        raise ValueError("counts must be non-negative.")
    n_i = table.sum(axis=1)
    table = table[n_i >= 2]
    n_i = n_i[n_i >= 2]
    if table.shape[0] == 0:
        return math.nan
    p_i = (table * (table - 1.0)).sum(axis=1) / (n_i * (n_i - 1.0))
    p_bar = float(p_i.mean())
    p_j = table.sum(axis=0) / n_i.sum()
    p_e = float((p_j**2).sum())
    if math.isclose(p_e, 1.0):
        return math.nan
    return (p_bar - p_e) / (1.0 - p_e)


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Small products: einsum, which skips BLAS's thread start-up (it dominates at this size).
    if a.shape[0] * a.shape[1] * b.shape[1] < 4_000_000:
        return np.einsum("ij,jk->ik", a, b)
    return a @ b


def _resample_counts(rng: np.random.Generator, reps: int, n: int) -> np.ndarray:
    """reps x n multiplicities: how often each of n units is drawn in n draws with replacement."""
    draws = rng.integers(0, n, size=(reps, n)) + (np.arange(reps) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=reps * n).reshape(reps, n).astype(float)


@dataclass(frozen=True)
class BootstrapInterval:
    """A bootstrap confidence interval; `low`/`high` are nan when it could not be formed."""

    estimate: float
    low: float
    high: float
    se: float  # two-way standard error after the correction
    se_pigeonhole: float  # standard error of the raw product resampling (conservative)
    reps_used: int  # replicates where the statistic was defined
    p_value: float = math.nan  # two-sided, against `null` when interval() was given one

    @property
    def collapsed(self) -> bool:
        """True when every replicate gave the same value (a rate of exactly 0 or 1): the interval has no width."""
        return math.isfinite(self.low) and self.high - self.low <= 0.0


class TwoWayBootstrap:
    """Cluster bootstrap for a crossed participants x images design.

    Scheme (Owen 2007, "the pigeonhole bootstrap"): each replicate draws the participants with
    replacement and, independently, the images with replacement, and keeps every trial whose
    participant and image were both drawn, weighted by the product of the two multiplicities.
    Trials are aggregated to (participant, image) cells first, so one replicate costs one matrix
    product however many trials there are.

    That product resampling counts trial-level noise about three times over (Owen 2007;
    McCullagh 2000): with independent answers its variance is ~3x the true one and a 95% interval
    covers ~99.9% of the time. From the same draws we therefore also compute the one-way
    replicates (participants only: weights w_p; images only: weights w_i) and use the two-way
    cluster-robust combination of Cameron, Gelbach & Miller (2011),

        V = 2 V_participants + 2 V_images - V_both,   floored at max(V_participants, V_images),

    which to first order equals participant variance + image variance + trial variance, each
    counted once. The interval is the percentile interval of the product replicates shrunk about
    the estimate by sqrt(V / V_both) (so it keeps their skew), clipped to [lower, upper].

    Statistics are functions of weighted column sums: `values` is an (n_trials, q) array, and
    `interval(fn)` applies `fn` to arrays of sums of shape (..., q) — observed and replicates.
    """

    def __init__(
        self,
        values,
        participants,
        images,
        *,
        n_boot: int = 2000,
        seed: int | None = 0,
    ) -> None:
        values = np.asarray(values, dtype=float)
        if values.ndim == 1:
            values = values[:, None]
        participants = np.asarray(participants)
        images = np.asarray(images)
        if not (len(values) == len(participants) == len(images)):
            raise ValueError("values, participants and images must have the same length.")
        if n_boot < 1:
            raise ValueError(f"n_boot must be at least 1, got {n_boot}.")
        p_codes, p_index = np.unique(participants, return_inverse=True)
        i_codes, i_index = np.unique(images, return_inverse=True)
        self.n_participants = len(p_codes)
        self.n_images = len(i_codes)
        self.n_boot = int(n_boot)
        q = values.shape[1]
        # cells[p, i, :] = sum of the trial values for participant p and image i
        cell = p_index * len(i_codes) + i_index
        size = len(p_codes) * len(i_codes)
        cells = np.stack([np.bincount(cell, weights=values[:, j], minlength=size) for j in range(q)], axis=-1)
        cells = cells.reshape(len(p_codes), len(i_codes), q)
        self.observed = cells.sum(axis=(0, 1))
        if self.n_participants == 0 or self.n_images == 0:
            empty = np.full((self.n_boot, q), np.nan)
            self.both = self.by_participant = self.by_image = empty
            return
        rng = np.random.default_rng(seed)
        w_p = _resample_counts(rng, self.n_boot, self.n_participants)
        w_i = _resample_counts(rng, self.n_boot, self.n_images)
        per_participant = cells.sum(axis=1)  # (P, q)
        per_image = cells.sum(axis=0)  # (I, q)
        self.by_participant = _matmul(w_p, per_participant)  # (B, q)
        self.by_image = _matmul(w_i, per_image)
        # sum_p sum_i w_p w_i cells[p, i] = sum_i w_i (w_p @ cells[:, i]); chunked to bound memory
        both = np.empty((self.n_boot, q))
        chunk = max(1, int(4_000_000 // max(1, self.n_images * q)))
        flat = cells.reshape(self.n_participants, -1)
        for start in range(0, self.n_boot, chunk):
            stop = min(self.n_boot, start + chunk)
            left = _matmul(w_p[start:stop], flat).reshape(stop - start, self.n_images, q)
            both[start:stop] = np.einsum("bi,biq->bq", w_i[start:stop], left)
        self.both = both

    def interval(
        self,
        statistic: Callable[[np.ndarray], np.ndarray],
        *,
        confidence: float = 0.95,
        bounds: tuple[float, float] = (-math.inf, math.inf),
        null: float | None = None,
    ) -> BootstrapInterval:
        """Estimate and two-way interval for `statistic(sums)`; see the class docstring.

        With `null`, also the two-sided p-value that inverts the same interval: from the k rescaled
        replicates (of B) on the far side of `null`, 2 (k + 1) / (B + 1), capped at 1, so p <
        1 - confidence when the interval excludes `null` (up to the resolution of 1 / B), and a
        p-value is never 0: the smallest a bootstrap of B replicates can show is 2 / (B + 1).
        """
        _z(confidence)
        with np.errstate(divide="ignore", invalid="ignore"):
            estimate = float(statistic(self.observed))
            both = np.asarray(statistic(self.both), dtype=float)
            by_p = np.asarray(statistic(self.by_participant), dtype=float)
            by_i = np.asarray(statistic(self.by_image), dtype=float)
        ok = np.isfinite(both) & np.isfinite(by_p) & np.isfinite(by_i)
        nan = BootstrapInterval(estimate, math.nan, math.nan, math.nan, math.nan, int(ok.sum()))
        # With one participant (or one image) there is no between-cluster variation to resample.
        if self.n_participants < 2 or self.n_images < 2 or not math.isfinite(estimate) or ok.sum() < 2:
            return nan
        both, by_p, by_i = both[ok], by_p[ok], by_i[ok]
        v_both = float(np.var(both, ddof=1))
        v_p = float(np.var(by_p, ddof=1))
        v_i = float(np.var(by_i, ddof=1))
        v = max(2.0 * v_p + 2.0 * v_i - v_both, v_p, v_i)
        scale = math.sqrt(v / v_both) if v_both > 0 else 0.0
        alpha = 1.0 - confidence
        shrunk = estimate + scale * (both - estimate)
        low, high = np.quantile(shrunk, [alpha / 2.0, 1.0 - alpha / 2.0])
        low = float(min(max(low, bounds[0]), bounds[1]))
        high = float(min(max(high, bounds[0]), bounds[1]))
        p_value = math.nan
        if null is not None:
            beyond = min(int(np.sum(shrunk <= null)), int(np.sum(shrunk >= null)))
            p_value = float(min(1.0, 2.0 * (beyond + 1) / (len(shrunk) + 1)))
        return BootstrapInterval(estimate, low, high, math.sqrt(v), math.sqrt(v_both), int(ok.sum()), p_value)
