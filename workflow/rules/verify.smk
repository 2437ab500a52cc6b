# The marked model must be detected; the unmarked model the key was made from must not.


rule verify_marked:
    input:
        model=rules.embed_key.output.model,
        key=rules.keygen.output.key,
    output:
        record=VERIFY_DIR + "/marked/{attack}/{level}.json",
    params:
        overrides=lambda wc: overrides("verify")
        + ["suspect.kind=marked", f"suspect.attack={wc.attack}", f"suspect.level={wc.level}"],
    log:
        R + "/logs/verify/{network}/s{seed}/eps{eps}/l{key_size}/marked/{attack}/{level}.log",
    benchmark:
        R + "/benchmarks/verify/{network}/s{seed}/eps{eps}/l{key_size}/marked/{attack}/{level}.tsv"
    threads: 1
    script:
        "../scripts/verify.py"


rule verify_unmarked:
    input:
        model=R + "/models/{suspect_network}/s{suspect_seed}/model.pt",
        key=rules.keygen.output.key,
    output:
        record=VERIFY_DIR + "/unmarked/{suspect_network}/s{suspect_seed}.json",
    params:
        overrides=lambda wc: overrides("verify") + ["suspect.kind=unmarked"],
    log:
        R + "/logs/verify/{network}/s{seed}/eps{eps}/l{key_size}/unmarked/{suspect_network}/s{suspect_seed}.log",
    benchmark:
        R + "/benchmarks/verify/{network}/s{seed}/eps{eps}/l{key_size}/unmarked/{suspect_network}/s{suspect_seed}.tsv"
    threads: 1
    script:
        "../scripts/verify.py"
