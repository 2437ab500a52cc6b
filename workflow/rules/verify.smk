# The marked model (and its attacked copies) must be detected; the unmarked model the key was made
# from, and every independently trained null model, must not.


def suspect_model(wildcards):
    """The marked model itself for attack `none`, its surrogate for an extraction, else its attacked copy."""
    if wildcards.attack == "none":
        return rules.embed_key.output.model.format(**wildcards)
    if wildcards.attack in EXTRACTION_LEVELS:
        surrogate, _, augment = wildcards.attack.removeprefix("extract_").partition("_")
        return rules.extract.output.model.format(
            **wildcards, surrogate=surrogate, augment=f"_{augment}" if augment else "", budget=wildcards.level
        )
    return rules.attack.output.model.format(**wildcards)


rule verify_marked:
    input:
        model=suspect_model,
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
