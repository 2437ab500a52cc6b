# Removal attacks on each marked model; the attacker never sees the key. One job per marked model
# runs every attack point of the sweep: most attacks take well under a second, the imports and data
# loading of a job several (and Lightning's five more for the fine-tuning ones). Attacked models are
# kept (the largest, a CNN, is ~5 MB) so that re-verifying a key does not redo its attacks.

ATTACK_POINTS = [(attack, level) for attack, levels in ATTACK_LEVELS.items() for level in levels]
REMOVAL_POINTS = [(attack, level) for attack, level in ATTACK_POINTS if attack != "none"]


def attacked(name, attack, level):
    """The path of one attacked model's file (`model` or `metrics`), key wildcards left open."""
    return ATTACKED_DIR.replace("{attack}", attack).replace("{level}", level) + f"/{name}"


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
        R + "/logs/attack/" + KEY + ".log",
    benchmark:
        R + "/benchmarks/attack/" + KEY + ".tsv"
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=2000,
        runtime=60,
        gpu=gpu_request,
    script:
        "../scripts/attack.py"
