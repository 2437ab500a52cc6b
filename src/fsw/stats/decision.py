"""Decisions on one suspect from its answers to a key and the key's calibration alone.

Every rule here has the paper's form: the suspect's key errors e (items not answered with the key's
label), its p-value P_null[E <= e], and "marked iff p < z", which is "marked iff e < theta" for the
largest theta with P_null[E <= theta - 1] < z. The rules differ in the null distribution of E, the
errors of a model that was never marked:

- `paper_binomial`: every item a fair coin, E ~ Binomial(l, 1/2) (the paper's test; uncalibrated).
- `count_betabinomial`: the reference models' error counts, fitted by a beta-binomial (moments).
- `family_binomial`: per family of reference models (their network option), Binomial(l, q) with q
  the one-sided 95% Clopper-Pearson lower bound of the family's pooled error rate; the p-value is
  the largest over the families: the suspect's family is unknown, so it must fit none.
- `item_rasch`: each item's own null probability. A reference model c answers item i with the key's
  label with probability sigmoid(b_i + u_c), u_c ~ N(0, tau^2) (a Rasch model with a random model
  effect: some models are more robust on every item than others), fitted by penalised marginal
  likelihood with a N(mu, 1.5^2) shrinkage prior on the b_i; E's distribution is the mixture over
  u of Poisson-binomials.
- `item_independent`: each item's shrunken match rate, items independent (a Poisson-binomial with no
  model effect). Shown because it is what a per-item test looks like without the model effect: it
  ignores that one robust model matches many items at once, and so underestimates the tail.

The calibration's reference models are the owner's (never the held-out population); for the
`transfer` key strategy they are other models than those the key was selected against (`keygen`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from scipy.stats import binom

from fsw.stats.tests import BetaBinomial, clopper_pearson

PAPER_RULE = "paper_binomial"
RASCH_PRIOR_SD = 1.5  # of the item effects b_i on the logit scale: a weak pull towards their mean
QUADRATURE = np.polynomial.hermite.hermgauss(40)


@dataclass(frozen=True)
class Decision:
    """A rule's verdict on one suspect: marked iff errors < threshold, i.e. p_value < z."""

    rule: str
    marked: bool
    p_value: float
    threshold: int
    errors: int

    def as_record(self) -> dict:
        return {"rule": self.rule, "marked": self.marked, "p_value": self.p_value, "threshold": self.threshold}


@dataclass(frozen=True)
class NullErrors:
    """P_null[E <= e] for e = 0..l: the distribution of a never-marked model's key errors."""

    cdf: np.ndarray

    def p_value(self, errors: int) -> float:
        return float(min(1.0, self.cdf[int(errors)]))

    def threshold(self, z: float) -> int:
        """The largest theta with P[E <= theta - 1] < z (0: nothing can be called marked)."""
        return int(np.count_nonzero(self.cdf < z))

    def decide(self, rule: str, errors: int, z: float) -> Decision:
        threshold = self.threshold(z)
        return Decision(rule, bool(errors < threshold), self.p_value(errors), threshold, int(errors))


def _errors_from_matches(pmf_matches: np.ndarray) -> NullErrors:
    """The errors' cdf from the matches' pmf (E = l - M)."""
    return NullErrors(np.clip(np.cumsum(pmf_matches[::-1]), 0.0, 1.0))


def poisson_binomial(p: np.ndarray) -> np.ndarray:
    """pmf of the number of successes of independent items with probabilities p; one row per row of p."""
    p = np.atleast_2d(p)
    pmf = np.zeros((p.shape[0], p.shape[1] + 1))
    pmf[:, 0] = 1.0
    for i in range(p.shape[1]):
        q = p[:, i : i + 1]
        shifted = np.zeros_like(pmf)
        shifted[:, 1:] = pmf[:, :-1] * q
        pmf = pmf * (1.0 - q) + shifted
    return pmf


def paper_binomial(matches: np.ndarray | None, families, l: int) -> NullErrors:
    return NullErrors(binom.cdf(np.arange(l + 1), l, 0.5))


def count_betabinomial(matches: np.ndarray, families, l: int) -> NullErrors:
    fitted = BetaBinomial.fit(l - matches.sum(axis=1), l)
    return NullErrors(fitted.cdfs()[1:-1])


def family_binomial(matches: np.ndarray, families, l: int) -> NullErrors:
    cdfs = []
    for family in sorted(set(families)):
        rows = matches[[f == family for f in families]]
        errors, items = int(rows.size - rows.sum()), int(rows.size)
        rate = 0.0 if errors == 0 else clopper_pearson(errors, items, confidence=0.90)[0]
        cdfs.append(binom.cdf(np.arange(l + 1), l, rate))
    return NullErrors(np.max(cdfs, axis=0))


def shrunken_rates(matches: np.ndarray, strength: float = 2.0) -> np.ndarray:
    """Each item's match rate over the reference models, pulled towards the key's mean rate by a
    Beta prior worth `strength` models (no item is certain from a handful of models)."""
    mean = float(matches.mean())
    a, b = strength * mean + 1e-3, strength * (1.0 - mean) + 1e-3
    return (matches.sum(axis=0) + a) / (len(matches) + a + b)


