rule embed:
    input:
        model=source_model,
        key=rules.keygen.output.key,
    output:
        model=f"{MARKED_DIR}/model.pt",
        metrics=f"{MARKED_DIR}/metrics.json",
    params:
        overrides=lambda wc: overrides("embed") + [f"seed={wc.seed}"],
        # Not outputs: the per-epoch metrics beside the job's log, and the checkpoint a killed job
        # resumes from, which Snakemake therefore leaves in place when the job fails.
        log_dir=f"{LOGS}/embed/{KEY}",
        checkpoint_dir=f"{CHECKPOINTS}/embed/{KEY}",
    log:
        f"{LOGS}/embed/{KEY}.log",
    benchmark:
        f"{BENCHMARKS}/embed/{KEY}.tsv"
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=30,
        # a fingerprinting scheme's "embedding" copies the source and trains nothing
        gpu=lambda wc: TRAINING_GPUS if KEY_STRATEGIES[wc.strategy].embeds else 0,
    conda:
        "../../environment.yml"
    script:
        "../scripts/embed.py"
