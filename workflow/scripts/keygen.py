from fsw.workflow import run_stage

run_stage(
    snakemake, "keygen", model_in=snakemake.input.model, selection_in=list(snakemake.input.selection),
    calibration_in=list(snakemake.input.calibration), key_out=snakemake.output.key,
    report_out=snakemake.output.report,
)