def item_independent(matches: np.ndarray, families, l: int) -> NullErrors:
    return _errors_from_matches(poisson_binomial(shrunken_rates(matches))[0])


@dataclass(frozen=True)
class Rasch:
    """logit P[model c answers item i with the key's label] = b_i + u_c, u_c ~ N(0, tau^2)."""

    b: np.ndarray
    tau: float

    @classmethod
    def fit(cls, matches: np.ndarray) -> Rasch:
        a = matches.astype(float)
        n_items = a.shape[1]
        start_rates = (a.sum(axis=0) + 0.5) / (len(a) + 1.0)
        start = np.concatenate([special.logit(start_rates), [math.log(0.5), 0.0]])
        bounds = [(-15.0, 15.0)] * n_items + [(math.log(1e-3), math.log(10.0)), (-15.0, 15.0)]
        result = optimize.minimize(rasch_objective, start, args=(a,), jac=True, method="L-BFGS-B", bounds=bounds)
        return cls(result.x[:n_items], math.exp(result.x[n_items]))

    def matches_pmf(self) -> np.ndarray:
        nodes, weights = QUADRATURE
        p = special.expit(self.b[None, :] + math.sqrt(2.0) * self.tau * nodes[:, None])
        return (weights / math.sqrt(math.pi)) @ poisson_binomial(p)


def rasch_objective(theta: np.ndarray, a: np.ndarray) -> tuple[float, np.ndarray]:
    """The Rasch fit's negative penalised log marginal likelihood and its gradient; theta holds the
    item effects b, log tau and the prior mean mu; a the reference models' 0/1 answers."""
    n_items = a.shape[1]
    nodes, weights = QUADRATURE
    b, tau, mu = theta[:n_items], math.exp(theta[n_items]), theta[n_items + 1]
    shift = math.sqrt(2.0) * tau * nodes  # u at each quadrature node
    logits = b[None, :] + shift[:, None]
    log_match, log_miss = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
    per_model = a @ log_match.T + (1.0 - a) @ log_miss.T + np.log(weights / math.sqrt(math.pi))  # [models, nodes]
    marginal = special.logsumexp(per_model, axis=1)
    posterior = np.exp(per_model - marginal[:, None])  # each model's weight on each node
    residual = a[:, None, :] - special.expit(logits)[None, :, :]  # [models, nodes, items]
    weighted = np.einsum("ck,cki->ki", posterior, residual)
    prior = (b - mu) / RASCH_PRIOR_SD**2
    gradient = np.concatenate([-weighted.sum(axis=0) + prior, [-(weighted.sum(axis=1) * shift).sum(), -prior.sum()]])
    return -marginal.sum() + ((b - mu) ** 2).sum() / (2.0 * RASCH_PRIOR_SD**2), gradient


def item_rasch(matches: np.ndarray, families, l: int) -> NullErrors:
    return _errors_from_matches(Rasch.fit(matches).matches_pmf())


@dataclass(frozen=True)
class DecisionRule:
    name: str
    calibrated: bool
    description: str
    null: Callable[[np.ndarray, tuple, int], NullErrors]


DECISION_RULES: dict[str, DecisionRule] = {rule.name: rule for rule in (
    DecisionRule(PAPER_RULE, False, "errors on all l items vs Binomial(l, 1/2): the paper's test", paper_binomial),
    DecisionRule("count_betabinomial", True, "errors vs a beta-binomial fitted to the reference models' errors",
                 count_betabinomial),
    DecisionRule("family_binomial", True, "errors vs Binomial(l, q_f) per family of reference models, q_f the "
                 "one-sided 95% lower bound of its error rate; the largest p-value over families", family_binomial),
    DecisionRule("item_rasch", True, "errors vs a Rasch model of each item's null probability with a random model "
                 "effect, fitted to the reference models' answers", item_rasch),
    DecisionRule("item_independent", True, "errors vs independent items at their shrunken null rates "
                 "(Poisson-binomial; no model effect)", item_independent),
)}


def get_decision_rule(name: str) -> DecisionRule:
    try:
        return DECISION_RULES[name]
    except KeyError:
        raise ValueError(f"unknown decision rule {name!r}; rules: {', '.join(DECISION_RULES)}") from None


@functools.lru_cache(maxsize=64)
def _null(rule: str, matches: bytes, shape: tuple[int, int], families: tuple[str, ...], l: int) -> NullErrors:
    array = np.frombuffer(matches, dtype=bool).reshape(shape) if shape[0] else None
    return get_decision_rule(rule).null(array, families, l)


def null_errors(rule: str, l: int, matches: np.ndarray | None = None, families: tuple[str, ...] = ()) -> NullErrors:
    """The fitted null distribution of `rule` for a key of l items and its calibration (matches:
    bool [reference models, l]); cached, since a job judges many suspects with one key."""
    definition = get_decision_rule(rule)
    if definition.calibrated and (matches is None or len(matches) == 0):
        raise ValueError(f"decision rule {rule!r} needs the key's calibration (reference models' answers)")
    if matches is None or not definition.calibrated:
        return _null(rule, b"", (0, l), (), l)
    matches = np.ascontiguousarray(matches, dtype=bool)
    return _null(rule, matches.tobytes(), matches.shape, tuple(families), l)
