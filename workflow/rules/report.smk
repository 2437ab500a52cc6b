def verification_records(wildcards=None):
    """Every key against its marked model at every attack level and every unmarked model; the keys
    of the extraction eps also against each extracted surrogate."""
    per_key = grid(rules.verify.output.records)
    extracted = [
        path
        for attack, budgets in EXTRACTION_LEVELS.items()
        for path in expand(
            VERIFY_DIR + "/marked/{attack}/{level}.json",
            network=NETWORKS, seed=SEEDS, eps=EXTRACTION_EPS, key_size=KEY_SIZES, attack=attack, level=budgets,
        )
    ]
    return per_key + extracted


rule report:
    input:
        records=verification_records(),
        remote=expand(
            VERIFY_DIR + "/remote/{kind}.json",
            network=NETWORKS, seed=SEEDS, eps=REMOTE_EPS, key_size=KEY_SIZES, kind=["marked", "unmarked"],
        ),
    output:
        csv=report(R + "/tables/verification.csv", category="Verification", caption="../report/verification.rst"),
        md=R + "/tables/verification.md",
        false_positives=directory(R + "/tables/false_positives"),
        plots=directory(R + "/plots"),
        remote=R + "/tables/remote.md",
    params:
        overrides=overrides("report"),
    log:
        R + "/logs/report.log",
    threads: 1
    script:
        "../scripts/report.py"


rule sweep_config:
    """The grid this sweep ran with, kept beside its results."""
    output:
        R + "/config.yaml",
    log:
        R + "/logs/sweep_config.log",
    run:
        import yaml
        from fsw.io import atomic_write

        atomic_write(output[0], lambda tmp: Path(tmp).write_text(yaml.safe_dump(dict(config), sort_keys=False)))
