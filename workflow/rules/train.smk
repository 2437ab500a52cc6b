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
    # Two one-thread jobs train more images per second than one two-thread job, except the CNN's.
    threads: lambda wildcards: 2 if wildcards.network == "cnn" else 1
    script:
        "../scripts/train.py"
