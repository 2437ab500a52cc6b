from fsw.workflow import run_stage

run_stage(snakemake, "verify", model_in=snakemake.input.model, key_in=snakemake.input.key, out=snakemake.output.record)
