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
        gpu=gpu_request,
    script:
        "../scripts/embed.py"
