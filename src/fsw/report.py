"""Stage `report`: aggregate verification records and the stages' metrics into tables and figures.

Always written: every record (`table_csv`), the marked-beside-unmarked summary (`table_md`), the
remote-vs-local comparison, and the false-positive tables and figures (`fsw.plots`). With
`report_dir` set (the workflow sets it) also one folder per category of the `snakemake --report`
HTML (`CATEGORIES`), each with its tables (CSV and Markdown) and figures (PNG and SVG, `fsw.figures`):

- training/  training: every trained model's accuracy and training length
- keys/  keygen: pool sizes and how many true and false adversaries FGSM found
- embedding/  embedding: accuracy before and after embedding, key accuracy, epochs; accuracy_drop figure
- attacks/  robustness (every attacked model), mark_lost (issue #3: the level at which the mark is
  lost against the levels at which accuracy has fallen by 1, 5 and 10 points), pruning (the paper's
  table); one robustness figure per attack
- extraction/  extraction: surrogates against query budget, with and without FGSM augmentation
- false_positives/  key_errors figure: marked, source and null models' key errors
- paper/  paper_vs_fsw: each claim of the paper against what the run measured
- sweep/  runtime (per rule, from the benchmark files) and machine

Attack levels have a direction: a larger level is a stronger attack (more pruning, more epochs, a
looser low-rank bound, a larger key or query budget) except for quantization, whose level is bits
per weight. Every table and figure orders levels weakest first (`ordered_levels`).
"""

from __future__ import annotations

import logging
import os
import platform
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from fsw import figures, stats
from fsw.io import atomic_write, read_json
from fsw.plots import write_false_positive_outputs
from fsw.validate import check_config

log = logging.getLogger(__name__)

CATEGORIES = ("training", "keys", "embedding", "attacks", "extraction", "false_positives", "paper", "sweep")
KEY_ID = ["network", "seed", "eps", "key_size", "key_hash"]  # one key; key_hash tells keys of one setting apart
UNATTACKED = "unattacked"  # the level label of the marked model itself in attack tables and figures
NOT_REACHED = "not reached"
YES, NO, UNDETERMINED = "yes", "no", "undetermined"
ACCURACY_DROPS = (1, 5, 10)  # percentage points of test accuracy lost to an attack, in mark_lost
RULE_COLUMNS = {"paper": f"marked_{stats.PAPER_RULE}", "default": "marked_default"}
EXTRACTION = re.compile(r"^extract_(?P<surrogate>[a-z]+?)(?P<fgsm>_fgsm)?$")  # extract_{network}[_fgsm]
# Quantization's level is bits per weight: fewer bits, a coarser grid. Every other attack (see
# fsw.attacks, and extraction's query budget) is stronger at a larger level.
STRONGER_WHEN_SMALLER = frozenset({"quantize"})
# The x axis of each attack's robustness figure: its level, with the unit.
LEVEL_AXES = {
    "prune_global": "pruning rate (share of weights zeroed, one threshold for all layers)",
    "prune_layer": "pruning rate (share of each layer's weights zeroed)",
    "ftll": "epochs of fine-tuning the last layer on the attacker's data",
    "ftal": "epochs of fine-tuning all layers on the attacker's data",
    "rtll": "epochs of training a re-initialised last layer on the attacker's data",
    "rtal": "epochs of training all layers after re-initialising the last one",
    "lowrank": "low-rank bound (largest relative error allowed per layer)",
    "quantize": "bits per weight (fewer = stronger; 16 = float16)",
    "overwrite": "attacker's key size (items embedded by the attacker)",
}
# The paper's claims (Le Merrer et al. 2020) that `paper_vs_fsw` checks.
PAPER_MAX_DROP_POINTS = 0.5  # test accuracy lost by embedding on MNIST, in percentage points
PAPER_KEY_SIZE, PAPER_Z, PAPER_THETA = 100, 0.05, 42
ATTACK_FAMILIES = {  # the removal attacks the paper's robustness claims are about
    "pruning": ("prune_global", "prune_layer"),
    "fine-tuning": ("ftll", "ftal", "rtll", "rtal"),
    "compression": ("lowrank", "quantize"),
}


