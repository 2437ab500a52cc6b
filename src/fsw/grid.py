"""The sweep's vocabulary, one definition each, importable without torch: the workflow, the config
checks and the stages all read their names here."""

from __future__ import annotations

from dataclasses import dataclass

from fsw.stages import config_dir

NETWORKS = ("mlp", "cnn", "irnn")  # the paper's networks: the key sources
ARCHITECTURES = (*NETWORKS, "lenet5", "small_cnn")  # every network fsw.networks builds


@dataclass(frozen=True)
class KeyStrategy:
    """What the workflow and the stages need to know of a key strategy (an ownership scheme); how
    it makes its key is in fsw.keygen (paper, transfer) and fsw.schemes (the others)."""

    embeds: bool  # embed fine-tunes the source on the key; else the key fingerprints the source as it is
    selection: bool  # keygen picks the key's items against the selection reference models
    # The workflow keeps its keys where the decision could call nothing marked (keygen.vacuous=warn):
    # they are made to be compared, and a vacuous key is then a result, not a failed job.
    keep_vacuous: bool


# How fsw.keygen picks key items: every ownership scheme the sweep can compare, each a key strategy.
KEY_STRATEGIES = {
    "paper": KeyStrategy(embeds=True, selection=False, keep_vacuous=True),
    "transfer": KeyStrategy(embeds=True, selection=True, keep_vacuous=False),
    "backdoor": KeyStrategy(embeds=True, selection=False, keep_vacuous=True),
    "ipguard": KeyStrategy(embeds=False, selection=False, keep_vacuous=True),
    "conferrable": KeyStrategy(embeds=False, selection=True, keep_vacuous=True),
    "misclassified": KeyStrategy(embeds=False, selection=False, keep_vacuous=True),
}

# Who a verified model is: the marked model, its attacked or extracted copies, the unmarked model the
# key was made from, and the three null populations (see config/README.md).
POPULATIONS = ("marked", "attacked", "extracted", "source", "selection", "calibration", "heldout")


def level_segment(value: float) -> str:
    """An eps, attack level or budget as it appears in paths and wildcards: `0.1`, `1`, `1e-05`."""
    return f"{float(value):g}"


def network_options() -> list[str]:
    """Every network option a model can be trained from: the files of the Hydra group network/."""
    return sorted(path.stem for path in (config_dir() / "network").glob("*.yaml"))
