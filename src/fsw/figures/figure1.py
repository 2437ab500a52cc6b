"""Figure 1 of the paper from a real run (`fsw.figure1`): the frontier before and after stitching."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from fsw.data import Split
from fsw.figures.style import save, themed


def plot_figure(
    figure: Path, gx, gy, before, after, owner: Split, key, sources, metrics: dict, arrows: bool
) -> None:
    """Two panels, before and after stitching: decision regions, the frontier, the training points
    faint, the key's true and false adversaries coloured by their key label, FGSM steps as arrows."""
    with themed():
        colours = sns.color_palette("colorblind", 2)
        fig, axes = plt.subplots(1, 2, figsize=(11.5, 4.2), sharex=True, sharey=True, layout="constrained")
        panels = [
            (axes[0], before, "before stitching", metrics["key_acc_before"], metrics["test_acc_before"]),
            (axes[1], after, "after stitching", metrics["key_acc_after"], metrics["test_acc_after"]),
        ]
        gx, gy = gx.numpy(), gy.numpy()
        true_adv = key.is_true_adversary
        for ax, margin, title, key_acc, test_acc in panels:
            ax.contourf(gx, gy, (margin > 0).float().numpy(), levels=[-0.5, 0.5, 1.5], colors=colours, alpha=0.22)
            ax.contour(gx, gy, margin.numpy(), levels=[0.0], colors="black", linewidths=1.4)
            if margin is after:
                ax.contour(gx, gy, before.numpy(), levels=[0.0], colors="dimgrey", linewidths=1.1, linestyles="--")
            ax.scatter(owner.x[:, 0], owner.x[:, 1], c=[colours[int(c)] for c in owner.y], s=5, alpha=0.25,
                       linewidths=0, rasterized=True)
            if arrows:
                for source, target in zip(sources, key.inputs):
                    ax.annotate("", xy=tuple(target.tolist()), xytext=tuple(source.tolist()),
                                arrowprops={"arrowstyle": "-|>", "color": "black", "lw": 0.7, "shrinkA": 0,
                                            "shrinkB": 3, "mutation_scale": 7})
            for mask, marker, size in ((true_adv, "X", 95), (~true_adv, "o", 55)):
                ax.scatter(key.inputs[mask, 0], key.inputs[mask, 1], c=[colours[int(c)] for c in key.labels[mask]],
                           marker=marker, s=size, edgecolors="black", linewidths=0.9, zorder=3)
            ax.set_title(f"{title}\nkey accuracy {key_acc:.0%}, test accuracy {test_acc:.1%}")
            ax.set_aspect("equal")
            ax.set_xlabel("x₁")
        axes[0].set_ylabel("x₂")
        handles = [
            Patch(facecolor=colours[0], alpha=0.35, label="predicted class 0"),
            Patch(facecolor=colours[1], alpha=0.35, label="predicted class 1"),
            Line2D([], [], color="black", lw=1.4, label="decision frontier"),
            Line2D([], [], color="dimgrey", lw=1.1, ls="--", label="frontier before stitching"),
            Line2D([], [], ls="", marker="X", markersize=9, markerfacecolor="white", markeredgecolor="black",
                   label=f"true adversary ({metrics['true_adversaries']})"),
            Line2D([], [], ls="", marker="o", markersize=7, markerfacecolor="white", markeredgecolor="black",
                   label=f"false adversary ({metrics['false_adversaries']})"),
            Line2D([], [], ls="", marker="o", markersize=6, markerfacecolor=colours[0], markeredgecolor="black",
                   label="key label 0"),
            Line2D([], [], ls="", marker="o", markersize=6, markerfacecolor=colours[1], markeredgecolor="black",
                   label="key label 1"),
        ]
        if arrows:
            handles.append(Line2D([], [], color="black", lw=0.7, marker=">", markersize=4,
                                  label=f"FGSM step (ε = {metrics['eps']:g})"))
        fig.legend(handles=handles, loc="outside right center")
        fig.suptitle(f"Frontier stitching on two moons: a key of {metrics['key_size']} (FGSM ε = {metrics['eps']:g}) "
                     f"embedded into a {metrics['architecture']} MLP")
        save(fig, figure.parent, figure.stem)
