# Removal attacks on each marked model; the attacker never sees the key. Attacked models are kept
# (the largest, a CNN, is ~5 MB) so that re-verifying a key does not redo its attacks.


rule attack:
    input:
        model=rules.embed_key.output.model,
    output:
        model=ATTACKED_DIR + "/model.pt",
        metrics=ATTACKED_DIR + "/metrics.json",
    params:
        overrides=lambda wc: overrides("attack")
        + [f"attack={wc.attack}", f"attack.level={wc.level}", f"seed={wc.seed}"],
    log:
        R + "/logs/attack/{network}/s{seed}/eps{eps}/l{key_size}/{attack}/{level}.log",
    benchmark:
        R + "/benchmarks/attack/{network}/s{seed}/eps{eps}/l{key_size}/{attack}/{level}.tsv"
    wildcard_constraints:
        attack="|".join(ATTACK_LEVELS),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
        # one GPU per job when the run is offered GPUs (--resources gpu=N), none otherwise
        gpu=lambda wc: min(1, workflow.global_resources.get("gpu").value or 0),
    script:
        "../scripts/attack.py"
