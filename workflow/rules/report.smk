# Tables and figures of the whole sweep, and what `snakemake --report results/report.html` shows:
# every table (CSV) and figure (PNG) the report rule writes, one category per folder, one caption
# per folder under workflow/report/ (its text chosen per file by the file's name).


rule report:
    input:
        records=verification_records(),
        remote=expand(
            f"{VERIFY_DIR}/remote/{{kind}}.json",
            network=NETWORKS, seed=SEEDS, eps=REMOTE_EPS, key_size=KEY_SIZES, strategy=STRATEGIES,
            kind=["marked", "unmarked"],
        ),
        train=trained([("owner", network, seed) for network in NETWORKS for seed in SEEDS], "metrics.json")
        + trained(sorted(set(SELECTION + CALIBRATION + HELDOUT)), "metrics.json"),
        keygen=grid(rules.keygen.output.report),
        embed=grid(rules.embed.output.metrics),
    output:
        csv=report(f"{R}/tables/verification.csv", category="Verification", caption="../report/verification.rst"),
        md=f"{R}/tables/verification.md",
        detection=report(f"{R}/tables/detection.csv", category="Ownership", caption="../report/detection.rst"),
        roc=report(f"{R}/tables/roc.csv", category="Ownership", caption="../report/roc.rst"),
        plots=reported_folder(f"{R}/plots", "../report/ownership_figures.rst", "Ownership"),
        remote=f"{R}/tables/remote.md",
        remote_csv=report(f"{R}/tables/remote.csv", category="Remote verification", caption="../report/remote.rst"),
        **{
            f"report_{folder}": reported_folder(f"{R}/report/{folder}", f"../report/{folder}.rst", category)
            for folder, category in REPORT_FOLDERS.items()
        },
    params:
        overrides=overrides("report"),
        # read, not declared as input: Snakemake cannot make a benchmark file an input; every
        # benchmarked job but the toy's, this one's and sweep_config's is upstream of this one, so
        # its file exists by now (those three may be from an earlier run, or not there yet)
        benchmarks_dir=BENCHMARKS,
    log:
        f"{LOGS}/report.log",
    benchmark:
        f"{BENCHMARKS}/report.tsv"
    threads: 1
    conda:
        "../../environment.yml"
    script:
        "../scripts/report.py"


rule sweep_config:
    """The grid this sweep ran with, kept beside its results."""
    output:
        report(f"{R}/config.yaml", category="Sweep", caption="../report/config.rst"),
    log:
        f"{LOGS}/sweep_config.log",
    benchmark:
        f"{BENCHMARKS}/sweep_config.tsv"
    run:
        import yaml
        from fsw.io import atomic_write

        atomic_write(output[0], lambda tmp: Path(tmp).write_text(yaml.safe_dump(dict(config), sort_keys=False)))
