"""Figures of the false-positive statistics (the tables of `fsw.stats.tables`): rates per rule, the
rule comparison, the calibration curve, null models' key accuracy, the paper's theta."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from scipy.stats import binom

from fsw import stats
from fsw.figures.style import FORMATS, PANEL, eps_label, eps_palette, facets, figure_legend, save, themed

RATE_LABELS = {
    "fpr": "false-positive rate\n(null models called marked)",
    "tpr": "true-positive rate\n(marked models detected)",
    "tpr_attacked": "true-positive rate\n(attacked copies detected)",
}


def plot_rates(rate_table: pd.DataFrame, rule: str, out_dir: str | Path, name: str | None = None) -> list[Path]:
    """FPR (null models) and TPR (marked, attacked) against key size: one column per network, hue eps,
    Clopper-Pearson 95% intervals, the nominal z dashed in the FPR row."""
    table = rate_table[rate_table.rule == rule]
    if table.empty:
        raise ValueError(f"no rows for rule {rule!r} in the rates table")
    metrics = ["fpr", "tpr"] + (["tpr_attacked"] if table.n_attacked.sum() > 0 else [])
    networks = sorted(table.network.unique())
    palette = eps_palette(table.eps)
    sizes = sorted(table.key_size.unique())
    with themed():
        fig, axes = facets(len(metrics), len(networks))
        for col, network in enumerate(networks):
            for row, metric in enumerate(metrics):
                ax = axes[row, col]
                part = table[table.network == network]
                for i, (eps, colour) in enumerate(palette.items()):
                    line = part[part.eps == eps].sort_values("key_size")
                    line = line[line[metric].notna()]
                    if line.empty:
                        continue
                    dodge = 1.0 + 0.03 * (i - (len(palette) - 1) / 2)  # so intervals do not overlap
                    low, high = line[f"{metric}_low"], line[f"{metric}_high"]
                    ax.errorbar(line.key_size * dodge, line[metric],
                                yerr=[line[metric] - low, high - line[metric]], color=colour, marker="o",
                                capsize=3, label=eps_label(eps))
                if metric == "fpr":
                    ax.axhline(float(part.z.max()), color="black", ls="--", lw=1,
                               label=f"nominal z = {float(part.z.max()):g}")
                ax.set_xscale("log")
                ax.set_xticks(sizes, [str(s) for s in sizes])
                ax.minorticks_off()
                ax.set_ylim(-0.03, 1.03)
                ax.set_title(f"{network}" if row == 0 else "")
                ax.set_xlabel("key size l (key items = queries)" if row == len(metrics) - 1 else "")
                ax.set_ylabel(RATE_LABELS[metric] if col == 0 else "")
        figure_legend(fig, axes, title="FGSM step")
        fig.suptitle(f"decision rule: {rule}" + ("  (the paper's test)" if rule == stats.PAPER_RULE else ""))
        return save(fig, out_dir, name or f"rates_{rule}")


def plot_rule_comparison(rule_table: pd.DataFrame, out_dir: str | Path, name: str = "rules") -> list[Path]:
    """Every rule's pooled FPR and TPRs (with FPR interval) side by side; the nominal z dashed."""
    metrics = [("fpr", "FPR, null models"), ("tpr", "TPR, marked models"),
               ("tpr_attacked", "TPR, attacked copies")]
    long = rule_table.melt(id_vars=["rule"], value_vars=[m for m, _ in metrics], var_name="metric",
                           value_name="rate")
    long["metric"] = long.metric.map(dict(metrics))
    order = list(rule_table.rule)
    with themed():
        fig, ax = plt.subplots(figsize=(9.5, 0.55 * len(order) + 1.5), layout="constrained")
        sns.barplot(data=long, y="rule", x="rate", hue="metric", order=order, ax=ax, orient="h")
        for i, row in enumerate(rule_table.itertuples()):
            if not np.isnan(row.fpr_low):
                ax.plot([row.fpr_low, row.fpr_high], [i - 0.27, i - 0.27], color="black", lw=1.2,
                        label="FPR 95% Clopper-Pearson interval" if i == 0 else None)
        z = float(rule_table.z.max())
        ax.axvline(z, color="black", ls="--", lw=1, label=f"nominal z = {z:g}")
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("rate (fraction of models called marked), pooled over networks, eps, key sizes")
        ax.set_ylabel("decision rule")
        ax.legend(title="", loc="center left", bbox_to_anchor=(1.02, 0.5))
        return save(fig, out_dir, name)


