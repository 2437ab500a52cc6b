"""Each claim of the paper (Le Merrer et al. 2020) beside what the run measured (`paper_vs_fsw`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fsw.report.attacks import ATTACK_FAMILIES, NO, UNDETERMINED, YES, judged
from fsw.report.tables import summary
from fsw.stats.decision import PAPER_RULE
from fsw.stats.rules import HELDOUT
from fsw.stats.tests import binomial_threshold, clopper_pearson

PAPER_MAX_DROP_POINTS = 0.5  # test accuracy lost by embedding on MNIST, in percentage points
PAPER_KEY_SIZE, PAPER_Z, PAPER_THETA = 100, 0.05, 42


AGREES, PARTLY, DISAGREES = "agrees", "partly", "disagrees"


def _claim(claim: str, paper: str, fsw: str, verdict: str, explanation: str = "") -> dict:
    return {"claim": claim, "paper": paper, "fsw": fsw, "verdict": verdict, "explanation": explanation}


def claim_embedding_cost(drops: pd.DataFrame, embedding: pd.DataFrame) -> dict:
    """drops: `summary(records)` (acc_drop per key); embedding: `embedding_table` (epochs, may be empty)."""
    claim, paper = "embedding costs little test accuracy", f"≤ {PAPER_MAX_DROP_POINTS:g} points on MNIST"
    if drops.empty:
        return _claim(claim, paper, "no marked model beside its source", UNDETERMINED)
    points = 100 * drops.acc_drop
    worst = drops.loc[points.idxmax()]
    fsw = (f"mean {points.mean():.2f}, worst {points.max():.2f} points ({worst.network}, ε = {worst.eps:g}, "
           f"l = {worst.key_size}) over {len(drops)} keys")
    if points.max() <= PAPER_MAX_DROP_POINTS:
        return _claim(claim, paper, fsw, AGREES)
    verdict = PARTLY if points.mean() <= PAPER_MAX_DROP_POINTS else DISAGREES
    by_eps = points.groupby(drops.eps).mean()
    key = ["network", "seed", "eps", "key_size", "strategy"]
    epochs = embedding.set_index(key).epochs_used if len(embedding) else None
    if len(by_eps) > 1 and by_eps.iloc[-1] > by_eps.iloc[0] and worst.eps == by_eps.index.max():
        explanation = (f"The drop grows with ε (mean {by_eps.iloc[0]:.2f} points at ε = {by_eps.index[0]:g}, "
                       f"{by_eps.iloc[-1]:.2f} at ε = {by_eps.index[-1]:g}): key items made with a larger FGSM "
                       f"step lie farther from the frontier, so stitching them bends it more.")
    elif epochs is not None and epochs.get(tuple(worst[key])) == epochs.max():
        explanation = (f"The worst key needed {int(epochs.max())} embedding epochs, the most of any key: the "
                       f"longer the fine-tuning on the key, the more test accuracy it cost.")
    else:
        explanation = ("The drop follows neither ε nor the length of embedding in this sweep; the embedding "
                       "table lists every key.")
    return _claim(claim, paper, fsw, verdict, explanation)


def claim_detection(decisions: pd.DataFrame, embedding: pd.DataFrame) -> dict:
    claim = f"a marked model is detected with l = {PAPER_KEY_SIZE} at z = {PAPER_Z:g}"
    paper = f"θ = {PAPER_THETA}; the marked model is detected"
    marked = judged(decisions)
    marked = marked[marked.attack == "none"]
    theta = binomial_threshold(PAPER_KEY_SIZE, PAPER_Z)
    recorded = marked[(marked.key_size == PAPER_KEY_SIZE) & np.isclose(marked.z, PAPER_Z)].theta.unique()
    source = (f"θ = {int(recorded[0])} in the records of l = {PAPER_KEY_SIZE}" if len(recorded) == 1
              else f"θ = {theta} from fsw's threshold (no key of l = {PAPER_KEY_SIZE} at z = {PAPER_Z:g} in this sweep)")
    detected, n = int(marked.detected_paper.sum()), len(marked)
    fsw = (f"{source}; {detected} of {n} marked models detected by the paper's rule "
           f"(key errors {int(marked.key_errors.min())}-{int(marked.key_errors.max())})")
    thetas = {int(t) for t in recorded} or {theta}
    if thetas != {PAPER_THETA}:
        return _claim(claim, paper, fsw, DISAGREES,
                      f"fsw's θ is the largest integer with P[Binomial(l, 1/2) ≤ θ − 1] < z, which gives "
                      f"{sorted(thetas)} here.")
    if detected == n:
        return _claim(claim, paper, fsw, AGREES)
    missed = marked[~marked.detected_paper]
    errors = f"{int(missed.key_errors.min())}-{int(missed.key_errors.max())}"
    unstitched = int((~embedding.stitched.astype(bool)).sum()) if len(embedding) else 0
    if unstitched:
        explanation = (f"{unstitched} key(s) were not fully stitched when embedding reached its epoch limit, so "
                       f"their marked models still err on {errors} key items.")
    elif len(embedding):
        explanation = (f"The undetected marked models err on {errors} key items although embedding reported every "
                       f"key stitched: verification and embedding disagree on these models.")
    else:
        explanation = f"The undetected marked models err on {errors} key items (no embedding metrics to tell why)."
    return _claim(claim, paper, fsw, PARTLY if detected else DISAGREES, explanation)


def claim_robustness(family: str, mark_lost: pd.DataFrame, ruin_points: float, strategy: str) -> dict:
    """The verdict from the recommended rule on the recommended strategy's keys; the paper's rule on
    the paper's keys beside it, and said where it answers otherwise."""
    attacks = ATTACK_FAMILIES[family]
    claim = f"the mark survives {family} ({', '.join(attacks)}) until the model is ruined"
    paper = "survives until test accuracy collapses"
    ours = mark_lost[mark_lost.attack.isin(attacks) & (mark_lost.strategy == strategy)]
    theirs = mark_lost[mark_lost.attack.isin(attacks) & (mark_lost.strategy == "paper")]
    if ours.empty:
        return _claim(claim, paper, f"no {family} attack in this sweep", UNDETERMINED)

    def counts(rows: pd.DataFrame, name: str) -> str:
        answers = rows[f"lost_before_ruin_{name}"].value_counts()
        return ", ".join(f"{answers.get(a, 0)} {a}" for a in (YES, NO, UNDETERMINED))

    fsw = (f"lost before a {ruin_points:g}-point fall, over {len(ours)} key × attack cases of the {strategy} keys, "
           f"recommended rule: {counts(ours, 'default')}"
           + (f"; the paper's rule on the paper's keys: {counts(theirs, 'paper')}" if len(theirs) else ""))
    answers = ours.lost_before_ruin_default
    lost = ours[answers == YES]
    if lost.empty:
        verdict = AGREES if (answers == NO).any() else UNDETERMINED
        explanation = "" if verdict == AGREES else (
            f"The sweep's levels neither removed the mark nor cost {ruin_points:g} points of accuracy; stronger "
            f"levels (config/paper.yaml) are needed to answer.")
    else:
        verdict = DISAGREES if len(lost) == len(ours) else PARTLY
        where = "; ".join(f"{r.attack} at {r.lost_default} ({r.network}, ε = {r.eps:g})" for r in lost.itertuples())
        explanation = (f"By the recommended rule the mark is lost while the model stays useful: {where}. A "
                       f"fine-tuned copy drifts back towards what independent models answer on the key's items.")
    paper_lost = int((theirs.lost_before_ruin_paper == YES).sum())
    if len(theirs) and (paper_lost == 0) != lost.empty:
        explanation += (f" The paper's rule on the paper's keys answers otherwise ({paper_lost} of {len(theirs)} "
                        f"cases lost): it also calls unmarked models marked, so its 'survives' is no evidence.")
    return _claim(claim, paper, fsw, verdict, explanation.strip())


