# A key per source model, eps, size and strategy (fsw.grid.KEY_STRATEGIES: the ownership schemes
# compared). The strategies that pick items against the selection models (transfer, conferrable) get
# them as inputs; every key ships the answers of the calibration models (its calibration).


rule keygen:
    input:
        model=source_model,
        selection=lambda wc: trained(SELECTION) if KEY_STRATEGIES[wc.strategy].selection else [],
        calibration=trained(CALIBRATION),
    output:
        key=f"{KEY_DIR}/key.pt",
        report=f"{KEY_DIR}/keygen.json",
    params:
        overrides=lambda wc: overrides("keygen")
        + [f"seed={wc.seed}", f"keygen.eps={wc.eps}", f"keygen.size={wc.key_size}", f"keygen.strategy={wc.strategy}"]
        # the keys made for the comparison are kept even where the decision can call nothing marked
        + (["keygen.vacuous=warn"] if KEY_STRATEGIES[wc.strategy].keep_vacuous else []),
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
