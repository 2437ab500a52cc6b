"""The sweep's vocabulary, one definition each, importable without torch: the workflow, the config
checks and the stages all read their names here."""

from __future__ import annotations

from fsw.stages import config_dir

NETWORKS = ("mlp", "cnn", "irnn")  # the paper's networks: the key sources
ARCHITECTURES = (*NETWORKS, "lenet5", "small_cnn")  # every network fsw.networks builds
KEY_STRATEGIES = ("paper", "transfer")  # how fsw.keygen picks key items
# Who a verified model is: the marked model, its attacked or extracted copies, the unmarked model the
# key was made from, and the three null populations (see config/README.md).
POPULATIONS = ("marked", "attacked", "extracted", "source", "selection", "calibration", "heldout")


def level_segment(value: float) -> str:
    """An eps, attack level or budget as it appears in paths and wildcards: `0.1`, `1`, `1e-05`."""
    return f"{float(value):g}"


def network_options() -> list[str]:
    """Every network option a model can be trained from: the files of the Hydra group network/."""
    return sorted(path.stem for path in (config_dir() / "network").glob("*.yaml"))
