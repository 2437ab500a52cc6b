# Every key against every model it must or must not detect: the marked model and its attacked
# copies (detected), the unmarked model it was made from, and the three null populations (not
# detected). One job per key: a verification takes about a second, the imports of a job several.


rule verify:
    input:
        key=rules.keygen.output.key,
        models=key_suspects,
    output:
        records=[f"{VERIFY_DIR}/marked/{attack}/{level}.json" for attack, level in ATTACK_POINTS]
        + [f"{VERIFY_DIR}/source.json"] + UNMARKED_RECORDS,
    params:
        overrides=overrides("verify"),
        suspects=[["suspect.kind=marked", f"suspect.population={'marked' if attack == 'none' else 'attacked'}",
                   f"suspect.attack={attack}", f"suspect.level={level}"] for attack, level in ATTACK_POINTS]
        + [["suspect.kind=unmarked", "suspect.population=source"]] + UNMARKED_PARAMS,
    log:
        f"{LOGS}/verify/{KEY}.log",
    benchmark:
        f"{BENCHMARKS}/verify/{KEY}.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../../environment.yml"
    script:
        "../scripts/verify.py"


# Verification through a real label-only HTTP API (`fsw serve` on a free loopback port, stopped when
# the job ends, even on failure), on the keys of the eps chosen in the config's `remote` section.


rule verify_remote:
    input:
        model=served_model,
        key=rules.keygen.output.key,
    output:
        record=f"{VERIFY_DIR}/remote/{{kind}}.json",
    params:
        overrides=lambda wc: overrides("verify")
        + [f"suspect.kind={wc.kind}", f"suspect.population={'marked' if wc.kind == 'marked' else 'source'}", "remote.decoys=1.0"],
    log:
        run=f"{LOGS}/verify_remote/{KEY}/{{kind}}.log",
        server=f"{LOGS}/verify_remote/{KEY}/{{kind}}.serve.log",
    benchmark:
        f"{BENCHMARKS}/verify_remote/{KEY}/{{kind}}.tsv"
    wildcard_constraints:
        kind="marked|unmarked",
    # One core: the server (one torch thread) waits while the client sends a request or trains,
    # and the client waits while the server answers: together they keep less than one core busy
    # (measured: mean_load 43-91% in the benchmark files of the default sweep).
    threads: 1
    resources:
        mem_mb=3000,
        runtime=10,
    conda:
        "../../environment.yml"
    script:
        "../scripts/verify_remote.py"
