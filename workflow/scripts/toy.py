from fsw.workflow import run_stage

run_stage(snakemake, "toy", figure_out=snakemake.output.png, metrics_out=snakemake.output.metrics)
