# Every model: the key sources (the owner's networks at the sweep's seeds) and the null
# populations, each trained by its network option on its split of MNIST.
TRAINED_MODEL = "{split}/{network}/s{seed}"  # one model: its split, network option and seed


rule train:
    output:
        model=f"{MODELS}/{TRAINED_MODEL}/model.pt",
        metrics=f"{MODELS}/{TRAINED_MODEL}/metrics.json",
    params:
        overrides=lambda wc: overrides("train") + [f"network={wc.network}", f"seed={wc.seed}", f"split={wc.split}"],
        # Not outputs: the per-epoch metrics beside the job's log, and the checkpoint a killed job
        # resumes from, which Snakemake therefore leaves in place when the job fails.
        log_dir=f"{LOGS}/train/{TRAINED_MODEL}",
        checkpoint_dir=f"{CHECKPOINTS}/train/{TRAINED_MODEL}",
    log:
        f"{LOGS}/train/{TRAINED_MODEL}.log",
    benchmark:
        f"{BENCHMARKS}/train/{TRAINED_MODEL}.tsv"
    # One thread per job, for every network: on 2 CPU cores two one-thread CNN trainings side by
    # side train ~1.35x the images per second of one two-thread training (measured).
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=lambda wildcards: 60 if wildcards.network.startswith("cnn") else 20,
        gpu=TRAINING_GPUS,
    conda:
        "../../environment.yml"
    script:
        "../scripts/train.py"
