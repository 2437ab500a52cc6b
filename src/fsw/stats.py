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

import functools
import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta, betabinom, binom, binomtest

NULL, SOURCE, MARKED, ATTACKED = "null", "source", "marked", "attacked"
SETTING = ["network", "eps", "key_size"]  # the grid point a key belongs to
KEY = ["network", "seed", "eps", "key_size", "key_seed"]  # one key (key_hash names it too)
SUSPECT = ["suspect_network", "suspect_seed"]  # one suspect model
DEFAULT_Z = 0.05
CONFIDENCE = 0.95  # of every Clopper-Pearson interval in the tables


# --------------------------------------------------------------------------------------------------
# Binomial and conformal thresholds


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


def attained_size(n: int, threshold: int, p: float = 0.5) -> float:
    """P[Binomial(n, p) <= threshold - 1]: the exact false-positive rate of "marked iff errors < threshold"
    when every key item is an independent coin with error probability p."""
    return float(binom.cdf(threshold - 1, n, p))


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion k/n; (nan, nan) if n = 0.

    The beta-quantile form, as scipy's `binomtest(k, n).proportion_ci(method="exact")`.
    """
    if n <= 0:
        return float("nan"), float("nan")
    k, n, alpha = int(k), int(n), 1.0 - confidence
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


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


# --------------------------------------------------------------------------------------------------
# Decision rules


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


def _with_roles(records: pd.DataFrame) -> pd.DataFrame:
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
    data = _with_roles(records)
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
    out = _with_roles(records)
    for name in names:
        result = evaluate(records, name, z=z, **kwargs)
        for column in ("threshold", "p_value", "marked", "n_calibration"):
            out[f"{column}_{name}"] = result[column]
    out["decision_rule"] = default
    out["marked_default"] = out[f"marked_{default}"]
    return out


# --------------------------------------------------------------------------------------------------
# Tables


def _rate(flags: pd.Series) -> tuple[int, int, float, float, float]:
    flags = flags.dropna().astype(bool)
    k, n = int(flags.sum()), len(flags)
    low, high = clopper_pearson(k, n)
    return n, k, (k / n if n else float("nan")), low, high


def rates(annotated: pd.DataFrame, by: list[str] | None = None, rules: Iterable[str] | None = None) -> pd.DataFrame:
    """Per group (default network, eps, key size) and rule: FPR over null models, TPR on marked and on
    attacked models, each with a Clopper-Pearson interval, z, the paper's theta and its exact size.

    `annotated` is the output of `annotate`. fpr_same_arch / fpr_other_arch split the null models by
    whether they share the key's network.
    """
    by = list(by) if by is not None else SETTING
    names = list(rules) if rules is not None else [
        c.removeprefix("marked_") for c in annotated.columns
        if c.startswith("marked_") and c != "marked_default"]
    rows = []
    for values, group in annotated.groupby(by, dropna=False, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        nulls, marked, attacked = (group[group.role == r] for r in (NULL, MARKED, ATTACKED))
        z = float(group.z.iloc[0]) if "z" in group else DEFAULT_Z
        for name in names:
            rule = get_rule(name)
            col = f"marked_{name}"
            row = dict(zip(by, values))
            row["rule"] = name
            row["default"] = name == group.decision_rule.iloc[0] if "decision_rule" in group else False
            row["calibrated"] = rule.calibrated
            row["z"] = z
            n, k, r, lo, hi = _rate(nulls[col])
            row.update(n_null=n, false_positives=k, fpr=r, fpr_low=lo, fpr_high=hi)
            for part, label in ((nulls[nulls.same_arch], "same_arch"), (nulls[~nulls.same_arch], "other_arch")):
                n_part, k_part, r_part = _rate(part[col])[:3]
                row.update({f"n_null_{label}": n_part, f"false_positives_{label}": k_part, f"fpr_{label}": r_part})
            row["fpr_above_z"] = bool(lo > z) if n else False  # significantly above the nominal level
            n, k, r, lo, hi = _rate(marked[col])
            row.update(n_marked=n, tpr=r, tpr_low=lo, tpr_high=hi)
            n, k, r, lo, hi = _rate(attacked[col])
            row.update(n_attacked=n, tpr_attacked=r, tpr_attacked_low=lo, tpr_attacked_high=hi)
            row["threshold_mean"] = float(group[f"threshold_{name}"].mean())
            row["n_calibration_min"] = int(group.loc[group.role == NULL, f"n_calibration_{name}"].min()) \
                if rule.calibrated and len(nulls) else 0
            row["n_null_needed"] = min_null_models(z) if "conformal" in name else 0
            sizes = group.key_size.unique()
            row["theta_paper"] = binomial_threshold(int(sizes[0]), z) if len(sizes) == 1 else np.nan
            row["attained_size_paper"] = (attained_size(int(sizes[0]), int(row["theta_paper"]))
                                          if len(sizes) == 1 else np.nan)
            row["queries_needed"] = int(rule.items(group).max())
            row["queries_recorded"] = float(group["queries"].median()) if "queries" in group else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def fpr_by_suspect(annotated: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """FPR of every rule per group and null-model network (the suspect's network), with its interval:
    whether a rule's false positives concentrate on one architecture."""
    by = (list(by) if by is not None else SETTING) + ["suspect_network"]
    names = [c.removeprefix("marked_") for c in annotated.columns
             if c.startswith("marked_") and c != "marked_default"]
    nulls = annotated[annotated.role == NULL]
    rows = []
    for values, group in nulls.groupby(by, dropna=False, sort=True):
        for name in names:
            n, k, r, lo, hi = _rate(group[f"marked_{name}"])
            rows.append({**dict(zip(by, values)), "same_arch": bool(group.same_arch.iloc[0]), "rule": name,
                         "n_null": n, "false_positives": k, "fpr": r, "fpr_low": lo, "fpr_high": hi})
    return pd.DataFrame(rows)


def calibration_curve(
    records: pd.DataFrame,
    rules: Iterable[str],
    sizes: Iterable[int] = (2, 3, 5, 10, 19),
    repeats: int = 20,
    z: float | None = None,
    seed: int = 0,
    pool: str = "key",
) -> pd.DataFrame:
    """How many null models a calibrated rule needs: for each size n, `repeats` random sets of n null
    models (drawn from all null suspect models, any network) calibrate; the other null models are
    judged (FPR) together with the marked and attacked models (TPR). One row per rule and n: FPR and
    TPRs pooled over repeats, and the spread of the per-repeat FPR."""
    data = _with_roles(records)
    models = sorted(set(suspect_ids(data[data.role == NULL])))
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        if n >= len(models):
            continue
        for repeat in range(repeats):
            chosen = rng.choice(len(models), size=n, replace=False)
            subset = [tuple(models[i].rsplit("/", 1)) for i in chosen]
            subset = [(network, int(s)) for network, s in subset]
            for name in rules:
                out = evaluate(data, name, z=z, pool=pool, calibration_models=subset)
                row = {"rule": name, "n_calibration_models": n, "repeat": repeat}
                for role, label in ((NULL, "fpr"), (MARKED, "tpr"), (ATTACKED, "tpr_attacked")):
                    flags = out.marked[data.role == role].dropna().astype(bool)
                    row[f"{label}_k"], row[f"{label}_n"] = int(flags.sum()), len(flags)
                rows.append(row)
    raw = pd.DataFrame(rows)
    if raw.empty:
        return raw
    summary = []
    for (name, n), part in raw.groupby(["rule", "n_calibration_models"], sort=False):
        row = {"rule": name, "n_calibration_models": n, "repeats": len(part),
               "z": float(z) if z is not None else float(data.z.max())}
        for label in ("fpr", "tpr", "tpr_attacked"):
            total = part[f"{label}_n"].sum()
            row[label] = part[f"{label}_k"].sum() / total if total else np.nan
        per_repeat = part.fpr_k / part.fpr_n.where(part.fpr_n > 0)
        row["fpr_repeat_q90"] = float(per_repeat.quantile(0.9))
        summary.append(row)
    return pd.DataFrame(summary)


def null_accuracy(records: pd.DataFrame, by: list[str] | None = None, z: float | None = None) -> pd.DataFrame:
    """How far null models are from the paper's assumption (key accuracy 1/2, binomial spread).

    Per group (default network, eps, key size) and relation (all null models, same_arch, other_arch):
    key accuracy (mean, sd, min, max) over null models, on the true and on the false adversaries,
    the pooled error rate with its Clopper-Pearson interval and an exact binomial test of 1/2, the
    departure from 1/2, the variance over the Binomial(l, 1/2) variance, and the paper's binomial
    theta beside the empirical (conformal) theta from these null models, both "marked iff errors < theta".
    """
    by = list(by) if by is not None else SETTING
    data = _with_roles(records)
    data = data[data.role == NULL].copy()
    data["key_acc"] = 1.0 - data.key_errors / data.key_size
    data["true_adv_acc"] = 1.0 - data.key_errors_true_adv / true_adv_items(data)
    data["false_adv_acc"] = 1.0 - data.key_errors_false_adv / (data.key_size - true_adv_items(data))
    rows = []
    for values, group in data.groupby(by, dropna=False, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        level = z if z is not None else float(group.z.iloc[0])
        for relation, part in (("all", group), ("same_arch", group[group.same_arch]),
                               ("other_arch", group[~group.same_arch])):
            if part.empty:
                continue
            sizes = part.key_size.unique()
            l = int(sizes[0]) if len(sizes) == 1 else None
            errors, items = int(part.key_errors.sum()), int(part.key_size.sum())
            rate = errors / items
            low, high = clopper_pearson(errors, items)
            row = dict(zip(by, values))
            row.update(
                relation=relation,
                n_null=len(part),
                key_acc_mean=part.key_acc.mean(),
                key_acc_sd=part.key_acc.std(ddof=1) if len(part) > 1 else np.nan,
                key_acc_min=part.key_acc.min(),
                key_acc_max=part.key_acc.max(),
                true_adv_acc_mean=part.true_adv_acc.mean(),
                false_adv_acc_mean=part.false_adv_acc.mean(),
                error_rate=rate,
                error_rate_low=low,
                error_rate_high=high,
                departure_from_half=rate - 0.5,
                p_value_half=float(binomtest(errors, items, 0.5).pvalue),
                binomial_sd=math.sqrt(0.25 / l) if l else np.nan,
                variance_ratio=(part.key_errors.var(ddof=1) / (0.25 * l)) if l and len(part) > 1 else np.nan,
                z=level,
                theta_paper_binomial=binomial_threshold(l, level) if l else np.nan,
                theta_empirical_conformal=conformal_threshold(part.key_errors, level),
                theta_true_adv_empirical_conformal=conformal_threshold(part.key_errors_true_adv, level),
                n_null_needed=min_null_models(level),
                fpr_paper_binomial=float((part.key_errors < binomial_threshold(l, level)).mean()) if l else np.nan,
            )
            rows.append(row)
    return pd.DataFrame(rows)


def rule_summary(rate_table: pd.DataFrame, by_suspect: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per rule, pooled over all groups of a `rates` table: FPR with its interval, the worst
    group's FPR, TPR on marked and attacked models.

    valid: the pooled FPR is not significantly above z (its interval reaches z) and no group's is.
    With `by_suspect` (an `fpr_by_suspect` table) also the FPR on the null models of the worst
    network, pooled over groups, and valid_per_network: not significantly above z for any network
    (the suspect's network is unknown, so this is the claim that matters). Sorted valid first, then
    valid per network, then by TPR on attacked copies, on marked models, and by FPR.
    """
    worst: dict[str, tuple[str, float, bool]] = {}
    if by_suspect is not None and not by_suspect.empty:
        for name, part in by_suspect.groupby("rule", sort=False):
            counts = part.groupby("suspect_network")[["false_positives", "n_null"]].sum()
            counts = counts[counts.n_null > 0]
            if counts.empty:
                continue
            rates_ = counts.false_positives / counts.n_null
            network = str(rates_.idxmax())
            lows = [clopper_pearson(int(r.false_positives), int(r.n_null))[0] for r in counts.itertuples()]
            worst[name] = (network, float(rates_.max()), max(lows) <= float(rate_table.z.max()))
    rows = []
    for name, part in rate_table.groupby("rule", sort=False):
        fp, n = int(part.false_positives.sum()), int(part.n_null.sum())
        lo, hi = clopper_pearson(fp, n)
        tp = float((part.tpr * part.n_marked).sum())
        tpa = float((part.tpr_attacked * part.n_attacked).fillna(0).sum())
        z = float(part.z.max())
        rows.append({
            "rule": name,
            "calibrated": bool(part.calibrated.iloc[0]),
            "z": z,
            "n_null": n,
            "fpr": fp / n if n else np.nan,
            "fpr_low": lo,
            "fpr_high": hi,
            "fpr_worst_group": float(part.fpr.max()),
            "fpr_same_arch": part.false_positives_same_arch.sum() / max(part.n_null_same_arch.sum(), 1),
            "fpr_other_arch": part.false_positives_other_arch.sum() / max(part.n_null_other_arch.sum(), 1),
            "groups_fpr_above_z": int(part.fpr_above_z.sum()),
            "tpr": tp / part.n_marked.sum() if part.n_marked.sum() else np.nan,
            "tpr_attacked": tpa / part.n_attacked.sum() if part.n_attacked.sum() else np.nan,
            "queries_needed": int(part.queries_needed.max()),
            "valid": bool(n and lo <= z and part.fpr_above_z.sum() == 0),
            "worst_network": worst.get(name, ("", np.nan, True))[0],
            "fpr_worst_network": worst.get(name, ("", np.nan, True))[1],
            "valid_per_network": bool(n and lo <= z and part.fpr_above_z.sum() == 0
                                      and worst.get(name, ("", np.nan, True))[2]),
            "description": get_rule(name).description,
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["valid", "valid_per_network", "tpr_attacked", "tpr", "fpr"],
                             ascending=[False, False, False, False, True]).reset_index(drop=True)


def theta_table(key_sizes: Iterable[int], zs: Iterable[float] = (0.05, 0.01)) -> pd.DataFrame:
    """The paper's theta(l, z) and its exact size for each key size and z (for the theta plot)."""
    rows = [{"key_size": int(l), "z": float(z), "theta": binomial_threshold(int(l), float(z)),
             "attained_size": attained_size(int(l), binomial_threshold(int(l), float(z)))}
            for z in zs for l in key_sizes]
    table = pd.DataFrame(rows)
    table["theta_fraction"] = table.theta / table.key_size
    return table


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    shown = table.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}")
    return shown.to_markdown(index=False) + "\n"


def write_tables(records: pd.DataFrame, out_dir: str | Path, z: float | None = None,
                 default: str = DEFAULT_RULE, curve_repeats: int = 10,
                 **kwargs) -> tuple[list[Path], dict[str, pd.DataFrame]]:
    """Write into out_dir: decisions.csv (every record with every rule's decision), and as CSV and
    Markdown rates, rules, null_accuracy, fpr_by_suspect and calibration_curve (the default rule and
    empirical_conformal calibrated on random subsets of null models; `curve_repeats` = 0 skips it).
    Returns the paths and the tables (for plotting)."""
    from fsw.io import atomic_write

    out_dir = Path(out_dir)
    annotated = annotate(records, z=z, default=default, **kwargs)
    tables = {
        "decisions": annotated,
        "rates": rates(annotated),
        "null_accuracy": null_accuracy(records, z=z),
    }
    tables["fpr_by_suspect"] = fpr_by_suspect(annotated)
    tables["rules"] = rule_summary(tables["rates"], tables["fpr_by_suspect"])
    n_models = suspect_ids(annotated[annotated.role == NULL]).nunique()
    sizes = [n for n in (2, 3, 5, 10, 19, 40) if n < n_models]
    tables["calibration_curve"] = (
        calibration_curve(records, list(dict.fromkeys([default, "empirical_conformal"])), sizes=sizes,
                          repeats=curve_repeats, z=z, pool=kwargs.get("pool", "key"))
        if curve_repeats > 0 and sizes else
        pd.DataFrame(columns=["rule", "n_calibration_models", "repeats", "z", "fpr", "tpr", "tpr_attacked",
                              "fpr_repeat_q90"]))
    paths = []
    for name, table in tables.items():
        paths.append(atomic_write(out_dir / f"{name}.csv", lambda tmp, t=table: t.to_csv(tmp, index=False)))
        if name != "decisions":
            text = to_markdown(table.drop(columns=["description"], errors="ignore"))
            if name == "rules":
                text = (f"Decision rules, pooled over every network, eps and key size; recommended default: "
                        f"`{default}`; the paper's test: `{PAPER_RULE}`.\n\n" + text + "\n"
                        + "".join(f"- `{r.rule}`: {r.description}\n" for r in table.itertuples()))
            paths.append(atomic_write(out_dir / f"{name}.md", lambda tmp, s=text: Path(tmp).write_text(s)))
    return paths, tables


# --------------------------------------------------------------------------------------------------
# Simulation


def simulate_records(
    networks: Iterable[str] = ("mlp", "cnn"),
    eps: Iterable[float] = (0.025, 0.25),
    key_sizes: Iterable[int] = (20, 100),
    null_seeds: Iterable[int] = range(1, 6),
    transfer: Callable[[float, bool], float] | None = None,
    concentration: float = 20.0,
    false_adv_error: float = 0.02,
    attacked_error: float = 0.15,
    z: float = DEFAULT_Z,
    seed: int = 0,
) -> pd.DataFrame:
    """Synthetic verification records with the structure seen on MNIST (for tests and power studies).

    Per network, eps and key size, one key made from seed 0 of that network; verified against that
    source model (errs on exactly the l/2 true adversaries), its marked copy (no errors), a
    fine-tuned copy (errs on each true adversary with probability attacked_error), and every network's
    null models (seed 0 of the other networks and `null_seeds` of all). A null model errs on a true
    adversary with its own probability q ~ Beta with mean transfer(eps, same_arch) and the given
    concentration (a + b), and on a false adversary with probability false_adv_error.
    """
    from fsw.verify import p_value, theta

    rng = np.random.default_rng(seed)
    transfer = transfer or (lambda e, same: min(0.95, 0.3 + 2.5 * e) - (0.0 if same else 0.1))
    networks, null_seeds = list(networks), list(null_seeds)
    rows = []

    def add(base, kind, suspect, suspect_seed, ta, fa, attack="none", level=0):
        m, l = int(ta + fa), base["key_size"]
        rows.append({**base, "model_kind": kind, "suspect_network": suspect,
                     "suspect_seed": int(suspect_seed), "attack": attack, "level": level,
                     "key_errors": m, "key_errors_true_adv": int(ta), "key_errors_false_adv": int(fa),
                     "theta": theta(l, z), "p_value": p_value(m, l), "marked": m < theta(l, z)})

    for network in networks:
        for e in eps:
            for l in key_sizes:
                half = l // 2
                base = {"network": network, "seed": 0, "eps": float(e), "key_size": int(l), "key_seed": 0,
                        "key_hash": f"{network}-{e:g}-{l}", "level": 0, "test_acc": 0.98, "z": z,
                        "queries": int(l)}
                add(base, "unmarked", network, 0, half, 0)
                add(base, "marked", network, 0, 0, 0)
                add(base, "marked", network, 0, rng.binomial(half, attacked_error),
                    rng.binomial(l - half, 0.01), attack="finetune", level=1)
                suspects = [(n, s) for n in networks for s in [0, *null_seeds] if (n, s) != (network, 0)]
                for suspect, s in suspects:
                    mean = transfer(float(e), suspect == network)
                    q = rng.beta(mean * concentration, (1 - mean) * concentration)
                    add(base, "unmarked", suspect, s, rng.binomial(half, q),
                        rng.binomial(l - half, false_adv_error))
    return pd.DataFrame(rows)
