from fsw.workflow import run_stage_many

run_stage_many(
    snakemake,
    "verify",
    [
        (suspect, {"model_in": model, "key_in": snakemake.input.key, "out": record})
        for suspect, model, record in zip(
            snakemake.params.suspects, snakemake.input.models, snakemake.output.records, strict=True
        )
    ],
)
