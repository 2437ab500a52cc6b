"""False- and true-positive statistics of verification records, and the decision rules compared on them.

Everything here is a pure function of a records DataFrame (one row per verify record, the columns
`fsw.verify.run` writes) and scipy; nothing reads or writes files except `write_tables`.

Roles of a record (`roles`):

- ``null``: an unmarked model trained independently of the key's source model (another seed or
  another network). These are the models the false-positive rate is about.
- ``source``: the unmarked model the key was made from. It errs on exactly the l/2 true adversaries by
  construction, so it is reported apart and never used to calibrate anything.
- ``marked``: the marked model (attack ``none``); ``attacked``: a marked model after an attack.

Decision rules (`RULES`) all have the form "marked iff s < t": s is the number of key errors the
suspect makes (on every key item, or on the true adversaries only) and t a threshold. Uncalibrated
rules compute t from the key size and z alone, so they can decide one record on its own; calibrated
rules compute t from null models' errors on the same key, which exist only once every null model is
verified, so they run in the report stage over the whole table. A null record is never judged by a
threshold fitted on itself: calibration is leave-one-model-out (every record of the judged suspect
model, identified by suspect_network and suspect_seed, is left out of its calibration set), or, with
`calibration_seeds` / `calibration_models`, those null models only calibrate and are not judged.
Calibration pools the null records of the same key (`pool="key"`, default) or of every key of the
same network, eps and key size (`pool="setting"`).

Which null models calibrate (`Rule.scope`): "all" pools every network; "by_arch" fits one null model
per suspect network and calls a suspect marked only below every network's threshold (the suspect's
network is unknown, and MNIST shows that other networks barely transfer a key's true adversaries:
they make as few errors as an attacked marked copy); "same_arch" uses the key's network only, a
claim about suspects of the owner's architecture (a stolen copy) and no other.

How many null models: a rank (conformal) rule needs 1/z - 1 of them per key (19 at z = 0.05) before
it can call anything marked; the beta-binomial rules need a few per network (`calibration_curve`
measures it; on MNIST the FPR reached z from about 10 random null models of three networks).
`PAPER_RULE` names the paper's test, `DEFAULT_RULE` the recommended one; `annotate` puts both (and
every other rule) beside each record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fsw.stats.tests import BetaBinomial, Conformal, clopper_pearson

NULL, SOURCE, MARKED, ATTACKED = "null", "source", "marked", "attacked"
SETTING = ["network", "eps", "key_size"]  # the grid point a key belongs to
KEY = ["network", "seed", "eps", "key_size", "key_seed"]  # one key (key_hash names it too)
SUSPECT = ["suspect_network", "suspect_seed"]  # one suspect model


NullModel = BetaBinomial | Conformal


@dataclass(frozen=True)
class Rule:
    """"Marked iff `statistic` < threshold", threshold and p-value from a null model of the statistic.

    `null(n, calibration)` builds that null model from the number of items n the statistic counts and
    the calibration null models' statistics (an empty array for uncalibrated rules).
    """

    name: str
    statistic: str  # the record column counted: key_errors or key_errors_true_adv
    calibrated: bool  # needs null models verified with the same key
    description: str
    null: Callable[[int, np.ndarray], NullModel]
    # which calibration null models: "all" pooled; "by_arch" one null model per suspect network and
    # marked only if below every network's threshold; "same_arch" only those of the key's network
    # (a claim about suspects of the owner's architecture only)
    scope: str = "all"


    def items(self, records: pd.DataFrame) -> pd.Series:
        """Key items the statistic counts in each record; also the queries this rule needs.

        True adversaries: the record's `true_adv_items` when it has one, else l/2 (keygen makes keys
        of l/2 true and l/2 false adversaries).
        """
        if self.statistic == "key_errors":
            return records.key_size.astype(int)
        return true_adv_items(records)

    def threshold(self, n: int, z: float, calibration: Iterable[int] = ()) -> int:
        return self.null(n, np.asarray(list(calibration), dtype=int)).threshold(z)


def true_adv_items(records: pd.DataFrame) -> pd.Series:
    half = records.key_size.astype(int) // 2
    if "true_adv_items" in records:
        return pd.to_numeric(records.true_adv_items, errors="coerce").fillna(half).astype(int)
    return half


def binomial(n: int, p: float = 0.5) -> BetaBinomial:
    return BetaBinomial(n, p, math.inf, math.inf)


def _fitted(n: int, null: np.ndarray) -> BetaBinomial:
    return BetaBinomial.fit(null, n) if len(null) else binomial(n, 0.0)


def _calibrated_binomial(n: int, null: np.ndarray) -> BetaBinomial:
    """Binomial(n, q), q the one-sided 95% lower Clopper-Pearson bound of the null models' pooled
    error rate (0 when they never err, or there are none)."""
    k, total = int(null.sum()), n * len(null)
    return binomial(n, 0.0 if k == 0 else clopper_pearson(k, total, confidence=0.90)[0])


RULES: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    RULES[rule.name] = rule
    return rule


register(Rule(
    "paper_binomial", "key_errors", False,
    "the paper's test: errors on all l items vs Binomial(l, 1/2); theta = fsw.verify.theta(l, z)",
    lambda n, null: binomial(n),
))
register(Rule(
    "true_adv_binomial", "key_errors_true_adv", False,
    "errors on the l/2 true adversaries only vs Binomial(l/2, 1/2); needs no null models",
    lambda n, null: binomial(n),
))
register(Rule(
    "true_adv_binomial_calibrated", "key_errors_true_adv", True,
    "errors on the true adversaries vs Binomial(l/2, q), q the one-sided 95% lower bound of the null "
    "models' pooled error rate on them (their transfer rate)",
    _calibrated_binomial,
))
register(Rule(
    "empirical_conformal", "key_errors", True,
    "errors on all items vs the null models' errors on the key: rank (conformal) threshold, "
    "size <= z for exchangeable null models; needs >= 1/z - 1 of them",
    lambda n, null: Conformal(null),
))
register(Rule(
    "true_adv_conformal", "key_errors_true_adv", True,
    "errors on the true adversaries vs the null models' errors on them: rank (conformal) threshold",
    lambda n, null: Conformal(null),
))
register(Rule(
    "empirical_betabinomial", "key_errors", True,
    "errors on all items vs a beta-binomial fitted (moments) to the null models' errors",
    _fitted,
))
register(Rule(
    "true_adv_betabinomial", "key_errors_true_adv", True,
    "errors on the true adversaries vs a beta-binomial fitted (moments) to the null models' errors on them",
    _fitted,
))
register(Rule(
    "true_adv_betabinomial_by_arch", "key_errors_true_adv", True,
    "as true_adv_betabinomial, one beta-binomial per null-model network; marked only if below the "
    "threshold of every network (the suspect's network is unknown)",
    _fitted, scope="by_arch",
))
register(Rule(
    "empirical_betabinomial_same_arch", "key_errors", True,
    "as empirical_betabinomial, fitted to null models of the key's own network only: its size holds "
    "for suspects of the owner's architecture only (a stolen copy), not for other networks",
    _fitted, scope="same_arch",
))
register(Rule(
    "empirical_betabinomial_by_arch", "key_errors", True,
    "as empirical_betabinomial, one beta-binomial per null-model network; marked only if below the "
    "threshold of every network (the suspect's network is unknown)",
    _fitted, scope="by_arch",
))

PAPER_RULE = "paper_binomial"
# The recommended rule (chosen by `rule_summary`'s order: valid pooled and per null network, then TPR).
# On 672 MNIST records (MLP and IRNN keys, eps 0.025/0.1/0.25, l 20-200, about 23 null models of three
# networks per key, leave-one-model-out) its FPR was 1.5% [0.7, 3.0] for z = 5% where the paper's
# rule had 51%; it needs a few null models of every network (not 1/z - 1 as a rank test does) and
# only the l/2 true adversaries as queries.
DEFAULT_RULE = "true_adv_betabinomial_by_arch"


def get_rule(rule: str | Rule) -> Rule:
    if isinstance(rule, Rule):
        return rule
    try:
        return RULES[rule]
    except KeyError:
        raise ValueError(f"unknown decision rule {rule!r}; rules: {', '.join(RULES)}") from None


# --------------------------------------------------------------------------------------------------
# Records


def roles(records: pd.DataFrame) -> pd.Series:
    """null / source / marked / attacked for each record (see the module docstring)."""
    same_model = (records.suspect_network == records.network) & (
        pd.to_numeric(records.suspect_seed, errors="coerce") == pd.to_numeric(records.seed, errors="coerce"))
    unmarked = records.model_kind == "unmarked"
    attacked = records.attack.fillna("none") != "none"
    role = np.select(
        [unmarked & ~same_model, unmarked & same_model, ~unmarked & ~attacked],
        [NULL, SOURCE, MARKED], default=ATTACKED,
    )
    return pd.Series(role, index=records.index, name="role")


def suspect_ids(records: pd.DataFrame) -> pd.Series:
    """"network/seed" naming each suspect model (the unit left out in calibration)."""
    seeds = pd.to_numeric(records.suspect_seed, errors="coerce").astype("Int64").astype(str)
    return records.suspect_network.astype(str) + "/" + seeds


def with_roles(records: pd.DataFrame) -> pd.DataFrame:
    out = records.copy()
    if "key_seed" not in out:
        out["key_seed"] = out["seed"]
    out["role"] = roles(out)
    out["same_arch"] = out.suspect_network == out.network
    return out


def evaluate(
    records: pd.DataFrame,
    rule: str | Rule,
    z: float | None = None,
    pool: str = "key",
    calibration_seeds: Collection[int] | None = None,
    calibration_models: Collection[tuple[str, int]] | None = None,
) -> pd.DataFrame:
    """Apply one rule to every record; returns statistic, items, threshold, p_value, marked, n_calibration.

    z: the significance level (default: each record's own `z`). pool: which null records calibrate a
    record: "key" (verified with the same key) or "setting" (any key of the same network, eps and
    key size). Calibration leaves out every record of the judged suspect model. calibration_seeds:
    if given, only null models with these suspect seeds calibrate, and their records are not judged
    (marked is <NA>); calibration_models: the same with (suspect_network, suspect_seed) pairs.
    """
    rule = get_rule(rule)
    data = with_roles(records)
    zs = pd.Series(z, index=data.index) if z is not None else data["z"].astype(float)
    group_cols = KEY if pool == "key" else SETTING if pool == "setting" else None
    if group_cols is None:
        raise ValueError(f"pool must be 'key' or 'setting', got {pool!r}")
    calibrating = data.role == NULL
    judged = pd.Series(True, index=data.index)
    suspect_id = suspect_ids(data)
    if calibration_seeds is not None or calibration_models is not None:
        in_cal = pd.Series(True, index=data.index)
        if calibration_seeds is not None:
            in_cal &= data.suspect_seed.isin(list(calibration_seeds))
        if calibration_models is not None:
            in_cal &= suspect_id.isin([f"{n}/{s}" for n, s in calibration_models])
        calibrating &= in_cal
        judged = ~(in_cal & (data.role == NULL))

    out = pd.DataFrame(index=data.index)
    out["statistic"] = data[rule.statistic].astype(int)
    out["items"] = rule.items(data)
    statistic, items, levels = (out.statistic.to_numpy(), out["items"].to_numpy(), zs.to_numpy(dtype=float))
    position = pd.Series(np.arange(len(data)), index=data.index)
    threshold = np.zeros(len(data), dtype=int)
    p_values = np.full(len(data), np.nan)
    n_cal = np.zeros(len(data), dtype=int)
    ids = suspect_id.to_numpy()
    if rule.scope not in ("all", "by_arch", "same_arch"):
        raise ValueError(f"rule {rule.name}: unknown scope {rule.scope!r}")
    arch = data.suspect_network.astype(str).to_numpy() if rule.scope == "by_arch" else np.zeros(len(data), int)
    usable = calibrating & data.same_arch if rule.scope == "same_arch" else calibrating
    for _, group in data.groupby(group_cols, dropna=False, sort=False):
        rows = position[group.index].to_numpy()
        cal = rows[usable.to_numpy()[rows]]
        models: dict = {}
        for i in rows:
            used = cal[ids[cal] != ids[i]] if rule.calibrated else np.empty(0, dtype=int)
            strata = [statistic[used[arch[used] == a]] for a in np.unique(arch[used])] or [np.empty(0, int)]
            n, level = int(items[i]), float(levels[i])
            cuts, ps = [], []
            for null in strata:  # one stratum unless the rule calibrates per architecture
                signature = (n, tuple(np.sort(null)))
                if signature not in models:
                    models[signature] = rule.null(n, null)
                cuts.append(models[signature].threshold(level))
                ps.append(models[signature].p_value(int(statistic[i])))
            threshold[i], p_values[i], n_cal[i] = min(cuts), max(ps), len(used)
    out["threshold"] = threshold
    out["p_value"] = p_values
    out["marked"] = (out.statistic < out.threshold).astype("boolean").where(judged, pd.NA)
    out["n_calibration"] = n_cal
    return out


def decide(records: pd.DataFrame, rule: str | Rule, **kwargs) -> pd.Series:
    """marked (boolean, <NA> for calibration-only records) of every record under `rule`."""
    return evaluate(records, rule, **kwargs)["marked"].rename(get_rule(rule).name)


def rule_names(rules: Iterable[str] | None = None, default: str = DEFAULT_RULE) -> list[str]:
    """The rules a report shows: `rules` (default all registered), always with the paper's and the default."""
    names = list(rules) if rules is not None else list(RULES)
    for name in (default, PAPER_RULE):
        get_rule(name)
        if name not in names:
            names.insert(0, name)
    return names


def annotate(
    records: pd.DataFrame,
    rules: Iterable[str] | None = None,
    z: float | None = None,
    default: str = DEFAULT_RULE,
    **kwargs,
) -> pd.DataFrame:
    """The records plus role, same_arch and, for each rule R, threshold_R, p_value_R, marked_R and
    n_calibration_R; `decision_rule` names the recommended rule and `marked_default` is its decision,
    beside the paper's `marked_paper_binomial` (and the record's own `marked`, from verify)."""
    names = rule_names(rules, default)
    out = with_roles(records)
    for name in names:
        result = evaluate(records, name, z=z, **kwargs)
        for column in ("threshold", "p_value", "marked", "n_calibration"):
            out[f"{column}_{name}"] = result[column]
    out["decision_rule"] = default
    out["marked_default"] = out[f"marked_{default}"]
    return out
