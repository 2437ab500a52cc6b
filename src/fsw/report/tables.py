"""Report tables of the verification records and the stages' metrics: the marked model beside its
source, remote against local verification, training, key generation and embedding."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fsw.io import atomic_write, read_json
from fsw.stats.decision import PAPER_RULE
from fsw.stats.tables import to_markdown, write_csv_and_html


def load_records(paths) -> pd.DataFrame:
    """Every verification record, as verify wrote it (the decisions as dicts), without the config
    that made it: that stays in the record's file, the tables hold the outcomes."""
    records = pd.DataFrame([read_json(path) for path in paths]).drop(columns="config", errors="ignore")
    if records.empty:
        raise ValueError("no verification records to report")
    return records.sort_values(["network", "eps", "key_size", "strategy", "population"]).reset_index(drop=True)


# verification.csv's first columns, in the order a reader looks for them: which key, which suspect,
# what it answered; then the decisions, and last the answers and where the record came from.
FLAT_LEADING = ["network", "seed", "eps", "key_size", "strategy", "key_hash", "population", "model_kind",
                "suspect_split", "suspect_network", "suspect_seed", "attack", "level", "test_acc", "key_errors",
                "key_errors_true_adv", "key_errors_false_adv"]
FLAT_TRAILING = ["answers", "fsw_version", "git_commit"]


def flat_records(records: pd.DataFrame) -> pd.DataFrame:
    """One flat row per record, for verification.csv (FLAT_LEADING first): the decision as
    decision_*, the paper's rule as paper_*, every key-shipped rule as <rule>_marked /
    <rule>_p_value; the answers as one string."""
    flat = records.drop(columns=["decision", PAPER_RULE, "rules", "answers"], errors="ignore").copy()
    for column, prefix in (("decision", "decision"), (PAPER_RULE, "paper")):
        for field in ("rule", "marked", "p_value", "threshold", "calibration_hash"):
            values = records[column].map(lambda d, f=field: d.get(f) if isinstance(d, dict) else None)
            if values.notna().any():
                flat[f"{prefix}_{field}"] = values
    for rule in sorted({name for rules in records.get("rules", []) if isinstance(rules, dict) for name in rules}):
        for field in ("marked", "p_value"):
            flat[f"{rule}_{field}"] = records.rules.map(lambda d, r=rule, f=field: d.get(r, {}).get(f))
    if "answers" in records:
        flat["answers"] = records.answers.map(lambda a: "".join(map(str, a)) if isinstance(a, list) else "")
    leading = [column for column in FLAT_LEADING if column in flat]
    trailing = [column for column in FLAT_TRAILING if column in flat]
    return flat[leading + [column for column in flat if column not in leading + trailing] + trailing]


def load_json_table(paths: Iterable) -> pd.DataFrame:
    """One row per JSON file (stage metrics or keygen diagnostics); empty without files."""
    return pd.DataFrame([read_json(path) for path in paths])


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """Per key: the marked model beside the unmarked model it was made from, by the key's decision
    (`detected_*`) and by the paper's rule (`theta`, `paper_*`)."""
    keys = ["network", "seed", "eps", "key_size", "strategy"]
    source = records[records.population == "source"]
    marked = records[records.population == "marked"]
    table = marked.merge(source, on=keys, suffixes=("_marked", "_unmarked"))

    def field(column: str, name: str) -> pd.Series:
        return table[column].map(lambda d: d.get(name) if isinstance(d, dict) else None)

    out = pd.DataFrame({
        "network": table.network, "eps": table.eps, "key_size": table.key_size, "strategy": table.strategy,
        "seed": table.seed, "base_acc": table.test_acc_unmarked, "marked_acc": table.test_acc_marked,
        "acc_drop": table.test_acc_unmarked - table.test_acc_marked,
        "rule": field("decision_marked", "rule"), "threshold": field("decision_marked", "threshold"),
        "key_errors_marked": table.key_errors_marked, "p_value_marked": field("decision_marked", "p_value"),
        "detected_marked": field("decision_marked", "marked"),
        "key_errors_unmarked": table.key_errors_unmarked, "p_value_unmarked": field("decision_unmarked", "p_value"),
        "detected_unmarked": field("decision_unmarked", "marked"),
        "theta": field(f"{PAPER_RULE}_marked", "threshold"),
        "paper_detected_marked": field(f"{PAPER_RULE}_marked", "marked"),
        "paper_detected_unmarked": field(f"{PAPER_RULE}_unmarked", "marked"),
    })
    return out.sort_values(["network", "eps", "key_size", "strategy", "seed"]).reset_index(drop=True)


REMOTE_COLUMNS = ["network", "eps", "key_size", "strategy", "model_kind", "key_errors_local", "key_errors_remote",
                  "same_decision", "queries_remote", "query_time_s_remote"]


