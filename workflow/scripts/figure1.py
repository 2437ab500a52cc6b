from fsw.workflow import run_stage

run_stage(snakemake, "figure1", figure_out=snakemake.output.png, metrics_out=snakemake.output.metrics)
