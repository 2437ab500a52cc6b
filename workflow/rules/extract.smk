# Verification through a real label-only HTTP API, and model extraction through it, on the keys of
# the eps chosen in the config's `remote` and `extraction` sections. Each job serves its model with
# `fsw serve` on a free loopback port and stops the server when it ends, even on failure.


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


rule extract:
    input:
        model=rules.embed.output.model,
    output:
        model=temp(EXTRACTED_DIR + "/model.pt"),
        metrics=EXTRACTED_DIR + "/metrics.json",
    params:
        overrides=lambda wc: overrides("extract")
        + [
            f"seed={wc.seed}",
            f"network={wc.surrogate}",
            f"budget={wc.budget}",
            f"augment_rounds={int(wc.augment == '_fgsm')}",
        ],
    log:
        run=R + "/logs/extract/{network}/s{seed}/eps{eps}/l{key_size}/extract_{surrogate}{augment}/{budget}.log",
        server=R + "/logs/extract/{network}/s{seed}/eps{eps}/l{key_size}/extract_{surrogate}{augment}/{budget}.serve.log",
    benchmark:
        R + "/benchmarks/extract/{network}/s{seed}/eps{eps}/l{key_size}/extract_{surrogate}{augment}/{budget}.tsv"
    wildcard_constraints:
        surrogate="mlp|cnn|irnn",
        augment="|_fgsm",
        budget=r"\d+",
    threads: 1  # one core for the server and its client, as verify_remote
    resources:
        mem_mb=3000,
        runtime=30,
        # one GPU per job when the run is offered GPUs (--resources gpu=N), none otherwise
        gpu=lambda wc: min(1, workflow.global_resources.get("gpu").value or 0),
    script:
        "../scripts/extract.py"


rule verify_extracted:
    input:
        model=rules.extract.output.model,
        key=rules.keygen.output.key,
    output:
        record=VERIFY_DIR + "/marked/extract_{surrogate}{augment}/{budget}.json",
    params:
        overrides=lambda wc: overrides("verify")
        + ["suspect.kind=marked", f"suspect.attack=extract_{wc.surrogate}{wc.augment}", f"suspect.level={wc.budget}"],
    log:
        R + "/logs/verify_extracted/{network}/s{seed}/eps{eps}/l{key_size}/extract_{surrogate}{augment}/{budget}.log",
    benchmark:
        R + "/benchmarks/verify_extracted/{network}/s{seed}/eps{eps}/l{key_size}/extract_{surrogate}{augment}/{budget}.tsv"
    wildcard_constraints:
        surrogate="mlp|cnn|irnn",
        augment="|_fgsm",
        budget=r"\d+",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/verify_extracted.py"
