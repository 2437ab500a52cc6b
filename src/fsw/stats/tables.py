"""Tables of the annotated verification records (`fsw.stats.rules.annotate`): detection rates per
population with exact intervals, ROC against the held-out models, false positives per held-out
family, null models' key accuracy against the paper's 1/2; `write_tables` writes them all."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from fsw.io import atomic_write
from fsw.stats.claims import false_claims
from fsw.stats.rules import (
    ATTACKED,
    CALIBRATION,
    EXTRACTED,
    HELDOUT,
    MARKED,
    SETTING,
    SOURCE,
    annotate,
    rule_names,
    true_adv_items,
)
from fsw.stats.tests import attained_size, binomial_threshold, clopper_pearson

# The populations of the detection table, and which records each holds (attacked: useful copies only).
DETECTION_POPULATIONS = {
    "marked": lambda d: d.role == MARKED,
    "attacked": lambda d: (d.role == ATTACKED) & d.useful,
    "extracted": lambda d: d.role == EXTRACTED,
    "calibration_null": lambda d: d.role == CALIBRATION,
    "heldout_null": lambda d: d.role == HELDOUT,
}
DETECTION_COLUMNS = [*SETTING, "rule", "recommended", "population", "n", "detected", "rate", "ci_low", "ci_high"]
ROC_COLUMNS = ["network", "eps", "strategy", "rule", "auc", "tpr_at_fpr_01", "tpr_at_fpr_05", "queries",
               "n_positive", "n_negative"]


def detection(annotated: pd.DataFrame, default_rule: str, default_strategy: str,
              rules: Iterable[str] | None = None) -> pd.DataFrame:
    """Per key setting, rule and population: how many models were called marked, with the
    Clopper-Pearson 95% interval. `recommended` marks the default rule on the default strategy."""
    rows = []
    for values, group in annotated.groupby(SETTING, sort=True):
        for rule in rules or rule_names():
            for population, select in DETECTION_POPULATIONS.items():
                flags = group.loc[select(group), f"marked_{rule}"].dropna().astype(bool)
                if flags.empty:
                    continue
                k, n = int(flags.sum()), len(flags)
                low, high = clopper_pearson(k, n)
                rows.append({**dict(zip(SETTING, values)), "rule": rule,
                             "recommended": rule == default_rule and values[-1] == default_strategy,
                             "population": population, "n": n, "detected": k, "rate": k / n,
                             "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=DETECTION_COLUMNS)


def pooled_detection(table: pd.DataFrame) -> pd.DataFrame:
    """The detection table pooled over networks, eps and key sizes: per strategy, rule and population."""
    rows = []
    for (strategy, rule, population), part in table.groupby(["strategy", "rule", "population"], sort=True):
        k, n = int(part.detected.sum()), int(part.n.sum())
        low, high = clopper_pearson(k, n)
        rows.append({"strategy": strategy, "rule": rule, "recommended": bool(part.recommended.any()),
                     "population": population, "n": n, "detected": k, "rate": k / n, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def roc_points(negatives: np.ndarray, positives: np.ndarray) -> tuple[float, float, float]:
    """AUC (ties count one half) and the TPR at FPR 1% and 5%: a positive is detected at FPR f when
    its score is above the score that at most floor(f n) negatives exceed (scores: higher = more marked)."""
    negatives, positives = np.sort(np.asarray(negatives, float)), np.asarray(positives, float)
    greater = (positives[:, None] > negatives[None, :]).mean()
    ties = (positives[:, None] == negatives[None, :]).mean()

    def tpr_at(fpr: float) -> float:
        allowed = math.floor(fpr * len(negatives) + 1e-9)
        cut = negatives[len(negatives) - allowed - 1] if allowed < len(negatives) else -np.inf
        return float((positives > cut).mean())

    return float(greater + 0.5 * ties), tpr_at(0.01), tpr_at(0.05)


def roc(annotated: pd.DataFrame, rules: Iterable[str] | None = None) -> pd.DataFrame:
    """Per network, eps, strategy and rule: the ROC of the rule's p-value (lower = more marked) with the
    marked model and its useful attacked copies as positives and the held-out models as negatives.
    Rules that order suspects by the same statistic share a curve: calibration moves the threshold
    along it, not the curve."""
    rows = []
    for (network, eps, strategy), group in annotated.groupby(["network", "eps", "strategy"], sort=True):
        positives = group[(group.role == MARKED) | ((group.role == ATTACKED) & group.useful)]
        negatives = group[group.role == HELDOUT]
        if positives.empty or negatives.empty:
            continue
        for rule in rules or rule_names():
            auc, tpr01, tpr05 = roc_points(-negatives[f"p_value_{rule}"].astype(float),
                                           -positives[f"p_value_{rule}"].astype(float))
            queries = int(group.key_size.max() // (2 if rule.startswith("true_adv") else 1))
            rows.append({"network": network, "eps": eps, "strategy": strategy, "rule": rule, "auc": auc,
                         "tpr_at_fpr_01": tpr01, "tpr_at_fpr_05": tpr05, "queries": queries,
                         "n_positive": len(positives), "n_negative": len(negatives)})
    return pd.DataFrame(rows, columns=ROC_COLUMNS)


# The positives a scheme must tell from the held-out models, each on its own (schemes table).
SCHEME_POSITIVES = {name: DETECTION_POPULATIONS[name] for name in ("marked", "attacked", "extracted")}


def schemes(annotated: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Per key (dataset, when the records name it, and setting): what the scheme costs and how well it
    proves ownership. `accuracy_cost` is the source's test accuracy minus the marked model's (0 for
    schemes that do not embed); per positive population, the AUC and the TPR at a held-out FPR of 1%
    and 5% of `rule`'s p-value (an ROC against the held-out models, so that schemes are compared at
    equal false positives whatever their calibration) and the share the calibrated decision calls
    marked; `heldout_fpr`, the share of held-out models it calls marked; `queries`, the label queries
    of one verification."""
    keys = (["dataset"] if "dataset" in annotated else []) + SETTING
    rows = []
    for values, group in annotated.groupby(keys, sort=True):
        negatives = group[group.role == HELDOUT]
        if negatives.empty:
            continue
        marked, source = group[group.role == MARKED], group[group.role == SOURCE]
        row = {**dict(zip(keys, values)), "queries": int(group.queries.max()),
               "accuracy_cost": float(source.test_acc.mean() - marked.test_acc.mean()),
               "heldout_fpr": float(negatives[f"marked_{rule}"].astype(bool).mean()), "n_heldout": len(negatives)}
        for population, select in SCHEME_POSITIVES.items():
            positives = group[select(group)]
            auc, tpr01, tpr05 = (roc_points(-negatives[f"p_value_{rule}"].astype(float),
                                            -positives[f"p_value_{rule}"].astype(float))
                                 if len(positives) else (math.nan,) * 3)
            row.update({f"{population}_n": len(positives), f"{population}_auc": auc,
                        f"{population}_tpr_at_fpr_01": tpr01, f"{population}_tpr_at_fpr_05": tpr05,
                        f"{population}_detected": float(positives[f"marked_{rule}"].astype(bool).mean())
                        if len(positives) else math.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def roc_curves(annotated: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The ROC curve of one rule per network, eps and strategy, for the figure: one row per threshold."""
    rows = []
    for (network, eps, strategy), group in annotated.groupby(["network", "eps", "strategy"], sort=True):
        positives = -group.loc[(group.role == MARKED) | ((group.role == ATTACKED) & group.useful), f"p_value_{rule}"]
        negatives = -group.loc[group.role == HELDOUT, f"p_value_{rule}"]
        if positives.empty or negatives.empty:
            continue
        for cut in [np.inf, *sorted(set(positives) | set(negatives), reverse=True), -np.inf]:
            rows.append({"network": network, "eps": eps, "strategy": strategy,
                         "fpr": float((negatives >= cut).mean()), "tpr": float((positives >= cut).mean())})
    return pd.DataFrame(rows)


def fpr_by_family(annotated: pd.DataFrame, rules: Iterable[str] | None = None) -> pd.DataFrame:
    """False positives among the held-out models per rule, strategy and family (network option):
    which kinds of independent models a rule mistakes for the marked one."""
    heldout = annotated[annotated.role == HELDOUT]
    rows = []
    for (strategy, family), part in heldout.groupby(["strategy", "suspect_network"], sort=True):
        for rule in rules or rule_names():
            flags = part[f"marked_{rule}"].dropna().astype(bool)
            k, n = int(flags.sum()), len(flags)
            low, high = clopper_pearson(k, n)
            rows.append({"strategy": strategy, "family": family, "rule": rule, "n": n, "false_positives": k,
                         "fpr": k / n if n else np.nan, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def null_accuracy(annotated: pd.DataFrame) -> pd.DataFrame:
    """How far the held-out models are from the paper's assumption that an unmarked model answers each
    key item like a fair coin: per key setting, their key accuracy on all items, on the true and on
    the false adversaries, the pooled error rate with its interval and an exact test of 1/2, and the
    variance of their errors over the Binomial(l, 1/2) variance."""
    data = annotated[annotated.role == HELDOUT].copy()
    half = true_adv_items(data)
    data["key_acc"] = 1.0 - data.key_errors / data.key_size
    data["true_adv_acc"] = 1.0 - data.key_errors_true_adv / half
    data["false_adv_acc"] = 1.0 - data.key_errors_false_adv / (data.key_size - half)
    rows = []
    for values, group in data.groupby(SETTING, sort=True):
        l = int(group.key_size.iloc[0])
        errors, items = int(group.key_errors.sum()), int(group.key_size.sum())
        low, high = clopper_pearson(errors, items)
        rows.append({**dict(zip(SETTING, values)), "n_null": len(group), "key_acc_mean": group.key_acc.mean(),
                     "key_acc_min": group.key_acc.min(), "key_acc_max": group.key_acc.max(),
                     "true_adv_acc_mean": group.true_adv_acc.mean(), "false_adv_acc_mean": group.false_adv_acc.mean(),
                     "error_rate": errors / items, "error_rate_low": low, "error_rate_high": high,
                     "p_value_half": float(binomtest(errors, items, 0.5).pvalue),
                     "variance_ratio": group.key_errors.var(ddof=1) / (0.25 * l) if len(group) > 1 else np.nan})
    return pd.DataFrame(rows)


def theta_table(key_sizes: Iterable[int], zs: Iterable[float] = (0.05, 0.01)) -> pd.DataFrame:
    """The paper's theta(l, z) and its exact size for each key size and z (for the theta plot)."""
    rows = [{"key_size": int(l), "z": float(z), "theta": binomial_threshold(int(l), float(z)),
             "attained_size": attained_size(int(l), binomial_threshold(int(l), float(z)))}
            for z in zs for l in key_sizes]
    table = pd.DataFrame(rows)
    table["theta_fraction"] = table.theta / table.key_size
    return table


def readable(table: pd.DataFrame, digits: int) -> pd.DataFrame:
    """The table for a reader: floats as text to `digits` significant digits, missing values blank,
    hashes (columns named *hash) by their first 12 characters, as the logs show them."""
    shown = table.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}")
        elif str(column).endswith("hash"):
            shown[column] = shown[column].map(lambda v: v[:12] if isinstance(v, str) else v)
    return shown


def to_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """A table as Markdown (`readable`)."""
    return readable(table, digits).to_markdown(index=False) + "\n"


# Readable inside the iframe of `snakemake --report` (and alone in a browser): the header stays in
# view while a long table scrolls, numbers line up on the right.
HTML_STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; color: #1e293b; margin: 0.75em; }
h1 { font-size: 15px; margin: 0 0 0.5em; }
p { max-width: 70em; margin: 0 0 0.75em; }
code { font-size: 12px; background: #f1f5f9; padding: 0 0.2em; }
table { border-collapse: collapse; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #e2e8f0; white-space: nowrap; text-align: left; }
th { position: sticky; top: 0; background: #e2e8f0; }
tbody tr:nth-child(even) { background: #f8fafc; }
tbody tr:hover { background: #fef9c3; }
.rows { color: #64748b; margin-top: 0.5em; }
"""


PROSE_CHARS = 40  # a text cell longer than this, with spaces, is prose: wrapped


def html_page(title: str, body: str, style: str = "") -> str:
    """A self-contained HTML page (style inline, no script) titled `title` around `body` (HTML)."""
    title = html.escape(title)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n'
            f"<style>{HTML_STYLE}{style}</style>\n</head>\n<body>\n<h1>{title}</h1>\n{body}\n</body>\n</html>\n")


def to_html(table: pd.DataFrame, title: str, digits: int = 3, note: str = "") -> str:
    """A table as an `html_page` (`readable`), `note` (Markdown `code` allowed) above it.
    `snakemake --report` shows an HTML result inline where it offers a CSV only as a download."""
    numeric = [i for i, column in enumerate(table.columns, start=1)
               if pd.api.types.is_numeric_dtype(table[column]) and not pd.api.types.is_bool_dtype(table[column])]
    # cells stay on one line, except sentences (paper_vs_fsw's), which would make the table very wide
    prose = [i for i, column in enumerate(table.columns, start=1)
             if table[column].map(lambda v: isinstance(v, str) and len(v) > PROSE_CHARS and " " in v).any()]
    style = ("".join(f"td:nth-child({i}), th:nth-child({i}) {{ text-align: right; }}\n" for i in numeric)
             + "".join(f"td:nth-child({i}) {{ white-space: normal; min-width: 20em; }}\n" for i in prose))
    paragraph = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(note))
    body = ((f"<p>{paragraph}</p>\n" if note else "")
            + readable(table, digits).to_html(index=False, border=0, na_rep="", escape=True)
            + f'\n<p class="rows">{len(table)} rows</p>')
    return html_page(title, body, style)


def write_csv_and_html(table: pd.DataFrame, csv_path: str | Path, digits: int = 3, note: str = "") -> list[Path]:
    """The table as CSV at csv_path (for machines: every digit) and as HTML beside it (for readers:
    `to_html`)."""
    csv_path = Path(csv_path)
    page = to_html(table, csv_path.stem, digits, note)
    return [atomic_write(csv_path, lambda tmp: table.to_csv(tmp, index=False)),
            atomic_write(csv_path.with_suffix(".html"), lambda tmp: Path(tmp).write_text(page))]


TABLES = ("detection", "detection_pooled", "roc", "schemes", "false_claims", "fpr_by_family", "null_accuracy")


def write_tables(records: pd.DataFrame, out_dir: str | Path, z: float, default_rule: str,
                 default_strategy: str) -> tuple[list[Path], dict[str, pd.DataFrame]]:
    """decisions.csv (every record with every rule's decision) and, as CSV, HTML and Markdown, the
    tables of TABLES into out_dir. Returns the paths and the tables (with `decisions`, for the figures)."""
    out_dir = Path(out_dir)
    annotated = annotate(records, default_rule, z)
    found = detection(annotated, default_rule, default_strategy)
    tables = {"decisions": annotated, "detection": found, "detection_pooled": pooled_detection(found),
              "roc": roc(annotated),
              "schemes": schemes(annotated, default_rule), "false_claims": false_claims(annotated, default_rule, z),
              "fpr_by_family": fpr_by_family(annotated), "null_accuracy": null_accuracy(annotated)}
    paths = [atomic_write(out_dir / "decisions.csv",
                          lambda tmp: annotated.drop(columns=["answers", "rules", "decision", "paper_binomial"],
                                                     errors="ignore").to_csv(tmp, index=False))]
    for name in TABLES:
        table = tables[name]
        paths += write_csv_and_html(table, out_dir / f"{name}.csv")
        paths.append(atomic_write(out_dir / f"{name}.md", lambda tmp, t=table: Path(tmp).write_text(to_markdown(t))))
    return paths, tables
