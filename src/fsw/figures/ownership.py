"""Figures of ownership verification, one per question, from the tables of `fsw.stats.tables`:

- detection: does the recommended rule detect marked and attacked models and spare held-out ones?
- rules_compared: how does each rule fare, pooled over the grid?
- roc_curves: how well does a key separate its marked model from the held-out models at all?
- fpr_by_family: which kinds of independent models are mistaken for the marked one?
- null_key_accuracy: how far are unmarked models from the paper's fair coin?
- theta_vs_key_size: the paper's threshold.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns

from fsw.figures.style import FORMATS, save, themed
from fsw.stats.decision import PAPER_RULE
from fsw.stats.tables import roc_curves, theta_table

POPULATION_LABELS = {
    "marked": "marked models",
    "attacked": "useful attacked copies",
    "extracted": "extracted surrogates",
    "calibration_null": "calibration models (owner's)",
    "heldout_null": "held-out unmarked models",
}
RATE = "share called marked"

def _interval(data: pd.DataFrame, **_) -> None:
    """Clopper-Pearson intervals as error bars on a facet's points (seaborn's own errorbars are
    bootstrap or normal intervals of a mean, not exact binomial ones)."""
    import matplotlib.pyplot as plt

    ax = plt.gca()
    for strategy, part in data.groupby("strategy", sort=True):
        ax.vlines(part["x"], part.ci_low, part.ci_high, color=part["colour"].iloc[0], lw=1.2, alpha=0.8)

def plot_detection(detection: pd.DataFrame, out_dir: str | Path, rule: str, name: str = "detection") -> list[Path]:
    """Rate called marked by `rule` per network (rows), population (columns), eps (x) and strategy
    (colour), with 95% Clopper-Pearson intervals and z dashed on the held-out panel."""
    data = detection[detection.rule == rule].copy()
    if data.empty:
        raise ValueError(f"no rows for rule {rule!r} in the detection table")
    data["population"] = data.population.map(POPULATION_LABELS)
    strategies = sorted(data.strategy.unique())
    palette = dict(zip(strategies, sns.color_palette("colorblind", len(strategies))))
    eps_order = sorted(data.eps.unique())
    offsets = {s: (i - (len(strategies) - 1) / 2) * 0.15 for i, s in enumerate(strategies)}
    data["x"] = [eps_order.index(e) + offsets[s] for e, s in zip(data.eps, data.strategy)]
    data["colour"] = data.strategy.map(palette)
    with themed():
        grid = sns.FacetGrid(data, row="network", col="population", col_order=[
            POPULATION_LABELS[p] for p in POPULATION_LABELS if POPULATION_LABELS[p] in set(data.population)],
            height=2.4, aspect=1.15, margin_titles=True, ylim=(-0.04, 1.04))
        grid.map_dataframe(sns.scatterplot, x="x", y="rate", hue="strategy", palette=palette, s=40)
        grid.map_dataframe(_interval)
        grid.set(xticks=range(len(eps_order)), xticklabels=[f"{e:g}" for e in eps_order], xlim=(-0.5, len(eps_order) - 0.5))
        grid.set_axis_labels("ε", RATE)
        grid.set_titles(row_template="{row_name}", col_template="{col_name}")
        grid.add_legend(title="key strategy")
        grid.figure.suptitle(f"Detection by {rule}", y=1.02)
        return save(grid.figure, out_dir, name)

def plot_rules_compared(pooled: pd.DataFrame, out_dir: str | Path, name: str = "rules_compared") -> list[Path]:
    """Each rule's rate per population, pooled over networks, eps and key sizes, per strategy."""
    data = pooled[pooled.population.isin(POPULATION_LABELS)].copy()
    data["population"] = data.population.map(POPULATION_LABELS)
    rules = list(dict.fromkeys(data.rule))
    with themed():
        grid = sns.catplot(data=data, kind="point", x="rate", y="rule", hue="strategy", col="population",
                           col_wrap=3, order=rules, linestyle="none", height=3.0, aspect=1.1,
                           dodge=0.4 if data.strategy.nunique() > 1 else False,
                           errorbar=None, palette="colorblind", sharex=False)
        for ax, (population, part) in zip(grid.axes.flat, data.groupby("population", sort=False)):
            ax.set_xlim(-0.04, 1.04)
        grid.set_axis_labels(RATE, "")
        grid.set_titles("{col_name}")
        grid.figure.suptitle("Decision rules pooled over the grid (the paper's: " + PAPER_RULE + ")", y=1.02)
        return save(grid.figure, out_dir, name)

def plot_roc(annotated: pd.DataFrame, out_dir: str | Path, rule: str, name: str = "roc_curves") -> list[Path]:
    """ROC of `rule`'s p-value: marked and useful attacked models against the held-out ones, per
    network (rows) and eps (columns), one line per strategy."""
    curves = roc_curves(annotated, rule)
    if curves.empty:
        raise ValueError("no key with both positives and held-out models to draw a ROC curve")
    with themed():
        grid = sns.relplot(data=curves, kind="line", x="fpr", y="tpr", hue="strategy", row="network", col="eps",
                           drawstyle="steps-post", estimator=None, sort=False, height=2.3, aspect=1.0,
                           palette="colorblind", facet_kws={"margin_titles": True, "xlim": (-0.02, 1.02),
                                                             "ylim": (-0.02, 1.02)})
        for ax in grid.axes.flat:
            ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        grid.set_axis_labels("false-positive rate (held-out)", "true-positive rate")
        grid.set_titles(row_template="{row_name}", col_template="ε = {col_name}")
        grid.figure.suptitle(f"ROC of {rule}'s p-value", y=1.02)
        return save(grid.figure, out_dir, name)

