rule embed:
    input:
        model=rules.train.output.model,
        key=rules.keygen.output.key,
    output:
        model=MARKED_DIR + "/model.pt",
        metrics=MARKED_DIR + "/metrics.json",
    params:
        overrides=lambda wc: overrides("embed") + [f"seed={wc.seed}"],
    log:
        R + "/logs/embed/{network}/s{seed}/eps{eps}/l{key_size}.log",
    benchmark:
        R + "/benchmarks/embed/{network}/s{seed}/eps{eps}/l{key_size}.tsv"
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=30,
        # one GPU per job when the run is offered GPUs (--resources gpu=N), none otherwise
        gpu=lambda wc: min(1, workflow.global_resources.get("gpu").value or 0),
    script:
        "../scripts/embed.py"
