def verification_records(wildcards=None):
    """Every key against its marked model at every attack level, and against every unmarked model."""
    marked = [
        path
        for attack, levels in {**ATTACK_LEVELS, **EXTRACTION_LEVELS}.items()
        for path in grid(VERIFY_DIR + "/marked/{attack}/{level}.json", attack=attack, level=levels)
    ]
    unmarked = [
        path
        for suspect_network, suspect_seed in SUSPECTS
        for path in grid(
            VERIFY_DIR + "/unmarked/{suspect_network}/s{suspect_seed}.json",
            suspect_network=suspect_network,
            suspect_seed=suspect_seed,
        )
    ]
    return marked + unmarked


rule report:
    input:
        records=verification_records(),
        remote=grid(VERIFY_DIR + "/remote/{kind}.json", kind=["marked", "unmarked"]),
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
