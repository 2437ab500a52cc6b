"""The one style of every fsw figure: seaborn's whitegrid style, the colorblind palette, one
eps -> colour map (`eps_palette`), panels of one size (`facets`) with one legend (`figure_legend`),
and PNG (150 dpi) + SVG written atomically (`save`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a window

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from fsw.io import atomic_write

FORMATS = ("png", "svg")
DPI = 150
PANEL = (4.2, 3.2)  # inches per facet


@contextlib.contextmanager
def themed() -> Iterator[None]:
    """The one style of every fsw figure."""
    rc = {"savefig.dpi": DPI, "savefig.bbox": "tight", "svg.fonttype": "none", "axes.titleweight": "bold",
          "legend.frameon": True}
    with (sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9),
          matplotlib.rc_context(rc), sns.color_palette("colorblind")):
        yield


def eps_palette(eps_values: Iterable[float]) -> dict[float, tuple]:
    """The same colour for the same eps in every figure."""
    values = sorted({float(e) for e in eps_values})
    return dict(zip(values, sns.color_palette("colorblind", max(len(values), 1))))


def eps_label(eps: float) -> str:
    return f"ε = {float(eps):g}"


def save(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write `fig` as out_dir/name.png and .svg (atomically) and close it."""
    paths = []
    for fmt in FORMATS:
        paths.append(atomic_write(Path(out_dir) / f"{name}.{fmt}", lambda tmp, f=fmt: fig.savefig(tmp, format=f)))
    plt.close(fig)
    return paths


def facets(rows: int, cols: int, sharey: bool = True) -> tuple[plt.Figure, np.ndarray]:
    """A rows x cols grid of panels of one size (shared x, and y unless told), room for a legend."""
    fig, axes = plt.subplots(rows, cols, figsize=(PANEL[0] * cols + 2.0, PANEL[1] * rows + 0.6),
                             squeeze=False, sharex=True, sharey=sharey, layout="constrained")
    return fig, axes


def figure_legend(fig: plt.Figure, axes: np.ndarray, title: str | None = None, below: bool = False) -> None:
    """One legend with every distinct label of the panels, in first-seen order: right of the figure,
    or below it (for long labels, which would squeeze a narrow figure's panels)."""
    handles, labels = {}, []
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if handles:
        fig.legend([handles[label] for label in labels], labels, title=title,
                   loc="outside lower center" if below else "outside right center", ncols=2 if below else 1)