# --------------------------------------------------------------------------------------------------
# Inputs


def load_records(paths) -> pd.DataFrame:
    records = pd.DataFrame([read_json(path) for path in paths])
    if records.empty:
        raise ValueError("no verification records to report")
    return records.sort_values(["network", "eps", "key_size", "model_kind"]).reset_index(drop=True)


def load_json_table(paths: Iterable) -> pd.DataFrame:
    """One row per JSON file (stage metrics or keygen diagnostics); empty without files."""
    return pd.DataFrame([read_json(path) for path in paths])


def benchmark_jobs(benchmarks_dir: str | Path) -> pd.DataFrame:
    """One row per benchmarked job: its rule (the first folder, or the file's name, under
    benchmarks_dir), its run time and CPU time (columns s and cpu_time of Snakemake's benchmark
    file), and when its benchmark file was written."""
    root = Path(benchmarks_dir)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        measured = pd.read_csv(path, sep="\t").iloc[0]
        rows.append({"rule": Path(path.relative_to(root).parts[0]).stem, "s": float(measured["s"]),
                     "cpu_s": float(measured["cpu_time"]), "finished": path.stat().st_mtime})
    return pd.DataFrame(rows, columns=["rule", "s", "cpu_s", "finished"])


# --------------------------------------------------------------------------------------------------
# Tables: verification


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """Per network, eps and key size: the marked model beside the unmarked model it was made from."""
    keys = ["network", "seed", "eps", "key_size"]
    base = records[(records.model_kind == "unmarked") & (records.suspect_network == records.network)
                   & (records.suspect_seed == records.seed) & (records.attack == "none")]
    marked = records[(records.model_kind == "marked") & (records.attack == "none")]
    table = marked.merge(base, on=keys, suffixes=("_marked", "_unmarked"))
    out = pd.DataFrame(
        {
            "network": table.network,
            "eps": table.eps,
            "key_size": table.key_size,
            "seed": table.seed,
            "base_acc": table.test_acc_unmarked,
            "marked_acc": table.test_acc_marked,
            "acc_drop": table.test_acc_unmarked - table.test_acc_marked,
            "theta": table.theta_marked,
            "key_errors_marked": table.key_errors_marked,
            "p_value_marked": table.p_value_marked,
            "detected_marked": table.marked_marked,
            "key_errors_unmarked": table.key_errors_unmarked,
            "p_value_unmarked": table.p_value_unmarked,
            "detected_unmarked": table.marked_unmarked,
        }
    )
    return out.sort_values(["network", "eps", "key_size", "seed"]).reset_index(drop=True)


REMOTE_COLUMNS = ["network", "eps", "key_size", "model_kind", "key_errors_local", "key_errors_remote",
                  "same_decision", "queries_remote", "query_time_s_remote"]


def remote_vs_local(remote: pd.DataFrame, local: pd.DataFrame) -> pd.DataFrame:
    """Each verification through the API beside the local verification of the same model and key
    (no rows without remote records)."""
    if remote.empty:
        return pd.DataFrame(columns=REMOTE_COLUMNS)
    local = local[(local.attack == "none")
                  & ((local.model_kind == "marked") | (local.suspect_network == local.network)
                     & (local.suspect_seed == local.seed))]
    keys = ["key_hash", "model_kind"]
    both = remote.merge(local, on=keys, suffixes=("_remote", "_local"))
    table = pd.DataFrame(
        {
            "network": both.network_local,
            "eps": both.eps_local,
            "key_size": both.key_size_local,
            "model_kind": both.model_kind,
            "key_errors_local": both.key_errors_local,
            "key_errors_remote": both.key_errors_remote,
            "same_decision": both.marked_local == both.marked_remote,
            "queries_remote": both.queries_remote,
            "query_time_s_remote": both.query_time_s_remote,
        }
    )
    return table.sort_values(["network", "eps", "key_size", "model_kind"])


