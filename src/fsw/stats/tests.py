"""Null distributions of a key-error count and their thresholds: binomial, beta-binomial, conformal.

"Marked iff errors < threshold" throughout; a threshold of 0 calls nothing marked.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.stats import betabinom, binom, binomtest

DEFAULT_Z = 0.05
CONFIDENCE = 0.95  # of every Clopper-Pearson interval in the tables


def binomial_threshold(n: int, z: float, p: float = 0.5) -> int:
    """The largest integer t with P[Binomial(n, p) <= t - 1] < z (`fsw.verify.theta` is p = 1/2).

    A suspect with fewer than t errors out of n is called marked; the size of that test is
    `attained_size(n, t, p)`, at most z.
    """
    if n <= 0:
        raise ValueError(f"number of key items must be positive, got {n}")
    if not 0.0 < z < 1.0:
        raise ValueError(f"significance z must be in (0, 1), got {z}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"error probability p must be in [0, 1], got {p}")
    k = int(binom.ppf(z, n, p))  # smallest k with cdf(k) >= z
    while binom.cdf(k, n, p) < z:  # guard against rounding in ppf
        k += 1
    while k > 0 and binom.cdf(k - 1, n, p) >= z:
        k -= 1
    return k


def binomial_p_value(errors: int, n: int, p: float = 0.5) -> float:
    """P[Binomial(n, p) <= errors]: how likely a suspect whose items are coins errs this little
    (the paper's p-value with p = 1/2)."""
    return float(binom.cdf(errors, n, p))


def attained_size(n: int, threshold: int, p: float = 0.5) -> float:
    """P[Binomial(n, p) <= threshold - 1]: the exact false-positive rate of "marked iff errors < threshold"
    when every key item is an independent coin with error probability p."""
    return float(binom.cdf(threshold - 1, n, p))


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion k/n; (nan, nan) if n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    interval = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="exact")
    return float(interval.low), float(interval.high)


def min_null_models(z: float) -> int:
    """Null models a conformal threshold needs before it can call anything marked at level z.

    With n calibration models the smallest conformal p-value is 1/(n+1), so n >= 1/z - 1
    (19 at z = 0.05, 99 at z = 0.01).
    """
    return max(0, math.ceil(1.0 / z - 1.0 - 1e-9))


def conformal_threshold(null_errors: Iterable[int], z: float) -> int:
    """The rank threshold t from null models' errors: "marked iff errors < t".

    The conformal p-value of a new suspect is (1 + #{null errors <= its errors}) / (n + 1); calling it
    marked iff that is <= z equals "errors < t" with t the (floor(z (n+1)))-th smallest null error.
    For a new null model exchangeable with the calibration models, P[errors < t] <= z exactly,
    whatever the null distribution is. With fewer than `min_null_models(z)` models t = 0: no
    suspect can be called marked.
    """
    values = np.sort(np.asarray(list(null_errors), dtype=float))
    rank = math.floor(z * (len(values) + 1) + 1e-9)  # how many nulls may lie at or below a rejection
    if rank < 1:
        return 0
    return int(values[rank - 1])


def conformal_p_value(errors: int, null_errors: Iterable[int]) -> float:
    values = np.asarray(list(null_errors), dtype=float)
    return float((1 + np.sum(values <= errors)) / (len(values) + 1))


@dataclass(frozen=True)
class BetaBinomial:
    """Errors of null models on n items: Binomial(n, p) with p ~ Beta(a, b) varying between models.

    Fitted by the method of moments; if the models vary no more than a binomial would (or there are
    fewer than two), it is the plain Binomial(n, mean error rate): a = b = inf.
    """

    n: int
    mean: float  # mean error rate of the null models
    a: float
    b: float

    @classmethod
    def fit(cls, errors: Iterable[int], n: int) -> BetaBinomial:
        values = np.asarray(list(errors), dtype=float)
        if len(values) == 0:
            raise ValueError("no null errors to fit")
        p = float(values.mean() / n)
        if len(values) < 2 or p <= 0.0 or p >= 1.0 or n < 2:
            return cls(n, p, math.inf, math.inf)
        ratio = float(values.var(ddof=1)) / (n * p * (1.0 - p))  # variance over the binomial one
        if ratio <= 1.0:
            return cls(n, p, math.inf, math.inf)
        rho = min((ratio - 1.0) / (n - 1), 1.0 - 1e-9)  # intra-model correlation
        scale = 1.0 / rho - 1.0
        if scale > 1e6:  # practically binomial (and scipy's beta-binomial overflows there)
            return cls(n, p, math.inf, math.inf)
        return cls(n, p, p * scale, (1.0 - p) * scale)

    def cdf(self, k: int) -> float:
        return float(self.cdfs()[min(max(int(k), -1), self.n + 1) + 1])

    @functools.cached_property
    def _cdfs(self) -> np.ndarray:
        k = np.arange(-1, self.n + 2)
        if math.isinf(self.a):
            return binom.cdf(k, self.n, self.mean)
        return betabinom.cdf(k, self.n, self.a, self.b)

    def cdfs(self) -> np.ndarray:
        """P[errors <= k] for k = -1, 0, ..., n, n + 1."""
        return self._cdfs

    def threshold(self, z: float) -> int:
        """The largest t with P[errors <= t - 1] < z."""
        if self.mean <= 0.0:
            return 0  # null models never err: a suspect with no errors looks like any of them
        below = self.cdfs()[:-1] < z  # entry t: P[errors <= t - 1] < z, t = 0 .. n + 1
        return int(np.flatnonzero(below).max()) if below.any() else 0

    def p_value(self, errors: int) -> float:
        return self.cdf(errors)


@dataclass(frozen=True)
class Conformal:
    """The null models' own errors as the null distribution (rank test)."""

    errors: np.ndarray

    def threshold(self, z: float) -> int:
        return conformal_threshold(self.errors, z)

    def p_value(self, errors: int) -> float:
        return conformal_p_value(errors, self.errors)

