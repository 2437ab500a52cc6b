"""The sweep's vocabulary, one definition each, importable without torch: the workflow, the config
checks and the stages all read their names here."""

from __future__ import annotations

NETWORKS = ("mlp", "cnn", "irnn")  # the paper's networks; fsw.networks builds each of them


def level_segment(value: float) -> str:
    """An eps, attack level or budget as it appears in paths and wildcards: `0.1`, `1`, `1e-05`."""
    return f"{float(value):g}"
