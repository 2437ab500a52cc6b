def verification_records(wildcards=None):
    """The baseline records: each marked model, and the unmarked model each key was made from."""
    return grid(VERIFY_DIR + "/marked/none/0.json") + grid(VERIFY_DIR + "/unmarked/{network}/s{seed}.json")


rule report:
    input:
        records=verification_records(),
    output:
        csv=report(R + "/tables/verification.csv", category="Verification", caption="../report/verification.rst"),
        md=R + "/tables/verification.md",
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
