"""Figures of marked models: embedding's accuracy cost, robustness to each attack, extraction, and
every model's key errors.

Each function takes a table of `fsw.report` (or the annotated records of `fsw.stats.annotate`) and
draws it; none computes a statistic of its own beyond means over seeds and keys.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from fsw.figures.style import eps_label, eps_palette, facets, figure_legend, save, themed
from fsw.stats.decision import PAPER_RULE
from fsw.stats.rules import HELDOUT, MARKED, SOURCE

LINESTYLES = ("-", "--", "-.", ":")  # one per key size
THRESHOLD_STYLES = ("--", "-.", (0, (5, 1, 1, 1, 1, 1)))  # the paper's boundary, one per key size
MARKERS = ("o", "s", "^", "D", "v")
TEST_ACC = "test accuracy\n(fraction of test images)"
KEY_ACC = "key accuracy\n(fraction of the l key items)"
ROLES = {  # role -> legend label, in drawing order
    MARKED: "marked model",
    SOURCE: "unmarked source model (the key's)",
    HELDOUT: "held-out models (independently trained, unmarked)",
}


def _paper_theta_lines(ax: plt.Axes, data: pd.DataFrame, as_errors: bool = False) -> None:
    """The paper's decision boundary per key size: key accuracy 1 - theta/l (marked above), or the
    error fraction theta/l (marked below)."""
    for i, (size, theta) in enumerate(data.groupby("key_size").theta.first().items()):
        y = theta / size if as_errors else 1.0 - theta / size
        side = "below θ/l" if as_errors else "above 1 − θ/l"
        ax.axhline(y, color="black", ls=THRESHOLD_STYLES[i % len(THRESHOLD_STYLES)], lw=1,
                   label=f"paper's rule: marked {side} (θ = {theta:g}, l = {size})")


def plot_robustness(robustness: pd.DataFrame, attack: str, out_dir: str | Path, level_axis: str,
                    default_rule: str, name: str | None = None) -> list[Path]:
    """Test accuracy and key accuracy of one attack's marked models against its level (weakest
    first, the unattacked model at the left): one column per network, colour = eps, line style = key
    size; mean over seeds. The paper's boundary 1 - theta/l dashed; the recommended rule's threshold
    dotted in the eps colour, in a row of its own when its statistic is not all key errors."""
    part = robustness[robustness.attack == attack]
    if part.empty:
        raise ValueError(f"no rows for attack {attack!r} in the robustness table")
    rows = [("test_acc", TEST_ACC), ("key_acc", KEY_ACC)]
    default_row = len(rows) - 1
    networks, sizes = sorted(part.network.unique()), sorted(part.strategy.unique())
    palette = eps_palette(part.eps)
    ticks = part.drop_duplicates("position").sort_values("position")
    with themed():
        fig, axes = facets(len(rows), len(networks))
        for c, network in enumerate(networks):
            data = part[part.network == network]
            for r, (metric, label) in enumerate(rows):
                ax = axes[r, c]
                for (eps, size), line in data.groupby(["eps", "strategy"]):
                    mean = line.groupby("position")[metric].mean()
                    ax.plot(mean.index, mean.to_numpy(), color=palette[float(eps)], marker="o",
                            ls=LINESTYLES[sizes.index(size) % len(LINESTYLES)],
                            label=eps_label(eps) + (f", {size} keys" if len(sizes) > 1 else ""))
                    if r == default_row:
                        unattacked = line[line.position == 0]
                        ax.axhline(unattacked.default_acc_threshold.mean(), color=palette[float(eps)], ls=":",
                                   lw=1.2, label="recommended rule: marked above (dotted, colour of ε)")
                # test accuracy zoomed to the data (where a point of accuracy shows), key accuracy whole
                low = max(0.0, float(part.test_acc.min()) - 0.01) if metric == "test_acc" else -0.03
                ax.set_ylim(low, 1.003 if metric == "test_acc" else 1.03)
                ax.set_xticks(ticks.position, ticks.level_label, rotation=30 if len(ticks) > 5 else 0)
                ax.set_title(network if r == 0 else "")
                ax.set_xlabel(level_axis if r == len(rows) - 1 else "")
                ax.set_ylabel(label if c == 0 else "")
        figure_legend(fig, axes, below=True)
        fig.suptitle(f"{attack}: the attacked marked models (weakest level left); "
                     f"recommended rule: {default_rule}")
        return save(fig, out_dir, name or f"robustness_{attack}")


def plot_extraction(extraction: pd.DataFrame, out_dir: str | Path, level_axis: str,
                    name: str = "extraction_curves") -> list[Path]:
    """Surrogates stolen through the label-only API against the query budget (log scale): test
    accuracy (the served marked model's dashed), key accuracy (the paper's boundary dashed, the null
    models' mean dotted) and the share called marked by the recommended rule; one column per served
    network, colour = with or without the attacker's FGSM augmentation, marker = surrogate network;
    mean over keys (eps, seeds, key sizes)."""
    if extraction.empty:
        raise ValueError("no extracted surrogates to plot")
    rows = [("test_acc", TEST_ACC), ("key_acc", KEY_ACC),
            ("detected_default", "share of surrogates called marked\n(recommended rule)")]
    networks = sorted(extraction.network.unique())
    surrogates = sorted(extraction.surrogate.unique())
    colours = {"none": "C0", "FGSM": "C3"}  # augmentation -> a colour of the themed palette
    budgets = sorted(extraction.queries.unique())
    with themed():
        fig, axes = facets(len(rows), len(networks))
        for c, network in enumerate(networks):
            data = extraction[extraction.network == network]
            for r, (metric, label) in enumerate(rows):
                ax = axes[r, c]
                for (augmentation, surrogate), line in data.groupby(["augmentation", "surrogate"]):
                    mean = line.groupby("queries")[metric].mean()
                    with_what = "with" if augmentation == "FGSM" else "without"
                    ax.plot(mean.index, mean.to_numpy(), color=colours[augmentation],
                            marker=MARKERS[surrogates.index(surrogate) % len(MARKERS)],
                            label=f"{surrogate} surrogate, {with_what} FGSM augmentation")
                if metric == "test_acc":
                    ax.axhline(data.victim_acc.mean(), color="grey", ls="--", lw=1,
                               label="served (marked) model")
                if metric == "key_acc":
                    _paper_theta_lines(ax, data)
                    if data.null_key_acc.notna().any():
                        ax.axhline(data.null_key_acc.mean(), color="grey", ls=":", lw=1.2,
                                   label="null models verified with the same keys (mean)")
                ax.set_xscale("log")
                ax.set_xticks(budgets, [f"{b:,}" for b in budgets])
                ax.minorticks_off()
                ax.set_ylim(-0.03, 1.03)
                ax.set_title(f"served model: {network}" if r == 0 else "")
                ax.set_xlabel(level_axis if r == len(rows) - 1 else "")
                ax.set_ylabel(label if c == 0 else "")
        figure_legend(fig, axes, below=True)
        fig.suptitle("model extraction through the label-only API")
        return save(fig, out_dir, name)


def plot_accuracy_drop(embedding: pd.DataFrame, out_dir: str | Path, paper_points: float,
                       name: str = "accuracy_drop") -> list[Path]:
    """Test accuracy lost by embedding (base minus marked, percentage points) against eps: one panel
    per network, one point per key, the mean per key size joined; the paper's bound dashed."""
    if embedding.empty:
        raise ValueError("no embedding metrics to plot")
    networks, sizes = sorted(embedding.network.unique()), sorted(embedding.key_size.unique())
    with themed():
        fig, axes = facets(1, len(networks))
        for ax, network in zip(axes.flat, networks):
            data = embedding[embedding.network == network]
            for i, size in enumerate(sizes):
                keys = data[data.key_size == size]
                colour = f"C{i}"
                ax.scatter(keys.eps, keys.drop_points, color=colour, alpha=0.6, s=20)
                mean = keys.groupby("eps").drop_points.mean()
                ax.plot(mean.index, mean.to_numpy(), color=colour, marker="o", label=f"l = {size} (mean over seeds)")
            ax.axhline(paper_points, color="black", ls="--", lw=1, label=f"paper: ≤ {paper_points:g} points")
            ax.axhline(0.0, color="grey", lw=0.8)
            ax.set_xticks(sorted(embedding.eps.unique()), [f"{e:g}" for e in sorted(embedding.eps.unique())])
            ax.set_title(network)
            ax.set_xlabel("FGSM step ε of the key")
            ax.set_ylabel("test accuracy lost by embedding\n(percentage points)" if ax is axes.flat[0] else "")
        figure_legend(fig, axes, below=True)
        fig.suptitle("accuracy cost of embedding the key (negative: accuracy gained)")
        return save(fig, out_dir, name)


def plot_key_errors(decisions: pd.DataFrame, out_dir: str | Path, name: str = "key_errors") -> list[Path]:
    """Key errors (fraction of l) of the marked model, the unmarked model its key was made from, and
    the held-out models (box: their distribution), per eps: one column per key network, one row per
    key strategy; the paper's boundary theta/l dashed, l/2 (the binomial null's mean) dotted."""
    data = decisions[decisions.role.isin(list(ROLES))].assign(
        error_fraction=decisions.key_errors / decisions.key_size, theta=decisions[f"threshold_{PAPER_RULE}"])
    if data.empty:
        raise ValueError("no marked or unmarked records to plot")
    networks, strategies = sorted(data.network.unique()), sorted(data.strategy.unique())
    eps_values = sorted(data.eps.unique())
    roles = [role for role in ROLES if (data.role == role).any()]
    offsets = dict(zip(roles, np.linspace(-0.25, 0.25, len(roles)) if len(roles) > 1 else [0.0]))
    rng = np.random.default_rng(0)  # jitter only; the same figure on every run
    with themed():
        fig, axes = facets(len(strategies), len(networks))
        for r, strategy in enumerate(strategies):
            for c, network in enumerate(networks):
                ax = axes[r, c]
                part = data[(data.network == network) & (data.strategy == strategy)]
                for colour, role in enumerate(roles):
                    for i, eps in enumerate(eps_values):
                        values = part[(part.eps == eps) & (part.role == role)].error_fraction.to_numpy()
                        x = i + offsets[role]
                        if role == HELDOUT and len(values) > 2:
                            ax.boxplot(values, positions=[x], widths=0.18, showfliers=False,
                                       medianprops={"color": f"C{colour}"}, boxprops={"color": f"C{colour}"},
                                       whiskerprops={"color": f"C{colour}"}, capprops={"color": f"C{colour}"})
                        ax.scatter(x + rng.uniform(-0.04, 0.04, len(values)), values, s=14, alpha=0.7,
                                   color=f"C{colour}", label=ROLES[role] if i == 0 else None)
                _paper_theta_lines(ax, part, as_errors=True)
                ax.axhline(0.5, color="grey", ls=":", lw=1, label="l/2: the binomial null's mean")
                ax.set_xticks(range(len(eps_values)), [eps_label(e) for e in eps_values])
                ax.set_xlim(-0.6, len(eps_values) - 0.4)
                ax.set_ylim(-0.03, 1.03)
                ax.set_title(f"{strategy} keys of the {network}")
                ax.set_xlabel("ε of the key" if r == len(strategies) - 1 else "")
                ax.set_ylabel("key errors\n(fraction of the l key items)" if c == 0 else "")
        figure_legend(fig, axes, below=True)
        fig.suptitle("key errors of marked and unmarked models")
        return save(fig, out_dir, name)