def plot_calibration_curve(curve: pd.DataFrame, out_dir: str | Path, name: str = "calibration_curve") -> list[Path]:
    """FPR and TPRs of calibrated rules against the number of null models they were calibrated on
    (random subsets, pooled over repeats and every key); the nominal z dashed."""
    metrics = [("fpr", "FPR, null models"), ("tpr", "TPR, marked models"), ("tpr_attacked", "TPR, attacked copies")]
    long = curve.melt(id_vars=["rule", "n_calibration_models"], value_vars=[m for m, _ in metrics],
                      var_name="metric", value_name="rate").dropna(subset=["rate"])
    long["metric"] = long.metric.map(dict(metrics))
    with themed():
        fig, axes = plt.subplots(1, len(metrics), figsize=(PANEL[0] * len(metrics) + 2.0, PANEL[1] + 0.6),
                                 sharey=True, layout="constrained", squeeze=False)
        for ax, (_, label) in zip(axes.flat, metrics):
            part = long[long.metric == label]
            sns.lineplot(data=part, x="n_calibration_models", y="rate", hue="rule", marker="o", ax=ax,
                         legend=ax is axes.flat[0], errorbar=None)
            if label.startswith("FPR") and "z" in curve:
                ax.axhline(float(curve.z.max()), color="black", ls="--", lw=1,
                           label=f"nominal z = {float(curve.z.max()):g}")
            ax.set_title(label)
            ax.set_xlabel("null models used for calibration")
            ax.set_ylabel("rate (fraction of models called marked)")
            ax.set_ylim(-0.03, 1.03)
        legend = axes.flat[0].get_legend()
        if legend is not None:
            handles, labels = axes.flat[0].get_legend_handles_labels()
            legend.remove()
            fig.legend(handles, labels, title="decision rule", loc="outside right center")
        return save(fig, out_dir, name)


