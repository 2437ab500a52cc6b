"""False claims of ownership: can someone who does not own a model make a key "verify" against it?

Two claimants per key and held-out model (an honest owner's independently trained model, never
marked by the key's owner):

- `honest`: a claimant who made a key by the scheme from their own model, fixed before seeing the
  target. The key's own verification of the held-out model is that case: its false-positive rate.
- `forged`: a claimant who queries the target first and labels the scheme's items with the target's
  own answers (the target then makes no error on them), fitting the decision to the same calibration
  models on those labels. Label-only verification cannot tell this key from an honest one.

The defence is a commitment: the key (its hash covers inputs, labels and calibration, `fsw.key`) is
published with a timestamp before the target exists or is disputed, so its labels cannot be the
target's answers; the verifier then checks the presented key against that hash (`fsw verify
key_commitment=<hash>`). Under a commitment only the honest claimant remains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fsw.stats.decision import null_errors
from fsw.stats.rules import CALIBRATION, HELDOUT, SETTING
from fsw.stats.tests import clopper_pearson


def forged_marked(target: np.ndarray, calibration: np.ndarray, families: tuple[str, ...], rule: str, z: float) -> bool:
    """The verdict of `rule` on the target for a key relabelled with the target's answers: 0 errors,
    against the calibration models' agreement with those answers."""
    matches = calibration == target[None, :]
    return null_errors(rule, len(target), matches, families).p_value(0) < z


def false_claims(annotated: pd.DataFrame, rule: str, z: float) -> pd.DataFrame:
    """Per key: how many held-out models an honest and a forging claimant could claim, with 95%
    Clopper-Pearson intervals. Empty for records without the suspects' answers (simulated ones)."""
    if "answers" not in annotated:
        return pd.DataFrame()
    keys = (["dataset"] if "dataset" in annotated else []) + SETTING
    rows = []
    for values, group in annotated.groupby(keys, sort=True):
        heldout, reference = group[group.role == HELDOUT], group[group.role == CALIBRATION]
        if heldout.empty or reference.empty:
            continue
        calibration = np.array(reference.answers.tolist())
        families = tuple(reference.suspect_network.astype(str))
        forged = [forged_marked(np.array(answers), calibration, families, rule, z) for answers in heldout.answers]
        row = {**dict(zip(keys, values)), "rule": rule, "n_heldout": len(heldout)}
        for claimant, flags in (("honest", heldout[f"marked_{rule}"].astype(bool)), ("forged", pd.Series(forged))):
            k = int(flags.sum())
            low, high = clopper_pearson(k, len(flags))
            row.update({f"{claimant}_claims": k, f"{claimant}_rate": k / len(flags),
                        f"{claimant}_ci_low": low, f"{claimant}_ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)
