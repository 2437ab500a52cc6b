# The marked model (and its attacked copies) must be detected; the unmarked model the key was made
# from, and every independently trained null model, must not. One job per key verifies it against
# all of them: a verification takes about a second, the imports of a job several.

def key_suspects(wildcards):
    """The models one key is checked against, in the order of the verify rule's records: the marked
    model under each attack (attack `none`: the marked model itself), then every unmarked model."""
    marked = [
        rules.embed.output.model.format(**wildcards)
        if attack == "none"
        else attacked("model.pt", attack, level).format(**wildcards)
        for attack, level in ATTACK_POINTS
    ]
    unmarked = [rules.train.output.model.format(network=network, seed=seed) for network, seed in SUSPECTS]
    return marked + unmarked


rule verify:
    input:
        key=rules.keygen.output.key,
        models=key_suspects,
    output:
        records=[VERIFY_DIR + f"/marked/{attack}/{level}.json" for attack, level in ATTACK_POINTS]
        + [VERIFY_DIR + f"/unmarked/{network}/s{seed}.json" for network, seed in SUSPECTS],
    params:
        overrides=overrides("verify"),
        suspects=[["suspect.kind=marked", f"suspect.attack={attack}", f"suspect.level={level}"] for attack, level in ATTACK_POINTS]
        + [["suspect.kind=unmarked"] for _ in SUSPECTS],
    log:
        R + "/logs/verify/{network}/s{seed}/eps{eps}/l{key_size}.log",
    benchmark:
        R + "/benchmarks/verify/{network}/s{seed}/eps{eps}/l{key_size}.tsv"
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
    return rules.train.output.model.format(**wildcards)


rule verify_remote:
    input:
        model=served_model,
        key=rules.keygen.output.key,
    output:
        record=VERIFY_DIR + "/remote/{kind}.json",
    params:
        overrides=lambda wc: overrides("verify") + [f"suspect.kind={wc.kind}", "remote.decoys=1.0"],
    log:
        run=R + "/logs/verify_remote/{network}/s{seed}/eps{eps}/l{key_size}/{kind}.log",
        server=R + "/logs/verify_remote/{network}/s{seed}/eps{eps}/l{key_size}/{kind}.serve.log",
    benchmark:
        R + "/benchmarks/verify_remote/{network}/s{seed}/eps{eps}/l{key_size}/{kind}.tsv"
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
