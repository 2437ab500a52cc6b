rule train:
    output:
        model=R + "/models/{network}/s{seed}/model.pt",
        metrics=R + "/models/{network}/s{seed}/metrics.json",
    params:
        overrides=lambda wc: overrides("train") + [f"network={wc.network}", f"seed={wc.seed}"],
    log:
        R + "/logs/train/{network}/s{seed}.log",
    benchmark:
        R + "/benchmarks/train/{network}/s{seed}.tsv"
    threads: 2
    script:
        "../scripts/train.py"
