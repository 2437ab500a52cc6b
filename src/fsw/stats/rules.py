"""Every decision rule beside every verification record: the rules the key ships with, decided in
verify (`fsw.stats.decision`), and count rules calibrated here on the calibration population's
records of the same key, for comparison.

A record's role is its population (`fsw.grid.POPULATIONS`): the marked model, its attacked and
extracted copies, the unmarked model the key was made from (`source`: it errs on exactly the true
adversaries of an embedded key by construction, and is the marked model itself for a scheme that
embeds nothing, so it is reported apart), and three null populations that never mix: `selection`
(the transfer and conferrable strategies picked the key against them), `calibration` (the key ships their
answers; every calibrated rule is fitted to them) and `heldout` (never used to select or to fit:
the false-positive rate is measured on these alone).

The count rules of `RULES` have the form "marked iff s < t": s is the suspect's errors on every key
item (`key_errors`) or on the true adversaries only (`key_errors_true_adv`), t a threshold from the
key size and z (uncalibrated) or from the calibration population's s on the same key (calibrated).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fsw.stats.decision import DECISION_RULES, PAPER_RULE
from fsw.stats.tests import BetaBinomial, Conformal

MARKED, ATTACKED, EXTRACTED, SOURCE = "marked", "attacked", "extracted", "source"
SELECTION, CALIBRATION, HELDOUT = "selection", "calibration", "heldout"
SETTING = ["network", "eps", "key_size", "strategy"]  # the grid point a key belongs to
USEFUL_DROP = 0.035  # an attacked copy is useful within 3.5 points of the marked model's test accuracy (the paper's tolerance)

NullModel = BetaBinomial | Conformal


@dataclass(frozen=True)
class Rule:
    """"Marked iff `statistic` < threshold", threshold and p-value from a null model of the statistic.

    `null(n, calibration)` builds that null model from the number of items n the statistic counts and
    the calibration models' statistics (an empty array for uncalibrated rules). With scope "by_arch"
    one null model is fitted per calibration family and a suspect is marked only below every
    family's threshold (its family is unknown).
    """

    name: str
    statistic: str  # the record column counted: key_errors or key_errors_true_adv
    calibrated: bool
    description: str
    null: Callable[[int, np.ndarray], NullModel]
    scope: str = "all"

    def items(self, records: pd.DataFrame) -> pd.Series:
        """Key items the statistic counts in each record; also the queries this rule needs."""
        if self.statistic == "key_errors":
            return records.key_size.astype(int)
        return true_adv_items(records)


def binomial(n: int, p: float = 0.5) -> BetaBinomial:
    return BetaBinomial(n, p, math.inf, math.inf)


def _fitted(n: int, null: np.ndarray) -> BetaBinomial:
    return BetaBinomial.fit(null, n) if len(null) else binomial(n, 0.0)


RULES: dict[str, Rule] = {rule.name: rule for rule in (
    Rule("true_adv_binomial", "key_errors_true_adv", False,
         "errors on the l/2 true adversaries only vs Binomial(l/2, 1/2); needs no reference models",
         lambda n, null: binomial(n)),
    Rule("empirical_conformal", "key_errors", True,
         "errors on all items vs the calibration models' errors: rank (conformal) threshold, size <= z for "
         "exchangeable models; needs >= 1/z - 1 of them", lambda n, null: Conformal(null)),
    Rule("true_adv_betabinomial_by_arch", "key_errors_true_adv", True,
         "errors on the true adversaries vs a beta-binomial per calibration family; marked only below every "
         "family's threshold", _fitted, scope="by_arch"),
)}


def rule_names() -> list[str]:
    """Every rule a report shows: the key-shipped ones first (the paper's among them), then the count rules."""
    return [*DECISION_RULES, *RULES]


def get_rule(name: str) -> Rule:
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown count rule {name!r}; rules: {', '.join(RULES)}") from None


def with_roles(records: pd.DataFrame) -> pd.DataFrame:
    """The records with `role` (the population), `same_arch` (the suspect is of the key's network) and,
    for attacked and extracted copies, `useful` (test accuracy within USEFUL_DROP of the marked model's)."""
    out = records.copy()
    out["role"] = out["population"]
    out["same_arch"] = out.suspect_network == out.network
    marked_acc = out[out.role == MARKED].set_index("key_hash").test_acc
    reference = out.key_hash.map(marked_acc)
    out["useful"] = (reference - pd.to_numeric(out.test_acc, errors="coerce")) <= USEFUL_DROP + 1e-12
    return out


def evaluate(records: pd.DataFrame, rule: str | Rule, z: float) -> pd.DataFrame:
    """One count rule on every record: statistic, items, threshold, p_value, marked. A calibrated
    rule is fitted to the calibration population's records of the same key."""
    rule = get_rule(rule) if isinstance(rule, str) else rule
    data = with_roles(records)
    out = pd.DataFrame(index=data.index)
    out["statistic"] = data[rule.statistic].astype(int)
    out["items"] = rule.items(data)
    out["threshold"], out["p_value"] = 0, np.nan
    for _, group in data.groupby("key_hash", sort=False):
        calibration = group[group.role == CALIBRATION]
        n = int(out.loc[group.index[0], "items"])
        if not rule.calibrated:
            strata = [np.empty(0, dtype=int)]
        elif rule.scope == "by_arch":
            strata = [part[rule.statistic].to_numpy(int) for _, part in calibration.groupby("suspect_network")]
        else:
            strata = [calibration[rule.statistic].to_numpy(int)]
        nulls = [rule.null(n, stratum) for stratum in strata or [np.empty(0, dtype=int)]]
        threshold = min(null.threshold(z) for null in nulls)
        out.loc[group.index, "threshold"] = threshold
        out.loc[group.index, "p_value"] = [max(null.p_value(int(s)) for null in nulls)
                                           for s in out.loc[group.index, "statistic"]]
    out["marked"] = out.statistic < out.threshold
    return out


def annotate(records: pd.DataFrame, default: str, z: float) -> pd.DataFrame:
    """The records with roles and, for every rule R, marked_R, p_value_R and threshold_R: the
    key-shipped rules as verify decided them, the count rules computed here. `decision_rule` names the
    recommended rule and `marked_default` is its verdict."""
    out = with_roles(records)
    for name in DECISION_RULES:
        decided = out[PAPER_RULE] if name == PAPER_RULE else out["rules"].map(
            lambda rules, n=name: rules.get(n) if isinstance(rules, dict) else None)
        for column in ("marked", "p_value", "threshold"):
            out[f"{column}_{name}"] = decided.map(lambda d, c=column: d.get(c) if isinstance(d, dict) else np.nan)
    for name in RULES:
        result = evaluate(records, name, z)
        for column in ("marked", "p_value", "threshold"):
            out[f"{column}_{name}"] = result[column]
    out["decision_rule"] = default
    out["marked_default"] = out[f"marked_{default}"]
    return out


def suspect_ids(records: pd.DataFrame) -> pd.Series:
    """split/network/seed naming each suspect model."""
    seeds = pd.to_numeric(records.suspect_seed, errors="coerce").astype("Int64").astype(str)
    return records.suspect_split.astype(str) + "/" + records.suspect_network.astype(str) + "/s" + seeds


def true_adv_items(records: pd.DataFrame) -> pd.Series:
    """The true adversaries of each record's key: recorded since a transfer key may hold fewer than
    half (older records: half, as every key then did)."""
    half = records.key_size.astype(int) // 2
    if "key_true_adversaries" not in records:
        return half
    return pd.to_numeric(records.key_true_adversaries, errors="coerce").fillna(half).astype(int)


def rate_rows(flags: Iterable) -> tuple[int, int]:
    flags = pd.Series(list(flags), dtype="object").dropna().astype(bool)
    return int(flags.sum()), len(flags)
