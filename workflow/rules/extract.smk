# Model extraction through the label-only HTTP API, on the keys of the eps chosen in the config's
# `extraction` section, and the verification of each surrogate. Each extraction job serves the
# marked model with `fsw serve` on a free loopback port and stops the server when it ends, even on
# failure.

EXTRACTION_RUN = f"{KEY}/extract_{{surrogate}}{{augment}}/{{budget}}"  # one surrogate of one key


rule extract:
    input:
        model=rules.embed.output.model,
    output:
        model=temp(f"{EXTRACTED_DIR}/model.pt"),
        metrics=f"{EXTRACTED_DIR}/metrics.json",
    params:
        overrides=lambda wc: overrides("extract")
        + [
            f"seed={wc.seed}",
            f"network={wc.surrogate}",
            f"budget={wc.budget}",
            f"augment_rounds={int(wc.augment == '_fgsm')}",
        ],
    log:
        run=f"{LOGS}/extract/{EXTRACTION_RUN}.log",
        server=f"{LOGS}/extract/{EXTRACTION_RUN}.serve.log",
    benchmark:
        f"{BENCHMARKS}/extract/{EXTRACTION_RUN}.tsv"
    wildcard_constraints:
        augment="|_fgsm",
        budget=r"\d+",
    threads: 1  # one core for the server and its client, as verify_remote
    resources:
        mem_mb=3000,
        runtime=30,
        gpu=TRAINING_GPUS,
    conda:
        "../../environment.yml"
    script:
        "../scripts/extract.py"


rule verify_extracted:
    input:
        model=rules.extract.output.model,
        key=rules.keygen.output.key,
    output:
        record=f"{VERIFY_DIR}/marked/extract_{{surrogate}}{{augment}}/{{budget}}.json",
    params:
        overrides=lambda wc: overrides("verify")
        + ["suspect.kind=marked", "suspect.population=extracted", f"suspect.attack=extract_{wc.surrogate}{wc.augment}",
           f"suspect.level={wc.budget}"],
    log:
        f"{LOGS}/verify_extracted/{EXTRACTION_RUN}.log",
    benchmark:
        f"{BENCHMARKS}/verify_extracted/{EXTRACTION_RUN}.tsv"
    wildcard_constraints:
        augment="|_fgsm",
        budget=r"\d+",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../../environment.yml"
    script:
        "../scripts/verify_extracted.py"
