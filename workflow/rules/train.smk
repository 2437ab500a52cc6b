rule train:
    output:
        model=MODELS + "/{network}/s{seed}/model.pt",
        metrics=MODELS + "/{network}/s{seed}/metrics.json",
    params:
        overrides=lambda wc: overrides("train") + [f"network={wc.network}", f"seed={wc.seed}"],
    log:
        R + "/logs/train/{network}/s{seed}.log",
    benchmark:
        R + "/benchmarks/train/{network}/s{seed}.tsv"
    # One thread per job, for every network: on 2 CPU cores two one-thread CNN trainings side by
    # side train ~1.35x the images per second of one two-thread training (measured).
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=lambda wildcards: 60 if wildcards.network == "cnn" else 20,
        gpu=gpu_request,
    script:
        "../scripts/train.py"
