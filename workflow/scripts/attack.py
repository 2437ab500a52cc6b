from fsw.workflow import run_stage

run_stage(
    snakemake, "attack", model_in=snakemake.input.model, model_out=snakemake.output.model,
    metrics_out=snakemake.output.metrics,
)
