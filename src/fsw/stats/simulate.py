"""Synthetic verification records with the structure seen on MNIST (for tests and power studies)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from fsw.stats.tests import DEFAULT_Z, binomial_p_value, binomial_threshold


def simulate_records(
    networks: Iterable[str] = ("mlp", "cnn"),
    eps: Iterable[float] = (0.025, 0.25),
    key_sizes: Iterable[int] = (20, 100),
    null_seeds: Iterable[int] = range(1, 6),
    transfer: Callable[[float, bool], float] | None = None,
    concentration: float = 20.0,
    false_adv_error: float = 0.02,
    attacked_error: float = 0.15,
    z: float = DEFAULT_Z,
    seed: int = 0,
) -> pd.DataFrame:
    """Synthetic verification records with the structure seen on MNIST (for tests and power studies).

    Per network, eps and key size, one key made from seed 0 of that network; verified against that
    source model (errs on exactly the l/2 true adversaries), its marked copy (no errors), a
    fine-tuned copy (errs on each true adversary with probability attacked_error), and every network's
    null models (seed 0 of the other networks and `null_seeds` of all). A null model errs on a true
    adversary with its own probability q ~ Beta with mean transfer(eps, same_arch) and the given
    concentration (a + b), and on a false adversary with probability false_adv_error.
    """
    rng = np.random.default_rng(seed)
    transfer = transfer or (lambda e, same: min(0.95, 0.3 + 2.5 * e) - (0.0 if same else 0.1))
    networks, null_seeds = list(networks), list(null_seeds)
    rows = []

    def add(base, kind, suspect, suspect_seed, ta, fa, attack="none", level=0):
        m, l = int(ta + fa), base["key_size"]
        rows.append({**base, "model_kind": kind, "suspect_network": suspect,
                     "suspect_seed": int(suspect_seed), "attack": attack, "level": level,
                     "key_errors": m, "key_errors_true_adv": int(ta), "key_errors_false_adv": int(fa),
                     "theta": binomial_threshold(l, z), "p_value": binomial_p_value(m, l),
                     "marked": m < binomial_threshold(l, z)})

    for network in networks:
        for e in eps:
            for l in key_sizes:
                half = l // 2
                base = {"network": network, "seed": 0, "eps": float(e), "key_size": int(l), "key_seed": 0,
                        "key_hash": f"{network}-{e:g}-{l}", "level": 0, "test_acc": 0.98, "z": z,
                        "queries": int(l)}
                add(base, "unmarked", network, 0, half, 0)
                add(base, "marked", network, 0, 0, 0)
                add(base, "marked", network, 0, rng.binomial(half, attacked_error),
                    rng.binomial(l - half, 0.01), attack="finetune", level=1)
                suspects = [(n, s) for n in networks for s in [0, *null_seeds] if (n, s) != (network, 0)]
                for suspect, s in suspects:
                    mean = transfer(float(e), suspect == network)
                    q = rng.beta(mean * concentration, (1 - mean) * concentration)
                    add(base, "unmarked", suspect, s, rng.binomial(half, q),
                        rng.binomial(l - half, false_adv_error))
    return pd.DataFrame(rows)
