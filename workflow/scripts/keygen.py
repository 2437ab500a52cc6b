from fsw.workflow import run_stage

run_stage(
    snakemake, "keygen", model_in=snakemake.input.model, key_out=snakemake.output.key,
    report_out=snakemake.output.report,
)
