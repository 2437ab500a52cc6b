# Removal attacks on each marked model; the attacker never sees the key. One job per marked model
# runs every attack point of the sweep: most attacks take well under a second, the imports and data
# loading of a job several (and Lightning's five more for the fine-tuning ones). Attacked models are
# kept (the largest, a CNN, is ~5 MB) so that re-verifying a key does not redo its attacks.


rule attack:
    input:
        model=rules.embed.output.model,
    output:
        models=[attacked("model.pt", attack, level) for attack, level in REMOVAL_POINTS],
        metrics=[attacked("metrics.json", attack, level) for attack, level in REMOVAL_POINTS],
    params:
        overrides=lambda wc: overrides("attack") + [f"seed={wc.seed}"],
        points=[[f"attack={attack}", f"attack.level={level}"] for attack, level in REMOVAL_POINTS],
    log:
        f"{LOGS}/attack/{KEY}.log",
    benchmark:
        f"{BENCHMARKS}/attack/{KEY}.tsv"
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=TRAINING_GPUS,
    conda:
        "../../environment.yml"
    script:
        "../scripts/attack.py"
