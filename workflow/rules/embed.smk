rule embed:
    input:
        model=source_model,
        key=rules.keygen.output.key,
    output:
        model=f"{MARKED_DIR}/model.pt",
        metrics=f"{MARKED_DIR}/metrics.json",
    params:
        overrides=lambda wc: overrides("embed") + [f"seed={wc.seed}"],
    log:
        f"{LOGS}/embed/{KEY}.log",
    benchmark:
        f"{BENCHMARKS}/embed/{KEY}.tsv"
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=30,
        gpu=TRAINING_GPUS,
    conda:
        "../../environment.yml"
    script:
        "../scripts/embed.py"
