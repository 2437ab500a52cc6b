"""Tables of verification records under every decision rule: rates with intervals, per-rule
summaries, null models' key accuracy, the calibration curve; `write_tables` writes them all."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from fsw.stats.rules import (
    ATTACKED, DEFAULT_RULE, MARKED, NULL, PAPER_RULE, SETTING, with_roles, annotate, evaluate, get_rule,
    suspect_ids, true_adv_items,
)
from fsw.stats.tests import (
    DEFAULT_Z, attained_size, binomial_threshold, clopper_pearson, conformal_threshold, min_null_models,
)


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
    data = with_roles(records)
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
    data = with_roles(records)
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
