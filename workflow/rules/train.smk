# Every model: the key sources (the owner's networks at the sweep's seeds) and the null
# populations, each trained by its network option on its split of MNIST.


rule train:
    output:
        model=MODELS + "/{split}/{network}/s{seed}/model.pt",
        metrics=MODELS + "/{split}/{network}/s{seed}/metrics.json",
    params:
        overrides=lambda wc: overrides("train") + [f"network={wc.network}", f"seed={wc.seed}", f"split={wc.split}"],
        # Not outputs: the per-epoch metrics beside the job's log, and the checkpoint a killed job
        # resumes from, which Snakemake therefore leaves in place when the job fails.
        log_dir=R + "/logs/train/{split}/{network}/s{seed}",
        checkpoint_dir=R + "/checkpoints/train/{split}/{network}/s{seed}",
    log:
        R + "/logs/train/{split}/{network}/s{seed}.log",
    benchmark:
        R + "/benchmarks/train/{split}/{network}/s{seed}.tsv"
    # One thread per job, for every network: on 2 CPU cores two one-thread CNN trainings side by
    # side train ~1.35x the images per second of one two-thread training (measured).
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=lambda wildcards: 60 if wildcards.network.startswith("cnn") else 20,
        gpu=gpu_request,
    script:
        "../scripts/train.py"
