"""Stage `report`: aggregate verification records into tables."""

from __future__ import annotations

import logging

from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from fsw.io import atomic_write, read_json
from fsw.plots import write_false_positive_outputs
from fsw.validate import check_config

log = logging.getLogger(__name__)


def load_records(paths) -> pd.DataFrame:
    records = pd.DataFrame([read_json(path) for path in paths])
    if records.empty:
        raise ValueError("no verification records to report")
    return records.sort_values(["network", "eps", "key_size", "model_kind"]).reset_index(drop=True)


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


def remote_vs_local(remote: pd.DataFrame, local: pd.DataFrame) -> pd.DataFrame:
    """Each verification through the API beside the local verification of the same model and key."""
    local = local[(local.attack == "none")
                  & ((local.model_kind == "marked") | (local.suspect_network == local.network)
                     & (local.suspect_seed == local.seed))]
    keys = ["key_hash", "model_kind"]
    both = remote.merge(local, on=keys, suffixes=("_remote", "_local"))
    return pd.DataFrame(
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
    ).sort_values(["network", "eps", "key_size", "model_kind"])


def to_markdown(table: pd.DataFrame) -> str:
    formats = {"base_acc": "{:.4f}", "marked_acc": "{:.4f}", "acc_drop": "{:+.4f}",
               "p_value_marked": "{:.2e}", "p_value_unmarked": "{:.2e}"}
    shown = table.copy()
    for column, fmt in formats.items():
        shown[column] = shown[column].map(fmt.format)
    return shown.to_markdown(index=False) + "\n"


def run(cfg: DictConfig) -> dict:
    check_config(cfg)
    records = load_records(list(cfg.records))
    atomic_write(cfg.table_csv, lambda tmp: records.to_csv(tmp, index=False))
    table = summary(records)
    text = to_markdown(table)
    atomic_write(cfg.table_md, lambda tmp: Path(tmp).write_text(text))
    if cfg.remote_records:
        remote = remote_vs_local(pd.DataFrame([read_json(p) for p in cfg.remote_records]), records)
        atomic_write(cfg.remote_md, lambda tmp: Path(tmp).write_text(remote.to_markdown(index=False) + "\n"))
    written = write_false_positive_outputs(records, cfg.fp_dir, plot_dir=cfg.plot_dir, z=float(cfg.z))
    log.info("report of %d records (%d further tables and figures):\n%s", len(records), len(written), text)
    return {"records": len(records), "rows": len(table), "outputs": [str(p) for p in written]}
