from fsw.workflow import run_stage_many

run_stage_many(
    snakemake,
    "attack",
    [
        (point, {"model_in": snakemake.input.model, "model_out": model, "metrics_out": metrics})
        for point, model, metrics in zip(
            snakemake.params.points, snakemake.output.models, snakemake.output.metrics, strict=True
        )
    ],
)
