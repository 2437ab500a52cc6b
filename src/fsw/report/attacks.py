"""Report tables of the removal attacks and of extraction: robustness per level, where the mark is
lost against where accuracy is ruined, the paper's pruning table, extraction surrogates.

Attack levels have a direction: a larger level is a stronger attack (more pruning, more epochs, a
looser low-rank bound, a larger key or query budget) except for quantization, whose level is bits
per weight. Every table and figure orders levels weakest first (`ordered_levels`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from fsw.attack import ATTACKS
from fsw.stats.decision import PAPER_RULE
from fsw.stats.rules import HELDOUT

KEY_ID = ["network", "seed", "eps", "key_size", "strategy", "key_hash"]  # one key; key_hash tells keys of one setting apart
UNATTACKED = "unattacked"  # the level label of the marked model itself in attack tables and figures
NOT_REACHED = "not reached"
YES, NO, UNDETERMINED = "yes", "no", "undetermined"
ACCURACY_DROPS = (1, 5, 10)  # percentage points of test accuracy lost to an attack, in mark_lost
RULE_COLUMNS = {"paper": f"marked_{PAPER_RULE}", "default": "marked_default"}
# The removal attacks the paper's robustness claims are about, by family.
ATTACK_FAMILIES = {family: tuple(a.name for a in ATTACKS.values() if a.family == family)
                   for family in ("pruning", "fine-tuning", "compression")}
EXTRACTION = re.compile(r"^extract_(?P<surrogate>[a-z]+?)(?P<fgsm>_fgsm)?$")  # extract_{network}[_fgsm]


def ordered_levels(attack: str, levels: Iterable[float]) -> list[float]:
    """An attack's levels from the weakest to the strongest."""
    return sorted({float(level) for level in levels}, reverse=attack in ATTACKS and ATTACKS[attack].stronger_when_smaller)


def level_axis(attack: str) -> str:
    if EXTRACTION.match(attack):
        return "query budget (images sent to the served model)"
    return ATTACKS[attack].axis if attack in ATTACKS else "attack level"


def judged(decisions: pd.DataFrame) -> pd.DataFrame:
    """The marked model and its attacked and extracted copies, with key accuracy and both rules'
    decisions: detected_paper (the paper's binomial test, its threshold `theta`) and detected_default
    (the recommended rule, its threshold as a key accuracy in default_acc_threshold)."""
    rule = decisions.decision_rule.iloc[0]
    marked = decisions[decisions.model_kind == "marked"].copy()
    marked["key_acc"] = 1.0 - marked.key_errors / marked.key_size
    marked["theta"] = marked[f"threshold_{PAPER_RULE}"]
    marked["default_acc_threshold"] = 1.0 - marked[f"threshold_{rule}"] / marked.key_size
    for name, column in RULE_COLUMNS.items():
        marked[f"detected_{name}"] = marked[column].fillna(False).astype(bool)
    marked["level"] = marked.level.astype(float)
    return marked


