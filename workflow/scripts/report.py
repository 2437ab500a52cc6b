from pathlib import Path

from fsw.workflow import run_stage

run_stage(
    snakemake, "report", records=list(snakemake.input.records), table_csv=snakemake.output.csv,
    table_md=snakemake.output.md, tables_dir=Path(snakemake.output.detection).parent, plot_dir=snakemake.output.plots,
    remote_records=list(snakemake.input.remote), remote_md=snakemake.output.remote,
    remote_csv=snakemake.output.remote_csv, report_dir=Path(snakemake.output.report_training).parent,
    train_metrics=list(snakemake.input.train), keygen_reports=list(snakemake.input.keygen),
    embed_metrics=list(snakemake.input.embed), benchmarks_dir=snakemake.params.benchmarks_dir,
    logs_dir=snakemake.params.logs_dir,
)
