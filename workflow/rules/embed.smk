rule embed:
    input:
        model=source_model,
        key=rules.keygen.output.key,
    output:
        model=MARKED_DIR + "/model.pt",
        metrics=MARKED_DIR + "/metrics.json",
    params:
        overrides=lambda wc: overrides("embed") + [f"seed={wc.seed}"],
        # Not outputs: the per-epoch metrics beside the job's log, and the checkpoint a killed job
        # resumes from, which Snakemake therefore leaves in place when the job fails.
        log_dir=R + "/logs/embed/" + KEY,
        checkpoint_dir=R + "/checkpoints/embed/" + KEY,
    log:
        R + "/logs/embed/" + KEY + ".log",
    benchmark:
        R + "/benchmarks/embed/" + KEY + ".tsv"
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=gpu_request,
    script:
        "../scripts/embed.py"
