"""Report tables of the verification records and the stages' metrics: the marked model beside its
source, remote against local verification, training, key generation and embedding."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from fsw import stats
from fsw.io import atomic_write, read_json


def load_records(paths) -> pd.DataFrame:
    records = pd.DataFrame([read_json(path) for path in paths])
    if records.empty:
        raise ValueError("no verification records to report")
    return records.sort_values(["network", "eps", "key_size", "model_kind"]).reset_index(drop=True)


def load_json_table(paths: Iterable) -> pd.DataFrame:
    """One row per JSON file (stage metrics or keygen diagnostics); empty without files."""
    return pd.DataFrame([read_json(path) for path in paths])


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


def summary_markdown(table: pd.DataFrame) -> str:
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