def to_markdown(table: pd.DataFrame) -> str:
    formats = {"base_acc": "{:.4f}", "marked_acc": "{:.4f}", "acc_drop": "{:+.4f}",
               "p_value_marked": "{:.2e}", "p_value_unmarked": "{:.2e}"}
    shown = table.copy()
    for column, fmt in formats.items():
        shown[column] = shown[column].map(fmt.format)
    return shown.to_markdown(index=False) + "\n"


def write_table(table: pd.DataFrame, directory: str | Path, name: str, note: str = "") -> list[Path]:
    """directory/name.csv and name.md (`note` as a paragraph above the Markdown table), atomically.
    The Markdown shows key hashes by their first 12 characters, as the logs do."""
    directory = Path(directory)
    shown = table.assign(key_hash=table.key_hash.str[:12]) if "key_hash" in table and len(table) else table
    text = (note + "\n\n" if note else "") + stats.to_markdown(shown, digits=4)
    return [atomic_write(directory / f"{name}.csv", lambda tmp: table.to_csv(tmp, index=False)),
            atomic_write(directory / f"{name}.md", lambda tmp: Path(tmp).write_text(text))]


# --------------------------------------------------------------------------------------------------
# Tables: training, keys, embedding


def training_table(train_metrics: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Every trained model: `key source` if a key of the sweep was made from it, else `null model`."""
    columns = ["network", "seed", "role", "test_acc", "val_acc", "epochs", "train_size", "wall_time_s"]
    if train_metrics.empty:
        return pd.DataFrame(columns=columns)
    sources = set(zip(records.network, records.seed.astype(int)))
    table = train_metrics.copy()
    table["role"] = ["key source" if (n, int(s)) in sources else "null model"
                     for n, s in zip(table.network, table.seed)]
    return table[columns].sort_values(["network", "seed"]).reset_index(drop=True)


def keygen_table(keygen_reports: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Per key: the candidate pool FGSM searched, how many of them the model classified correctly,
    and how many of those became true adversaries (the prediction flipped) or false ones."""
    columns = ["network", "seed", "eps", "key_size", "pool_size", "correct", "true_adversaries_found",
               "false_adversaries_found", "true_share", "wall_time_s"]
    if keygen_reports.empty:
        return pd.DataFrame(columns=columns)
    seeds = records[["key_hash", "seed"]].drop_duplicates("key_hash")  # keygen.json does not name the seed
    table = keygen_reports.merge(seeds, on="key_hash", how="left")
    table["true_share"] = table.true_adversaries_found / table.correct
    return table[columns].sort_values(["network", "seed", "eps", "key_size"]).reset_index(drop=True)


def embedding_table(embed_metrics: pd.DataFrame) -> pd.DataFrame:
    """Per key: test accuracy before and after embedding (the drop in percentage points), key
    accuracy before and after, the epochs embedding took and whether the whole key was stitched."""
    columns = ["network", "seed", "eps", "key_size", "test_acc_before", "test_acc_after", "drop_points",
               "key_acc_before", "key_acc_after", "epochs_used", "stitched", "wall_time_s"]
    if embed_metrics.empty:
        return pd.DataFrame(columns=columns)
    table = embed_metrics.assign(drop_points=100 * (embed_metrics.test_acc_before - embed_metrics.test_acc_after))
    return table[columns].sort_values(["network", "seed", "eps", "key_size"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# Tables: attacks and extraction


def ordered_levels(attack: str, levels: Iterable[float]) -> list[float]:
    """An attack's levels from the weakest to the strongest."""
    return sorted({float(level) for level in levels}, reverse=attack in STRONGER_WHEN_SMALLER)


def level_axis(attack: str) -> str:
    if EXTRACTION.match(attack):
        return "query budget (images sent to the served model)"
    return LEVEL_AXES.get(attack, "attack level")


def judged(decisions: pd.DataFrame) -> pd.DataFrame:
    """The marked model and its attacked and extracted copies, with key accuracy and both rules'
    decisions: detected_paper (the paper's binomial test) and detected_default (the recommended rule,
    whose statistic and threshold are default_acc and default_acc_threshold, as accuracies)."""
    rule = stats.get_rule(decisions.decision_rule.iloc[0])
    marked = decisions[decisions.model_kind == "marked"].copy()
    items = rule.items(marked)
    marked["key_acc"] = 1.0 - marked.key_errors / marked.key_size
    marked["default_acc"] = 1.0 - marked[rule.statistic] / items
    marked["default_acc_threshold"] = 1.0 - marked[f"threshold_{rule.name}"] / items
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
               "key_errors", "key_acc", "theta", "detected_paper", "default_acc", "default_acc_threshold",
               "detected_default"]
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
    """Per key and removal attack (issue #3): the weakest level at which each rule no longer calls
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
        "attack": table.attack, "rate": table.level.fillna(0.0), "test_acc": table.test_acc,
        "key_errors": table.key_errors, "theta": table.theta, "detected_paper": table.detected_paper,
        "detected_default": table.detected_default,
    }).reset_index(drop=True)


def extraction_table(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per key, surrogate network, augmentation and query budget: the surrogate's test accuracy beside
    the served (marked) model's, its key accuracy beside the mean of the null models verified with
    the same key, and both rules' decisions."""
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
    nulls = decisions[decisions.role == stats.NULL]
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
    where = ", ".join(f"{r.network} ε={r.eps:g} {r.surrogate}/{r.augmentation} at {r.queries}"
                      for r in kept.itertuples())
    return f"The mark partly survives extraction: {counts}: {where}."


# --------------------------------------------------------------------------------------------------
# Paper vs fsw


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
    epochs = embedding.set_index(["network", "seed", "eps", "key_size"]).epochs_used if len(embedding) else None
    if len(by_eps) > 1 and by_eps.iloc[-1] > by_eps.iloc[0] and worst.eps == by_eps.index.max():
        explanation = (f"The drop grows with ε (mean {by_eps.iloc[0]:.2f} points at ε = {by_eps.index[0]:g}, "
                       f"{by_eps.iloc[-1]:.2f} at ε = {by_eps.index[-1]:g}): key items made with a larger FGSM "
                       f"step lie farther from the frontier, so stitching them bends it more.")
    elif epochs is not None and epochs.get((worst.network, worst.seed, worst.eps, worst.key_size)) == epochs.max():
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
    theta = stats.binomial_threshold(PAPER_KEY_SIZE, PAPER_Z)
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


def claim_robustness(family: str, mark_lost: pd.DataFrame, ruin_points: float) -> dict:
    attacks = ATTACK_FAMILIES[family]
    claim = f"the mark survives {family} ({', '.join(attacks)}) until the model is ruined"
    paper = "survives until test accuracy collapses"
    rows = mark_lost[mark_lost.attack.isin(attacks)]
    if rows.empty:
        return _claim(claim, paper, f"no {family} attack in this sweep", UNDETERMINED)

    def counts(name: str) -> str:
        answers = rows[f"lost_before_ruin_{name}"].value_counts()
        return ", ".join(f"{answers.get(a, 0)} {a}" for a in (YES, NO, UNDETERMINED))

    fsw = (f"lost before a {ruin_points:g}-point fall, over {len(rows)} key × attack cases: paper's rule "
           f"{counts('paper')}; recommended rule {counts('default')}")
    answers = rows.lost_before_ruin_paper
    lost = rows[answers == YES]
    if lost.empty and (answers == NO).any():
        return _claim(claim, paper, fsw, AGREES)
    if lost.empty:
        return _claim(claim, paper, fsw, UNDETERMINED,
                      f"The sweep's levels ({'; '.join(sorted(set(rows.attack + ': ' + rows.levels)))}) neither "
                      f"removed the mark nor cost {ruin_points:g} points of accuracy; stronger levels "
                      f"(config/paper.yaml) are needed to answer.")
    verdict = DISAGREES if len(lost) == len(rows) else PARTLY
    where = "; ".join(f"{r.attack} at {r.lost_paper} ({r.network}, ε = {r.eps:g})" for r in lost.itertuples())
    held = set(rows.attack[answers != YES])
    if family == "fine-tuning" and "ftll" in held and not set(lost.attack) & {"ftll"}:
        why = ("training more than the last layer, or a re-initialised one, on the attacker's own data moved the "
               "frontier back over the key while fine-tuning the last layer alone did not")
    else:
        why = f"the mark fell while test accuracy was still within {ruin_points:g} points of the marked model's"
    return _claim(claim, paper, fsw, verdict, f"Under the paper's rule, {where}: {why}.")


def claim_false_positives(decisions: pd.DataFrame, rules: pd.DataFrame, z: float) -> dict:
    claim = "an unmarked model is called marked with probability below z"
    paper = f"FPR ≤ z = {z:g} (each key item a fair coin for an unmarked model)"
    nulls = decisions[decisions.role == stats.NULL]
    row = rules.set_index("rule").loc[stats.PAPER_RULE] if len(rules) else None
    if nulls.empty or row is None or not row.n_null:
        return _claim(claim, paper, "no null model in this sweep", UNDETERMINED)
    default = rules.set_index("rule").loc[decisions.decision_rule.iloc[0]]
    fsw = (f"paper's rule: FPR {row.fpr:.1%} [{row.fpr_low:.1%}, {row.fpr_high:.1%}] over {int(row.n_null)} "
           f"null-model verifications; recommended rule ({default.name}): {default.fpr:.1%}")
    if row.fpr <= z:
        return _claim(claim, paper, fsw, AGREES)
    if row.fpr_low <= z:
        return _claim(claim, paper, fsw, UNDETERMINED,
                      "The FPR is above z but its 95% interval still reaches z: more null models are needed.")
    true_items = stats.true_adv_items(nulls)
    true_acc = float((1.0 - nulls.key_errors_true_adv / true_items).mean())
    false_acc = float((1.0 - nulls.key_errors_false_adv / (nulls.key_size - true_items)).mean())
    if false_acc >= true_acc:  # which kind of key item lifts null models' key accuracy above 1/2 more
        explanation = (f"Null models answer {false_acc:.0%} of the false adversaries and {true_acc:.0%} of the true "
                       f"ones with the key's labels, not 50%: false adversaries are images every good model "
                       f"still classifies correctly, so unmarked models agree with most of the key.")
    else:
        explanation = (f"Null models answer {true_acc:.0%} of the true adversaries and {false_acc:.0%} of the false "
                       f"ones with the key's labels, not 50%: FGSM adversaries transfer between models.")
    return _claim(claim, paper, fsw, DISAGREES, explanation)


def paper_vs_fsw(records: pd.DataFrame, decisions: pd.DataFrame, embedding: pd.DataFrame, mark_lost: pd.DataFrame,
                 rules: pd.DataFrame, z: float, ruin_points: float) -> pd.DataFrame:
    """Each claim of the paper beside what this run measured: verdict agrees / partly / disagrees /
    undetermined, and for a deviation one sentence picked by conditions on the measurements."""
    rows = [claim_embedding_cost(summary(records), embedding), claim_detection(decisions, embedding)]
    rows += [claim_robustness(family, mark_lost, ruin_points) for family in ATTACK_FAMILIES]
    rows.append(claim_false_positives(decisions, rules, z))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# Sweep


def runtime_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: benchmarked jobs, their run time (total, mean, longest) and CPU time, in seconds."""
    table = jobs.groupby("rule").agg(jobs=("s", "count"), total_s=("s", "sum"), mean_s=("s", "mean"),
                                     max_s=("s", "max"), cpu_s=("cpu_s", "sum"))
    return table.round(2).reset_index()


def machine_table() -> pd.DataFrame:
    """The machine the report ran on (the sweep's, when both ran in one `snakemake` call)."""
    return pd.DataFrame([{"cpus": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine(),
                          "python": platform.python_version()}])


# --------------------------------------------------------------------------------------------------
# The stage


def write_categories(report_dir: Path, records: pd.DataFrame, fp_tables: dict[str, pd.DataFrame],
                     cfg: DictConfig) -> list[Path]:
    """Every category folder of the HTML report (see the module docstring); fp_tables: the tables of
    `fsw.plots.write_false_positive_outputs` (decisions: every record with every rule's decision)."""
    decisions = fp_tables["decisions"]
    z, ruin = float(cfg.z), float(cfg.ruin_points)
    folders = {name: report_dir / name for name in CATEGORIES}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)  # Snakemake expects every folder, even an empty one
    embedding = embedding_table(load_json_table(cfg.embed_metrics))
    robustness = robustness_table(decisions)
    mark_lost = mark_lost_table(robustness, ruin)
    extraction = extraction_table(decisions)
    default = decisions.decision_rule.iloc[0]
    paths = write_table(training_table(load_json_table(cfg.train_metrics), records), folders["training"], "training")
    paths += write_table(keygen_table(load_json_table(cfg.keygen_reports), records), folders["keys"], "keygen")
    paths += write_table(embedding, folders["embedding"], "embedding")
    if len(embedding):
        paths += figures.plot_accuracy_drop(embedding, folders["embedding"], PAPER_MAX_DROP_POINTS)
    paths += write_table(robustness, folders["attacks"], "robustness")
    paths += write_table(mark_lost, folders["attacks"], "mark_lost",
                         f"A model is ruined once its test accuracy has fallen {ruin:g} points below the marked "
                         f"model's; recommended rule: `{default}`, the paper's: `{stats.PAPER_RULE}`.")
    paths += write_table(pruning_table(robustness), folders["attacks"], "pruning")
    for attack in robustness.attack.unique():
        paths += figures.plot_robustness(robustness, attack, folders["attacks"], level_axis(attack), default)
    paths += write_table(extraction, folders["extraction"], "extraction", extraction_verdict(extraction))
    if len(extraction):
        paths += figures.plot_extraction(extraction, folders["extraction"], level_axis("extract_mlp"))
    paths += figures.plot_key_errors(decisions, folders["false_positives"])
    comparison = paper_vs_fsw(records, decisions, embedding, mark_lost, fp_tables["rules"], z, ruin)
    paths += write_table(comparison, folders["paper"], "paper_vs_fsw")
    if cfg.benchmarks_dir:
        paths += write_table(runtime_table(benchmark_jobs(cfg.benchmarks_dir)), folders["sweep"], "runtime")
    paths += write_table(machine_table(), folders["sweep"], "machine")
    return paths


def run(cfg: DictConfig) -> dict:
    check_config(cfg)
    records = load_records(list(cfg.records))
    atomic_write(cfg.table_csv, lambda tmp: records.to_csv(tmp, index=False))
    table = summary(records)
    text = to_markdown(table)
    atomic_write(cfg.table_md, lambda tmp: Path(tmp).write_text(text))
    written = []
    if cfg.remote_md:
        remote = remote_vs_local(load_json_table(cfg.remote_records), records)
        written.append(atomic_write(cfg.remote_md, lambda tmp: Path(tmp).write_text(remote.to_markdown(index=False) + "\n")))
        if cfg.remote_csv:
            written.append(atomic_write(cfg.remote_csv, lambda tmp: remote.to_csv(tmp, index=False)))
    fp_paths, fp_tables = write_false_positive_outputs(records, cfg.fp_dir, plot_dir=cfg.plot_dir, z=float(cfg.z))
    written += fp_paths
    if cfg.report_dir:
        written += write_categories(Path(cfg.report_dir), records, fp_tables, cfg)
    log.info("report of %d records (%d further tables and figures):\n%s", len(records), len(written), text)
    return {"records": len(records), "rows": len(table), "outputs": [str(p) for p in written]}
