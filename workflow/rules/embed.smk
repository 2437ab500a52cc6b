rule embed:
    input:
        model=source_model,
        key=rules.keygen.output.key,
    output:
        model=MARKED_DIR + "/model.pt",
        metrics=MARKED_DIR + "/metrics.json",
    params:
        overrides=lambda wc: overrides("embed") + [f"seed={wc.seed}"],
        # Not an output: the per-epoch metrics, beside the job's log.
        log_dir=R + "/logs/embed/" + KEY,
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