def robustness_table(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per key, removal attack and level: test accuracy and its drop from the marked model's (in
    percentage points), key accuracy, both rules' decisions. Each attack's rows start with the marked
    model itself (level NaN, `level_label` unattacked, position 0), then its levels weakest first."""
    marked = judged(decisions)
    baseline = marked[marked.attack == "none"]
    attacked = marked[(marked.attack != "none") & ~marked.attack.str.match(EXTRACTION.pattern)]
    parts = []
    for attack, part in attacked.groupby("attack", sort=True):
        position = {level: i + 1 for i, level in enumerate(ordered_levels(attack, part.level))}
        unattacked = baseline[baseline.key_hash.isin(part.key_hash)]
        parts.append(unattacked.assign(attack=attack, level=np.nan, position=0, level_label=UNATTACKED))
        parts.append(part.assign(position=part.level.map(position), level_label=part.level.map("{:g}".format)))
    columns = [*KEY_ID, "attack", "level", "position", "level_label", "test_acc", "marked_acc", "acc_drop_points",
               "key_errors", "key_acc", "theta", "detected_paper", "default_acc_threshold", "detected_default"]
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts).merge(
        baseline[["key_hash", "test_acc"]].rename(columns={"test_acc": "marked_acc"}), on="key_hash")
    # rounded so that a drop of exactly k points (accuracies are fractions of the test images) is not
    # read as k - 1e-14 against the 1/5/10-point thresholds
    table["acc_drop_points"] = (100 * (table.marked_acc - table.test_acc)).round(9)
    return table[columns].sort_values([*KEY_ID, "attack", "position"]).reset_index(drop=True)


def first_level(part: pd.DataFrame, mask: pd.Series) -> str:
    """The label of the weakest level where `mask` holds (rows ordered by position), else not reached."""
    hits = part.level_label[mask]
    return str(hits.iloc[0]) if len(hits) else NOT_REACHED


def lost_before_ruin(part: pd.DataFrame, detected: pd.Series, ruin_points: float) -> str:
    """The paper's question for one key and attack: can the attack remove the mark and leave a
    useful model? yes: at some level the mark is lost while test accuracy is within ruin_points of the
    marked model's; no: not so, and some level ruins the model (the mark held until then);
    undetermined: not so, but no level ruins the model either (the sweep's levels are too weak to
    tell), or the marked model itself is not detected."""
    if not detected[part.position == 0].all():
        return UNDETERMINED
    useful = part.acc_drop_points < ruin_points
    if (~detected & useful).any():
        return YES
    return NO if (~useful).any() else UNDETERMINED


def mark_lost_table(robustness: pd.DataFrame, ruin_points: float) -> pd.DataFrame:
    """Per key and removal attack: the weakest level at which each rule no longer calls
    the model marked (`unattacked` if it never did), the weakest levels at which test accuracy has
    fallen by 1, 5 and 10 points from the marked model's, and whether the mark is lost before the
    model is ruined (a fall of ruin_points), per rule (see `lost_before_ruin`)."""
    rows = []
    for values, part in robustness.groupby([*KEY_ID, "attack"], sort=True):
        part = part.sort_values("position")
        row = dict(zip([*KEY_ID, "attack"], values))
        row["levels"] = ", ".join(part.level_label[part.position > 0])
        for name in RULE_COLUMNS:
            row[f"lost_{name}"] = first_level(part, ~part[f"detected_{name}"])
        for points in ACCURACY_DROPS:
            row[f"drop_{points}pt"] = first_level(part, part.acc_drop_points >= points)
        for name in RULE_COLUMNS:
            row[f"lost_before_ruin_{name}"] = lost_before_ruin(part, part[f"detected_{name}"], ruin_points)
        rows.append(row)
    columns = [*KEY_ID, "attack", "levels", *(f"lost_{n}" for n in RULE_COLUMNS),
               *(f"drop_{p}pt" for p in ACCURACY_DROPS), *(f"lost_before_ruin_{n}" for n in RULE_COLUMNS)]
    return pd.DataFrame(rows, columns=columns)


def pruning_table(robustness: pd.DataFrame) -> pd.DataFrame:
    """The paper's pruning table: per key and pruning attack, each rate (0: the marked model) with
    test accuracy, key errors out of l, theta and both rules' decisions."""
    table = robustness[robustness.attack.isin(ATTACK_FAMILIES["pruning"])]
    return pd.DataFrame({
        "network": table.network, "seed": table.seed, "eps": table.eps, "key_size": table.key_size,
        "strategy": table.strategy, "attack": table.attack, "rate": table.level.fillna(0.0), "test_acc": table.test_acc,
        "key_errors": table.key_errors, "theta": table.theta, "detected_paper": table.detected_paper,
        "detected_default": table.detected_default,
    }).reset_index(drop=True)


def extraction_table(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per key, surrogate network, augmentation and query budget: the surrogate's test accuracy beside
    the served (marked) model's, its key accuracy beside the mean of the held-out models verified
    with the same key, and both rules' decisions."""
    marked = judged(decisions)
    parts = marked.attack.str.extract(EXTRACTION.pattern)
    parts = parts[parts.surrogate.notna()]
    extracted = marked.loc[parts.index].assign(
        surrogate=parts.surrogate, augmentation=np.where(parts.fgsm.notna(), "FGSM", "none"))
    columns = [*KEY_ID, "surrogate", "augmentation", "queries", "test_acc", "victim_acc", "key_errors", "key_acc",
               "null_key_acc", "theta", "detected_paper", "detected_default"]
    if extracted.empty:
        return pd.DataFrame(columns=columns)
    victims = marked[marked.attack == "none"][["key_hash", "test_acc"]].rename(columns={"test_acc": "victim_acc"})
    nulls = decisions[decisions.role == HELDOUT]
    null_acc = (1.0 - nulls.key_errors / nulls.key_size).groupby(nulls.key_hash).mean().rename("null_key_acc")
    table = (extracted.assign(queries=extracted.level.astype(int))
             .merge(victims, on="key_hash").merge(null_acc, on="key_hash", how="left"))
    return table[columns].sort_values([*KEY_ID, "surrogate", "augmentation", "queries"]).reset_index(drop=True)


def extraction_verdict(table: pd.DataFrame) -> str:
    """One sentence on whether the mark survived extraction, from the extraction table."""
    if table.empty:
        return "This sweep extracted no surrogate."
    n, default, paper = len(table), int(table.detected_default.sum()), int(table.detected_paper.sum())
    counts = f"{default} of {n} surrogates were called marked by the recommended rule ({paper} by the paper's rule)"
    if default == 0:
        return f"The mark does not survive extraction in this sweep: {counts}."
    if default == n:
        return f"The mark survives extraction in this sweep: {counts}."
    kept = table[table.detected_default]
    where = ", ".join(f"{r.network} ε={r.eps:g} {r.strategy} {r.surrogate}/{r.augmentation} at {r.queries}"
                      for r in kept.itertuples())
    return f"The mark partly survives extraction: {counts}: {where}."


# --------------------------------------------------------------------------------------------------
