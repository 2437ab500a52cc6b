"""Stage `report`: aggregate verification records and the stages' metrics into tables and figures.

Always written: every record (`table_csv`), the marked-beside-unmarked summary (`table_md`), the
remote-vs-local comparison, and the false-positive tables and figures (`fsw.stats.tables`, `fsw.figures`). With
`report_dir` set (the workflow sets it) also one folder per category of the `snakemake --report`
HTML (`CATEGORIES`), each with its tables and figures (PNG and SVG, `fsw.figures.marked`). Every
table is a CSV for machines with an HTML twin beside it for readers (the one the HTML report
shows), most also as Markdown:

- training/  training: every trained model's accuracy and training length
- keys/  keygen: pool sizes and how many true and false adversaries FGSM found
- embedding/  embedding: accuracy before and after embedding, key accuracy, epochs; accuracy_drop figure
- attacks/  robustness (every attacked model), mark_lost (the level at which the mark is
  lost against the levels at which accuracy has fallen by 1, 5 and 10 points), pruning (the paper's
  table); one robustness figure per attack
- extraction/  extraction: surrogates against query budget, with and without FGSM augmentation
- ownership/  key_errors figure: marked, source and null models' key errors
- paper/  paper_vs_fsw: each claim of the paper against what the run measured
- sweep/  runtime (per rule, from the benchmark files) and machine

Attack levels have a direction: a larger level is a stronger attack (more pruning, more epochs, a
looser low-rank bound, a larger key or query budget) except for quantization, whose level is bits
per weight. Every table and figure orders levels weakest first (`ordered_levels`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from fsw.figures import marked as figures
from fsw.figures.ownership import write_figures
from fsw.io import atomic_write
from fsw.report.attacks import (
    extraction_table,
    extraction_verdict,
    level_axis,
    mark_lost_table,
    pruning_table,
    robustness_table,
)
from fsw.report.paper import PAPER_MAX_DROP_POINTS, paper_vs_fsw
from fsw.report.sweep import benchmark_jobs, machine_table, runtime_table
from fsw.report.tables import (
    embedding_table,
    flat_records,
    keygen_table,
    load_json_table,
    load_records,
    remote_vs_local,
    summary,
    summary_markdown,
    training_table,
    write_table,
)
from fsw.stats.decision import PAPER_RULE
from fsw.stats.tables import write_csv_and_html, write_tables
from fsw.validate import check_config

log = logging.getLogger(__name__)

CATEGORIES = ("training", "keys", "embedding", "attacks", "extraction", "ownership", "paper", "sweep")


def write_ownership_outputs(records: pd.DataFrame, tables_dir: str | Path, plot_dir: str | Path, z: float,
                            default_rule: str, default_strategy: str) -> tuple[list[Path], dict[str, pd.DataFrame]]:
    """The ownership tables (decisions, detection, roc, ...; CSV and Markdown) into tables_dir and
    their figures (PNG + SVG) into plot_dir. Returns the paths and the tables (`decisions`: every
    record with every rule's decision)."""
    paths, tables = write_tables(records, tables_dir, z, default_rule, default_strategy)
    return paths + write_figures(tables, plot_dir, default_rule), tables


def write_categories(report_dir: Path, records: pd.DataFrame, tables: dict[str, pd.DataFrame],
                     cfg: DictConfig) -> list[Path]:
    """Every category folder of the HTML report (see the module docstring); tables: those of
    `write_ownership_outputs` (decisions: every record with every rule's decision)."""
    decisions = tables["decisions"]
    z, ruin = float(cfg.decision.z), float(cfg.ruin_points)
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
                         f"model's; recommended rule: `{default}`, the paper's: `{PAPER_RULE}`.")
    paths += write_table(pruning_table(robustness), folders["attacks"], "pruning")
    for attack in robustness.attack.unique():
        paths += figures.plot_robustness(robustness, attack, folders["attacks"], level_axis(attack), default)
    paths += write_table(extraction, folders["extraction"], "extraction", extraction_verdict(extraction))
    if len(extraction):
        paths += figures.plot_extraction(extraction, folders["extraction"], level_axis("extract_mlp"))
    paths += figures.plot_key_errors(decisions, folders["ownership"])
    comparison = paper_vs_fsw(records, decisions, embedding, mark_lost, tables["detection"], z, ruin,
                              cfg.recommended_strategy)
    paths += write_table(comparison, folders["paper"], "paper_vs_fsw")
    if cfg.benchmarks_dir:
        paths += write_table(runtime_table(benchmark_jobs(cfg.benchmarks_dir, cfg.logs_dir)), folders["sweep"], "runtime")
    paths += write_table(machine_table(), folders["sweep"], "machine")
    return paths


def run(cfg: DictConfig) -> dict:
    check_config(cfg)
    records = load_records(list(cfg.records))
    write_csv_and_html(flat_records(records), cfg.table_csv, digits=4)
    table = summary(records)
    text = summary_markdown(table)
    atomic_write(cfg.table_md, lambda tmp: Path(tmp).write_text(text))
    written = []
    if cfg.remote_md:
        remote = remote_vs_local(load_json_table(cfg.remote_records), records)
        written.append(atomic_write(cfg.remote_md, lambda tmp: Path(tmp).write_text(remote.to_markdown(index=False) + "\n")))
        if cfg.remote_csv:
            written += write_csv_and_html(remote, cfg.remote_csv, digits=4)
    paths, tables = write_ownership_outputs(records, cfg.tables_dir, cfg.plot_dir, float(cfg.decision.z),
                                            cfg.decision.rule, cfg.recommended_strategy)
    written += paths
    if cfg.report_dir:
        written += write_categories(Path(cfg.report_dir), records, tables, cfg)
    log.info("report of %d records (%d further tables and figures):\n%s", len(records), len(written), text)
    return {"records": len(records), "rows": len(table), "outputs": [str(p) for p in written]}