def plot_fpr_by_family(table: pd.DataFrame, out_dir: str | Path, rules: list[str], name: str = "fpr_by_family") -> list[Path]:
    """False-positive rate per held-out family, for `rules` (columns), per strategy."""
    data = table[table.rule.isin(rules)]
    with themed():
        grid = sns.catplot(data=data, kind="bar", x="fpr", y="family", hue="strategy", col="rule", col_order=rules,
                           height=max(3.0, 0.28 * data.family.nunique() + 1), aspect=0.9, palette="colorblind",
                           errorbar=None)
        grid.set(xlim=(0, 1.02))
        grid.set_axis_labels("false-positive rate", "held-out family")
        grid.set_titles("{col_name}")
        return save(grid.figure, out_dir, name)

def plot_null_accuracy(annotated: pd.DataFrame, out_dir: str | Path, name: str = "null_key_accuracy") -> list[Path]:
    """Key accuracy of every held-out model per network (columns), eps (x) and strategy (colour),
    against the paper's assumption of 1/2 (dashed)."""
    data = annotated[annotated.role == "heldout"].copy()
    data["key accuracy"] = 1.0 - data.key_errors / data.key_size
    with themed():
        grid = sns.catplot(data=data, kind="strip", x="eps", y="key accuracy", hue="strategy", col="network",
                           dodge=True, height=3.0, aspect=0.9, palette="colorblind", alpha=0.7, size=3.5)
        for ax in grid.axes.flat:
            ax.axhline(0.5, color="black", ls="--", lw=1)
        grid.set(ylim=(-0.03, 1.03))
        grid.set_axis_labels("ε", "key accuracy of held-out models")
        grid.figure.suptitle("Unmarked models against the paper's fair coin (dashed)", y=1.03)
        return save(grid.figure, out_dir, name)

def plot_theta(out_dir: str | Path, key_sizes, zs=(0.05, 0.01), name: str = "theta_vs_key_size") -> list[Path]:
    """The paper's theta(l, z) against l, as a fraction of l."""
    table = theta_table(sorted(key_sizes), zs)
    table["z"] = table.z.map(lambda v: f"z = {v:g}")
    with themed():
        grid = sns.relplot(data=table, kind="line", x="key_size", y="theta_fraction", hue="z", height=3.0,
                           aspect=1.4, palette="colorblind")
        grid.ax.axhline(0.5, color="grey", ls="--", lw=1)
        grid.set_axis_labels("key size l (key items = queries)", "θ / l (marked iff errors < θ)")
        grid.figure.suptitle("The paper's threshold, from Binomial(l, 1/2)", y=1.03)
        return save(grid.figure, out_dir, name)

def plot_schemes(table: pd.DataFrame, out_dir: str | Path, rule: str, name: str = "schemes") -> list[Path]:
    """The schemes table as points: per key (x: strategy and eps), the TPR at a held-out FPR of 1% of
    each positive population (colour), per network (columns) and dataset (rows, when named)."""
    populations = {f"{population}_tpr_at_fpr_01": POPULATION_LABELS[population]
                   for population in ("marked", "attacked", "extracted")}
    keys = [column for column in ("dataset", "network", "strategy", "eps") if column in table]
    data = table.melt(id_vars=keys, value_vars=list(populations), var_name="population", value_name="tpr").dropna()
    if data.empty:
        raise ValueError("no key with both positives and held-out models in the schemes table")
    data["population"] = data.population.map(populations)
    data["key"] = [f"{strategy} ε{eps:g}" for strategy, eps in zip(data.strategy, data.eps)]
    with themed():
        grid = sns.catplot(data=data, kind="point", x="tpr", y="key", hue="population", col="network",
                           row="dataset" if "dataset" in data else None, order=sorted(set(data.key)),
                           linestyle="none", dodge=0.4, errorbar=None, palette="colorblind", height=3.0,
                           aspect=1.0, margin_titles=True)
        grid.set(xlim=(-0.04, 1.04))
        grid.set_axis_labels("TPR at held-out\nFPR 1%", "")
        grid.set_titles(row_template="{row_name}", col_template="{col_name}")
        grid.figure.suptitle(f"Ownership schemes compared ({rule}'s p-value)", y=1.02)
        return save(grid.figure, out_dir, name)


FIGURES = ("detection", "rules_compared", "roc_curves", "schemes", "fpr_by_family", "null_key_accuracy",
           "theta_vs_key_size")

def write_figures(tables: dict[str, pd.DataFrame], out_dir: str | Path, default_rule: str) -> list[Path]:
    """Every figure of FIGURES from the tables of `fsw.stats.tables.write_tables` that has data: no
    detection figure without a calibrated key, no ROC or family figure without held-out models."""
    annotated = tables["decisions"]
    paths = []
    if (tables["detection"].rule == default_rule).any():
        paths += plot_detection(tables["detection"], out_dir, default_rule)
        paths += plot_rules_compared(tables["detection_pooled"], out_dir)
    if not tables["roc"].empty:
        paths += plot_roc(annotated, out_dir, default_rule)
        paths += plot_schemes(tables["schemes"], out_dir, default_rule)
    if not tables["fpr_by_family"].empty:
        paths += plot_fpr_by_family(tables["fpr_by_family"], out_dir, list(dict.fromkeys([PAPER_RULE, default_rule])))
        paths += plot_null_accuracy(annotated, out_dir)
    paths += plot_theta(out_dir, sorted(set(range(10, 501, 10)) | set(annotated.key_size.astype(int))))
    return paths

def expected_outputs(out_dir: str | Path) -> list[Path]:
    return [Path(out_dir) / f"{name}.{fmt}" for name in FIGURES for fmt in FORMATS]

