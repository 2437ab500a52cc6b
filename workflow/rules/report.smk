# Tables and figures of the whole sweep, and what `snakemake --report results/report.html` shows:
# every table (as HTML: the report shows HTML inline but a CSV only as a download link; the CSV
# beside it is for machines) and figure (PNG) the report rule writes, one category per folder, one
# caption per folder under workflow/report/ (its text chosen per file by the file's name). Every
# entry sits in a subcategory, tables or figures (one left without lands under "Other").


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
        csv=f"{R}/tables/verification.csv",
        html=reported_table(f"{R}/tables/verification.html", "../report/verification.rst", "Verification"),
        md=f"{R}/tables/verification.md",
        detection=f"{R}/tables/detection.csv",
        detection_html=reported_table(f"{R}/tables/detection.html", "../report/detection.rst", "Ownership"),
        roc=f"{R}/tables/roc.csv",
        roc_html=reported_table(f"{R}/tables/roc.html", "../report/roc.rst", "Ownership"),
        schemes=f"{R}/tables/schemes.csv",
        schemes_html=reported_table(f"{R}/tables/schemes.html", "../report/schemes.rst", "Ownership"),
        plots=reported_folder(f"{R}/plots", "../report/ownership_figures.rst", "Ownership"),
        remote=f"{R}/tables/remote.md",
        remote_csv=f"{R}/tables/remote.csv",
        remote_html=reported_table(f"{R}/tables/remote.html", "../report/remote.rst", "Remote verification"),
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
        logs_dir=LOGS,
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
    """The grid this sweep ran with, kept beside its results, and as a page the HTML report shows
    inline (it offers a YAML file only as a download)."""
    output:
        yaml=f"{R}/config.yaml",
        html=report(f"{R}/config.html", category="Sweep", caption="../report/config.rst",
                    subcategory="configuration", labels={"file": "config.yaml"}),
    log:
        f"{LOGS}/sweep_config.log",
    benchmark:
        f"{BENCHMARKS}/sweep_config.tsv"
    conda:
        "../../environment.yml"
    script:
        "../scripts/sweep_config.py"
