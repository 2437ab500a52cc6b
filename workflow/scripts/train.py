from fsw.workflow import run_stage

run_stage(
    snakemake, "train", model_out=snakemake.output.model, metrics_out=snakemake.output.metrics,
    log_dir=snakemake.params.log_dir, checkpoint_dir=snakemake.params.checkpoint_dir,
)
