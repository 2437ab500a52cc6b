# Tables and figures of the whole sweep, and what `snakemake --report results/report.html` shows:
# every table (as HTML: the report shows HTML inline but a CSV only as a download link; the CSV
# beside it is for machines) and figure (PNG) the report rule writes, one category per folder, one
# caption per folder under workflow/report/ (its text chosen per file by the file's name). Every
# entry sits in a subcategory, tables or figures (one left without lands under "Other").


def verification_records(wildcards=None):
    """Every key against its marked model at every attack level and every unmarked model; the keys
    of the extraction eps also against each extracted surrogate."""
    per_key = grid(rules.verify.output.records)
    extracted = [
        path
        for attack, budgets in EXTRACTION_LEVELS.items()
        for path in expand(
            VERIFY_DIR + "/marked/{attack}/{level}.json",
            network=NETWORKS, seed=SEEDS, eps=EXTRACTION_EPS, key_size=KEY_SIZES, strategy=STRATEGIES,
            attack=attack, level=budgets,
        )
    ]
    return per_key + extracted


# results/report/{folder} (written by fsw.report, see CATEGORIES there) -> its category in the HTML report
REPORT_FOLDERS = {
    "training": "Training",
    "keys": "Keys",
    "embedding": "Embedding",
    "attacks": "Attacks",
    "extraction": "Extraction",
    "ownership": "Ownership",
    "paper": "Paper vs fsw",
    "sweep": "Sweep",
}


def file_kind(wildcards):
    """figure or table: which pattern of a reported folder a file matched."""
    return "figure" if "figure" in wildcards.keys() else "table"


def reported_table(path, caption, category):
    """One table in the HTML report: its HTML twin, under `category`, subcategory tables."""
    return report(path, caption=caption, category=category, subcategory="tables",
                  labels={"table": Path(path).stem})


def reported_folder(path, caption, category):
    """A folder of tables and figures in the HTML report: each HTML table and PNG figure (not their
    CSV, Markdown and SVG twins) under `category`, subcategory figures or tables, labelled by its name."""
    return report(
        directory(path),
        patterns=["{figure}.png", "{table}.html"],
        caption=caption,
        category=category,
        subcategory=lambda wildcards: file_kind(wildcards) + "s",
        labels=lambda wildcards: {file_kind(wildcards): getattr(wildcards, file_kind(wildcards))},
    )


rule report:
    input:
        records=verification_records(),
        remote=expand(
            VERIFY_DIR + "/remote/{kind}.json",
            network=NETWORKS, seed=SEEDS, eps=REMOTE_EPS, key_size=KEY_SIZES, strategy=STRATEGIES,
            kind=["marked", "unmarked"],
        ),
        train=trained([("owner", network, seed) for network in NETWORKS for seed in SEEDS], "metrics.json")
        + trained(sorted(set(SELECTION + CALIBRATION + HELDOUT)), "metrics.json"),
        keygen=grid(rules.keygen.output.report),
        embed=grid(rules.embed.output.metrics),
    output:
        csv=R + "/tables/verification.csv",
        html=reported_table(R + "/tables/verification.html", "../report/verification.rst", "Verification"),
        md=R + "/tables/verification.md",
        detection=R + "/tables/detection.csv",
        detection_html=reported_table(R + "/tables/detection.html", "../report/detection.rst", "Ownership"),
        roc=R + "/tables/roc.csv",
        roc_html=reported_table(R + "/tables/roc.html", "../report/roc.rst", "Ownership"),
        plots=reported_folder(R + "/plots", "../report/ownership_figures.rst", "Ownership"),
        remote=R + "/tables/remote.md",
        remote_csv=R + "/tables/remote.csv",
        remote_html=reported_table(R + "/tables/remote.html", "../report/remote.rst", "Remote verification"),
        **{
            f"report_{folder}": reported_folder(f"{R}/report/{folder}", f"../report/{folder}.rst", category)
            for folder, category in REPORT_FOLDERS.items()
        },
    params:
        overrides=overrides("report"),
        report_dir=R + "/report",
        # read, not declared as input: Snakemake cannot make a benchmark file an input; every
        # benchmarked job but the toy's is upstream of this one, so its file exists by now
        benchmarks_dir=R + "/benchmarks",
    log:
        R + "/logs/report.log",
    threads: 1
    script:
        "../scripts/report.py"


rule sweep_config:
    """The grid this sweep ran with, kept beside its results, and as a page the HTML report shows
    inline (it offers a YAML file only as a download)."""
    output:
        yaml=R + "/config.yaml",
        html=report(R + "/config.html", category="Sweep", caption="../report/config.rst",
                    subcategory="configuration", labels={"file": "config.yaml"}),
    log:
        R + "/logs/sweep_config.log",
    run:
        import html

        import yaml
        from fsw.io import write_together
        from fsw.stats.tables import html_page

        text = yaml.safe_dump(dict(config), sort_keys=False)
        write_together({output.yaml: text, output.html: html_page("config.yaml", f"<pre>{html.escape(text)}</pre>")})
