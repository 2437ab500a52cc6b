# A key per source model, eps, size and strategy. The transfer strategy selects its items against
# the selection models; every key ships the answers of the calibration models (its calibration).


rule keygen:
    input:
        model=source_model,
        selection=lambda wc: trained(SELECTION) if wc.strategy == "transfer" else [],
        calibration=trained(CALIBRATION),
    output:
        key=f"{KEY_DIR}/key.pt",
        report=f"{KEY_DIR}/keygen.json",
    params:
        overrides=lambda wc: overrides("keygen")
        + [f"seed={wc.seed}", f"keygen.eps={wc.eps}", f"keygen.size={wc.key_size}", f"keygen.strategy={wc.strategy}"]
        # the paper's keys are made for the comparison even where the decision can call nothing marked
        + (["keygen.vacuous=warn"] if wc.strategy == "paper" else []),
    log:
        f"{LOGS}/keygen/{KEY}.log",
    benchmark:
        f"{BENCHMARKS}/keygen/{KEY}.tsv"
    threads: 1
    priority: chain_priority
    resources:
        mem_mb=3000,
        runtime=20,
    conda:
        "../../environment.yml"
    script:
        "../scripts/keygen.py"