def remote_vs_local(remote: pd.DataFrame, local: pd.DataFrame) -> pd.DataFrame:
    """Each verification through the API beside the local verification of the same model and key
    (no rows without remote records)."""
    if remote.empty:
        return pd.DataFrame(columns=REMOTE_COLUMNS)
    local = local[local.population.isin(["marked", "source"])]
    keys = ["key_hash", "model_kind"]
    both = remote.merge(local, on=keys, suffixes=("_remote", "_local"))
    table = pd.DataFrame(
        {
            "network": both.network_local,
            "eps": both.eps_local,
            "key_size": both.key_size_local,
            "strategy": both.strategy_local,
            "model_kind": both.model_kind,
            "key_errors_local": both.key_errors_local,
            "key_errors_remote": both.key_errors_remote,
            "same_decision": [a["marked"] == b["marked"] for a, b in zip(both.decision_local, both.decision_remote)],
            "queries_remote": both.queries_remote,
            "query_time_s_remote": both.query_time_s_remote,
        }
    )
    return table.sort_values(["network", "eps", "key_size", "strategy", "model_kind"])


def summary_markdown(table: pd.DataFrame) -> str:
    formats = {"base_acc": "{:.4f}", "marked_acc": "{:.4f}", "acc_drop": "{:+.4f}",
               "p_value_marked": "{:.2e}", "p_value_unmarked": "{:.2e}"}
    shown = table.copy()
    for column, fmt in formats.items():
        shown[column] = shown[column].map(fmt.format)
    return shown.to_markdown(index=False) + "\n"


def write_table(table: pd.DataFrame, directory: str | Path, name: str, note: str = "") -> list[Path]:
    """directory/name.csv, name.html and name.md (`note` as a paragraph above the HTML and Markdown
    tables), atomically."""
    directory = Path(directory)
    text = (note + "\n\n" if note else "") + to_markdown(table, digits=4)
    return (write_csv_and_html(table, directory / f"{name}.csv", digits=4, note=note)
            + [atomic_write(directory / f"{name}.md", lambda tmp: Path(tmp).write_text(text))])


def training_table(train_metrics: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Every trained model with its population (key source, selection, calibration or held-out)."""
    columns = ["population", "split", "network", "seed", "test_acc", "val_acc", "epochs", "train_size", "wall_time_s"]
    if train_metrics.empty:
        return pd.DataFrame(columns=columns)
    table = train_metrics.copy()
    suspects = records.drop_duplicates(["suspect_split", "suspect_network", "suspect_seed"]).set_index(
        ["suspect_split", "suspect_network", "suspect_seed"]).population
    table["population"] = [suspects.get((split, network, int(seed)), "source")
                           for split, network, seed in zip(table.split, table.network, table.seed)]
    table.loc[table.population.isin(["marked", "attacked"]), "population"] = "source"
    return table[columns].sort_values(["population", "network", "split", "seed"]).reset_index(drop=True)


def keygen_table(keygen_reports: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Per key: the candidate pool searched, how many true adversaries (the source's answer flipped)
    and false ones it gave, how many of the key's items the calibration models answer with its labels
    (mean over models) and that as a share of the key (`transfer_rate`: how often a calibration model
    answers an item as the marked model will), and the decision's threshold."""
    columns = ["network", "seed", "eps", "key_size", "strategy", "pool_size", "true_adversaries_found",
               "false_adversaries_found", "reference_matches_mean", "transfer_rate", "threshold", "wall_time_s"]
    if keygen_reports.empty:
        return pd.DataFrame(columns=columns)
    seeds = records[["key_hash", "seed"]].drop_duplicates("key_hash")  # keygen.json does not name the seed
    table = keygen_reports.merge(seeds, on="key_hash", how="left").reindex(columns=columns)
    table["transfer_rate"] = table.reference_matches_mean / table.key_size
    return table.sort_values(["network", "seed", "eps", "key_size", "strategy"]).reset_index(drop=True)


def embedding_table(embed_metrics: pd.DataFrame) -> pd.DataFrame:
    """Per key: test accuracy before and after embedding (the drop in percentage points), key
    accuracy before and after, the epochs embedding took and whether the whole key was stitched."""
    columns = ["network", "seed", "eps", "key_size", "strategy", "test_acc_before", "test_acc_after", "drop_points",
               "key_acc_before", "key_acc_after", "epochs_used", "stitched", "wall_time_s"]
    if embed_metrics.empty:
        return pd.DataFrame(columns=columns)
    table = embed_metrics.assign(drop_points=100 * (embed_metrics.test_acc_before - embed_metrics.test_acc_after))
    return table[columns].sort_values(["network", "seed", "eps", "key_size", "strategy"]).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