def claim_false_positives(decisions: pd.DataFrame, detection: pd.DataFrame, z: float, strategy: str) -> dict:
    """The recommended rule on the recommended strategy's keys against held-out models decides the
    verdict; the paper's rule on the paper's keys is shown beside it."""
    claim = "an unmarked model is called marked with probability below z"
    paper = f"FPR ≤ z = {z:g} (each key item a fair coin for an unmarked model)"
    heldout = detection[detection.population == "heldout_null"]
    ours = heldout[heldout.recommended]
    theirs = heldout[(heldout.rule == PAPER_RULE) & (heldout.strategy == "paper")]
    if ours.empty:
        return _claim(claim, paper, "no held-out model in this sweep", UNDETERMINED)

    def rate(rows: pd.DataFrame) -> tuple[float, float, float, int]:
        k, n = int(rows.detected.sum()), int(rows.n.sum())
        low, high = clopper_pearson(k, n)
        return k / n, low, high, n

    fpr, low, high, n = rate(ours)
    fsw = (f"recommended rule ({ours.rule.iloc[0]}, {strategy} keys): FPR {fpr:.1%} [{low:.1%}, {high:.1%}] over "
           f"{n} held-out verifications")
    explanation = ""
    if len(theirs):
        p_fpr, p_low, p_high, p_n = rate(theirs)
        fsw += f"; the paper's rule on the paper's keys: {p_fpr:.1%} [{p_low:.1%}, {p_high:.1%}] over {p_n}"
        nulls = decisions[(decisions.role == HELDOUT) & (decisions.strategy == "paper")]
        true_items = nulls.key_size // 2
        true_acc = float((1.0 - nulls.key_errors_true_adv / true_items).mean())
        false_acc = float((1.0 - nulls.key_errors_false_adv / (nulls.key_size - true_items)).mean())
        if p_low > z:
            explanation = (f"The paper's rule says otherwise: held-out models answer {false_acc:.0%} of the paper "
                           f"keys' false adversaries and {true_acc:.0%} of their true ones with the key's labels, "
                           f"not 50%.")
    verdict = AGREES if fpr <= z else UNDETERMINED if low <= z else DISAGREES
    return _claim(claim, paper, fsw, verdict, explanation)


def paper_vs_fsw(records: pd.DataFrame, decisions: pd.DataFrame, embedding: pd.DataFrame, mark_lost: pd.DataFrame,
                 detection: pd.DataFrame, z: float, ruin_points: float, strategy: str) -> pd.DataFrame:
    """Each claim of the paper beside what this run measured: verdict agrees / partly / disagrees /
    undetermined, and for a deviation one sentence picked by conditions on the measurements."""
    rows = [claim_embedding_cost(summary(records), embedding), claim_detection(decisions, embedding)]
    rows += [claim_robustness(family, mark_lost, ruin_points, strategy) for family in ATTACK_FAMILIES]
    rows.append(claim_false_positives(decisions, detection, z, strategy))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
