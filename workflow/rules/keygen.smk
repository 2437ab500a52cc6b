rule keygen:
    input:
        model=rules.train.output.model,
    output:
        key=KEY_DIR + "/key.pt",
        report=KEY_DIR + "/keygen.json",
    params:
        overrides=lambda wc: overrides("keygen")
        + [f"seed={wc.seed}", f"keygen.eps={wc.eps}", f"keygen.size={wc.key_size}"],
    log:
        R + "/logs/keygen/{network}/s{seed}/eps{eps}/l{key_size}.log",
    benchmark:
        R + "/benchmarks/keygen/{network}/s{seed}/eps{eps}/l{key_size}.tsv"
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/keygen.py"
