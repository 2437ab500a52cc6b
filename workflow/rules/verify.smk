# Every key against every model it must or must not detect: the marked model and its attacked
# copies (detected), the unmarked model it was made from, and the three null populations (not
# detected). One job per key: a verification takes about a second, the imports of a job several.


def unmarked_suspects(wildcards):
    """(population, split, network, seed) of every unmarked model a key is checked against."""
    source = [("source", "owner", wildcards.network, int(wildcards.seed))]
    return source + [(name, *model) for name, models in NULL_POPULATIONS.items() for model in models]


def key_suspects(wildcards):
    """The models one key is checked against, in the order of the verify rule's records: the marked
    model under each attack (attack `none`: the marked model itself), then every unmarked model."""
    marked = [
        rules.embed.output.model.format(**wildcards)
        if attack == "none"
        else attacked("model.pt", attack, level).format(**wildcards)
        for attack, level in ATTACK_POINTS
    ]
    unmarked = [MODELS + f"/{split}/{network}/s{seed}/model.pt" for _, split, network, seed in unmarked_suspects(wildcards)]
    return marked + unmarked


def unmarked_record(population, split, network, seed):
    return VERIFY_DIR + f"/{population}/{split}/{network}/s{seed}.json"


UNMARKED_RECORDS = [unmarked_record(name, *model) for name, models in NULL_POPULATIONS.items() for model in models]
UNMARKED_PARAMS = [["suspect.kind=unmarked", f"suspect.population={name}"] for name, models in NULL_POPULATIONS.items() for _ in models]


rule verify:
    input:
        key=rules.keygen.output.key,
        models=key_suspects,
    output:
        records=[VERIFY_DIR + f"/marked/{attack}/{level}.json" for attack, level in ATTACK_POINTS]
        + [VERIFY_DIR + "/source.json"] + UNMARKED_RECORDS,
    params:
        overrides=overrides("verify"),
        suspects=[["suspect.kind=marked", f"suspect.population={'marked' if attack == 'none' else 'attacked'}",
                   f"suspect.attack={attack}", f"suspect.level={level}"] for attack, level in ATTACK_POINTS]
        + [["suspect.kind=unmarked", "suspect.population=source"]] + UNMARKED_PARAMS,
    log:
        R + "/logs/verify/" + KEY + ".log",
    benchmark:
        R + "/benchmarks/verify/" + KEY + ".tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        "../scripts/verify.py"


# Verification through a real label-only HTTP API (`fsw serve` on a free loopback port, stopped when
# the job ends, even on failure), on the keys of the eps chosen in the config's `remote` section.


def served_model(wildcards):
    """The marked model, or the unmarked model its key was made from."""
    if wildcards.kind == "marked":
        return rules.embed.output.model.format(**wildcards)
    return source_model(wildcards)


rule verify_remote:
    input:
        model=served_model,
        key=rules.keygen.output.key,
    output:
        record=VERIFY_DIR + "/remote/{kind}.json",
    params:
        overrides=lambda wc: overrides("verify")
        + [f"suspect.kind={wc.kind}", f"suspect.population={'marked' if wc.kind == 'marked' else 'source'}", "remote.decoys=1.0"],
    log:
        run=R + "/logs/verify_remote/" + KEY + "/{kind}.log",
        server=R + "/logs/verify_remote/" + KEY + "/{kind}.serve.log",
    benchmark:
        R + "/benchmarks/verify_remote/" + KEY + "/{kind}.tsv"
    wildcard_constraints:
        kind="marked|unmarked",
    # One core: the server (one torch thread) waits while the client sends a request or trains,
    # and the client waits while the server answers: together they keep less than one core busy
    # (measured: mean_load 43-91% in the benchmark files of the default sweep).
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    script:
        "../scripts/verify_remote.py"