def plot_null_accuracy(records: pd.DataFrame, out_dir: str | Path, name: str = "null_key_accuracy",
                       column: str = "key_acc") -> list[Path]:
    """ECDF of null models' key accuracy (rows: key size, columns: network, hue: eps) against the
    Binomial(l, 1/2) reference the paper assumes, with the paper's decision boundary 1 - theta/l."""
    data = stats.with_roles(records)
    data = data[data.role == stats.NULL].copy()
    if data.empty:
        raise ValueError("no null-model records to plot")
    data["key_acc"] = 1.0 - data.key_errors / data.key_size
    data["true_adv_acc"] = 1.0 - data.key_errors_true_adv / (data.key_size // 2)
    networks, sizes = sorted(data.network.unique()), sorted(data.key_size.unique())
    palette = eps_palette(data.eps)
    z = float(data.z.max())
    what = "key accuracy" if column == "key_acc" else "accuracy on the true adversaries"
    with themed():
        fig, axes = facets(len(sizes), len(networks))
        for r, size in enumerate(sizes):
            items = int(size) if column == "key_acc" else int(size) // 2
            k = np.arange(items + 1)
            # correct answers ~ Binomial(n, 1/2) too (symmetry): P[accuracy <= k/n] = cdf(k)
            reference, ref_cdf = k / items, binom.cdf(k, items, 0.5)
            theta = stats.binomial_threshold(items, z)
            for c, network in enumerate(networks):
                ax = axes[r, c]
                part = data[(data.network == network) & (data.key_size == size)]
                ax.step(reference, ref_cdf, where="post", color="black", lw=1.2,
                        label="Binomial(n, 1/2) reference (paper)")
                for eps, colour in palette.items():
                    values = part.loc[part.eps == eps, column]
                    if len(values):
                        sns.ecdfplot(x=values, ax=ax, color=colour, lw=2, label=eps_label(eps))
                ax.axvline(1.0 - (theta - 1) / items, color="grey", ls=":", lw=1.2,
                           label=f"paper rule: marked right of this (z = {z:g})")
                ax.set_xlim(-0.02, 1.02)
                ax.set_title(f"{network}, l = {size}")
                ax.set_xlabel("")
                ax.set_ylabel("")
        fig.supxlabel(f"null model {what} (fraction of key items answered with the key label)")
        fig.supylabel("cumulative fraction of null models")
        figure_legend(fig, axes)
        return save(fig, out_dir, name)


def plot_theta(out_dir: str | Path, key_sizes: Iterable[int] | None = None, zs: Iterable[float] = (0.05, 0.01),
               name: str = "theta_vs_key_size") -> list[Path]:
    """The paper's theta(l, z) against l: in errors (left) and as a fraction of l (right)."""
    sizes = list(key_sizes) if key_sizes is not None else list(range(10, 1001, 10))
    table = stats.theta_table(sizes, zs)
    table["z"] = table.z.map(lambda v: f"z = {v:g}")
    with themed():
        fig, axes = plt.subplots(1, 2, figsize=(2 * PANEL[0] + 1, PANEL[1] + 0.6), layout="constrained")
        sns.lineplot(data=table, x="key_size", y="theta", hue="z", ax=axes[0], drawstyle="steps-post")
        axes[0].plot(sizes, [s / 2 for s in sizes], color="grey", ls="--", lw=1, label="l/2 (expected errors)")
        axes[0].set_ylabel("theta (errors; marked iff errors < theta)")
        sns.lineplot(data=table, x="key_size", y="theta_fraction", hue="z", ax=axes[1], legend=False)
        axes[1].axhline(0.5, color="grey", ls="--", lw=1)
        axes[1].set_ylabel("theta / l (fraction of key items)")
        for ax in axes:
            ax.set_xlabel("key size l (key items = queries)")
        axes[0].legend(title="")
        fig.suptitle("the paper's threshold: marked iff errors < theta, theta from Binomial(l, 1/2)")
        return save(fig, out_dir, name)


def write_figures(tables: dict[str, pd.DataFrame], records: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Every figure from the tables of `stats.write_tables`: rates per rule, the rule comparison, null
    key accuracy (all items and true adversaries only), theta against l."""
    paths = []
    for rule in tables["rates"].rule.unique():
        paths += plot_rates(tables["rates"], rule, out_dir)
    paths += plot_rule_comparison(tables["rules"], out_dir)
    if not tables.get("calibration_curve", pd.DataFrame()).empty:
        paths += plot_calibration_curve(tables["calibration_curve"], out_dir)
    if (stats.roles(records) == stats.NULL).any():
        paths += plot_null_accuracy(records, out_dir)
        paths += plot_null_accuracy(records, out_dir, name="null_true_adv_accuracy", column="true_adv_acc")
    sizes = sorted(set(range(10, 1001, 10)) | {int(s) for s in records.key_size.unique()})
    paths += plot_theta(out_dir, sizes)
    return paths


def expected_outputs(out_dir: str | Path, plot_dir: str | Path | None = None,
                     rules: Iterable[str] | None = None, default: str = stats.DEFAULT_RULE,
                     calibration_curve: bool = True) -> list[Path]:
    """The files the report's false-positive outputs are when there are null-model records (for Snakemake).

    calibration_curve: whether there are more than 2 null models (and curve_repeats > 0), so that the
    calibration-curve figure is drawn.
    """
    out_dir = Path(out_dir)
    plot_dir = Path(plot_dir) if plot_dir is not None else out_dir
    names = stats.rule_names(rules, default)
    tables = [out_dir / "decisions.csv"] + [
        out_dir / f"{t}.{e}" for t in ("rates", "null_accuracy", "rules", "fpr_by_suspect", "calibration_curve")
        for e in ("csv", "md")]
    figures = [f"rates_{r}" for r in names] + ["rules", "null_key_accuracy", "null_true_adv_accuracy",
                                                "theta_vs_key_size"]
    if calibration_curve:
        figures.append("calibration_curve")
    return tables + [plot_dir / f"{f}.{fmt}" for f in figures for fmt in FORMATS]
