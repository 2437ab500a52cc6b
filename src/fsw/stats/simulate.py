"""Synthetic verification records with the structure seen on MNIST (for tests and power studies)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from fsw.stats.decision import DECISION_RULES, PAPER_RULE, null_errors
from fsw.stats.tests import DEFAULT_Z


def simulate_records(
    networks: Iterable[str] = ("mlp", "cnn"),
    eps: Iterable[float] = (0.025, 0.25),
    key_sizes: Iterable[int] = (20, 100),
    strategies: Iterable[str] = ("paper", "transfer"),
    calibration: Iterable[tuple[str, int]] = (("mlp", 2), ("mlp", 3), ("lenet5", 2), ("lenet5", 3)),
    heldout: Iterable[tuple[str, int]] = (("mlp", 11), ("mlp", 12), ("linear", 11), ("lenet5", 11)),
    match: Callable[[str, float], float] | None = None,
    concentration: float = 20.0,
    attacked_match: float = 0.85,
    z: float = DEFAULT_Z,
    seed: int = 0,
) -> pd.DataFrame:
    """Records as `fsw.verify` writes them, for every key of the grid (made from seed 0 of each
    network by each strategy): the marked model, one useful fine-tuned copy, the source model, and
    every calibration and held-out model. A null model answers each item with the key's label with
    its own probability q ~ Beta with mean match(strategy, eps) and the given concentration; the
    calibration models' answers become the key's calibration, from which every key-shipped rule
    decides, as in verify."""
    rng = np.random.default_rng(seed)
    match = match or (lambda strategy, e: (0.85 if strategy == "paper" else 0.15) - 0.2 * e)
    rows = []
    for network in networks:
        for e in eps:
            for l in key_sizes:
                for strategy in strategies:
                    mean = match(strategy, float(e))

                    def answers(probability: float) -> np.ndarray:
                        return rng.random(l) < probability

                    def null() -> np.ndarray:
                        return answers(rng.beta(mean * concentration, (1 - mean) * concentration))

                    matches = np.stack([null() for _ in calibration])
                    families = tuple(f for f, _ in calibration)
                    base = {"network": network, "seed": 0, "eps": float(e), "key_size": int(l), "key_seed": 0,
                            "key_hash": f"{network}-{e:g}-{l}-{strategy}", "strategy": strategy, "z": z,
                            "queries": int(l), "level": 0, "attack": "none", "suspect_split": "owner"}
                    half = np.arange(l) < l // 2  # the true adversaries

                    def add(population, suspect, suspect_seed, matched, test_acc, split="owner", **extra):
                        errors = int((~matched).sum())
                        decided = {name: null_errors(name, l, matches, families).decide(name, errors, z).as_record()
                                   for name in DECISION_RULES}
                        rows.append({**base, "population": population,
                                     "model_kind": "marked" if population in ("marked", "attacked") else "unmarked",
                                     "suspect_network": suspect, "suspect_seed": suspect_seed, "suspect_split": split,
                                     "key_errors": errors, "key_errors_true_adv": int((~matched & half).sum()),
                                     "key_errors_false_adv": int((~matched & ~half).sum()), "test_acc": test_acc,
                                     "decision": {**decided["family_binomial"], "calibration_hash": "simulated"},
                                     PAPER_RULE: decided[PAPER_RULE],
                                     "rules": {n: d for n, d in decided.items() if n != PAPER_RULE}, **extra})

                    add("marked", network, 0, np.ones(l, bool), 0.98)
                    add("attacked", network, 0, answers(attacked_match), 0.975, attack="ftal", level=1)
                    add("source", network, 0, ~half, 0.98)
                    for (family, s), row in zip(calibration, matches):
                        add("calibration", family, s, row, 0.97)
                    for family, s in heldout:
                        add("heldout", family, s, null(), 0.96, split="attacker")
    return pd.DataFrame(rows)
