"""Write the results of a sweep into the README's results section (short) and docs/results.md (every table).

    python tools/readme.py [--results results] [--readme README.md] [--document docs/results.md]

Both are functions of the files under --results (and the benchmark results under docs/benchmarks):
the same files give the same text. The figures they link are copied into docs/results/ (results/
is not committed), so that the links work in any clone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import pandas as pd
import yaml

from fsw.io import atomic_write
from fsw.report.attacks import extraction_verdict
from fsw.report.sweep import benchmark_jobs

START, END = "<!-- results:start -->", "<!-- results:end -->"
SPEED_START, SPEED_END = "<!-- speed:start -->", "<!-- speed:end -->"
POPULATIONS = ["marked", "attacked", "extracted", "calibration_null", "heldout_null"]


def sweep_wall_time(jobs: pd.DataFrame) -> float:
    """From the first benchmarked job's start to the last one's end (unbenchmarked jobs are short)."""
    return float(jobs.finished.max() - (jobs.finished - jobs.s).min())


def table(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    return (frame if columns is None else frame[columns]).to_markdown(index=False, floatfmt=".4g")


def rate_text(row) -> str:
    return f"{row.detected}/{row.n} = {row.rate:.1%} [{row.ci_low:.1%}, {row.ci_high:.1%}]"


def headline(results: Path) -> pd.DataFrame:
    """The recommended strategy and rule, and the paper's rule on the paper's keys, pooled over the
    grid: one row each, one column per population, 'k/n = rate [95% interval]'."""
    pooled = pd.read_csv(results / "tables" / "detection_pooled.csv")
    recommended = pooled[pooled.recommended]
    paper = pooled[(pooled.strategy == "paper") & (pooled.rule == "paper_binomial")]
    rows = []
    for label, part in (("recommended: " + recommended.strategy.iloc[0] + " keys, " + recommended.rule.iloc[0],
                         recommended), ("the paper's: paper keys, paper_binomial", paper)):
        if part.empty:
            continue
        cells = {row.population: rate_text(row) for row in part.itertuples()}
        rows.append({"setup": label, **{p: cells.get(p, "") for p in POPULATIONS if p in set(pooled.population)}})
    return pd.DataFrame(rows)


def goal_table(results: Path) -> pd.DataFrame:
    """Per network and eps, the recommended setup's rates against the goals: held-out FPR <= z,
    marked TPR >= 0.95, useful attacked >= 0.80; extracted measured."""
    detection = pd.read_csv(results / "tables" / "detection.csv")
    rows = []
    for (network, eps), part in detection[detection.recommended].groupby(["network", "eps"], sort=True):
        cells = {row.population: rate_text(row) for row in part.itertuples()}
        rows.append({"network": network, "eps": eps, **{p: cells.get(p, "") for p in
                                                        ("heldout_null", "marked", "attacked", "extracted")}})
    return pd.DataFrame(rows)


def machine_line(results: Path, jobs: pd.DataFrame) -> str:
    machine = pd.read_csv(results / "report" / "sweep" / "machine.csv").iloc[0]
    flags = machine.get("cpu_flags", "")
    return (f"{sweep_wall_time(jobs) / 60:.1f} minutes from the first job's start to the last one's end on "
            f"{machine.cpus} cores of an {machine.get('cpu_model', 'unknown CPU')} ({flags}), no GPU; the "
            f"jobs used {jobs.cpu_s.sum() / 60:.1f} CPU-minutes")


def figures(results: Path) -> list[Path]:
    """The PNGs the document shows, in its order, where they exist."""
    report, plots = results / "report", results / "plots"
    candidates = [plots / "detection.png", plots / "roc_curves.png", plots / "rules_compared.png",
                  plots / "fpr_by_family.png", plots / "null_key_accuracy.png",
                  results / "figure1" / "figure1_frontier.png", report / "embedding" / "accuracy_drop.png",
                  report / "ownership" / "key_errors.png", *sorted((report / "attacks").glob("robustness_*.png")),
                  report / "extraction" / "extraction_curves.png", *key_size_plots(results / "keysizes")]
    return [path for path in candidates if path.is_file()]


def published(source: Path, figure_dir: Path) -> Path:
    """Where publish_figures puts a figure: the key-size sweep's under a prefix, every other by name."""
    prefix = "keysizes_" if "keysizes" in source.parts else ""
    return figure_dir / f"{prefix}{source.name}"


def publish_figures(results: Path, figure_dir: Path) -> list[Path]:
    """Copy the figures into figure_dir, replacing the figures of an earlier run there."""
    sources = figures(results)
    names = [published(source, figure_dir).name for source in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"two figures share a file name in {names}")
    figure_dir.mkdir(parents=True, exist_ok=True)
    for stale in figure_dir.glob("*.png"):
        if stale.name not in names:
            stale.unlink()
    for source in sources:
        atomic_write(published(source, figure_dir), lambda tmp, source=source: shutil.copyfile(source, tmp))
    return [published(source, figure_dir) for source in sources]


def figure_links(sources: list[Path], figure_dir: Path, link_base: Path) -> list[str]:
    """Markdown images of the published copies, paths relative to the page's folder."""
    links = [Path(os.path.relpath(published(source, figure_dir), link_base)).as_posix() for source in sources]
    return [f"![{source.stem}]({link})" for source, link in zip(sources, links)]


def results_section(results: Path, link_base: Path = Path("."), figure_dir: Path | None = None,
                    document: str = "docs/results.md") -> str:
    """The README's results section: where the numbers come from, the headline, the goals per
    network and eps, two figures; everything else is in the document."""
    figure_dir = figure_dir or link_base / "docs" / "results"
    jobs = benchmark_jobs(results / "benchmarks", results / "logs")
    shown = [path for path in figures(results) if path.name in ("detection.png", "roc_curves.png")]
    lines = [
        START, "## Results", "",
        (f"Generated by `make readme` from `{results}/` (the sweep of `{results}/config.yaml`): "
         f"{machine_line(results, jobs)}. Every table of the run is in [{document}]({document}); "
         f"`snakemake --report {results}/report.html` renders them all."), "",
        ("Share of models called marked, pooled over networks, ε and key sizes, with exact 95% "
         "intervals. Held-out models were never used to select a key or fit a decision."), "",
        table(headline(results)), "",
        "The recommended setup per network and ε:", "",
        table(goal_table(results)), "",
        "\n\n".join(figure_links(shown, figure_dir, link_base)),
        END,
    ]
    return "\n".join(lines)


def commits(records: Path) -> list[str]:
    """The git commits (short) that made a sweep's verification records."""
    frame = pd.read_csv(records)
    return sorted({str(commit)[:7] for commit in frame.get("git_commit", pd.Series(dtype=str)).dropna()}) or ["unknown"]


def results_document(results: Path, link_base: Path, figure_dir: Path, benchmarks: Path) -> str:
    """docs/results.md: every table of the run, the speed benchmarks (their result files in
    `benchmarks`), then every figure; figure links relative to link_base, the document's folder."""
    config = yaml.safe_load((results / "config.yaml").read_text())
    report, tables = results / "report", results / "tables"
    jobs = benchmark_jobs(results / "benchmarks", results / "logs")

    def read(path: Path, **kwargs) -> pd.DataFrame:
        return pd.read_csv(path, **kwargs)

    detection = read(tables / "detection.csv")
    recommended_rule = detection[detection.recommended].rule.iloc[0]
    shown_rules = ["paper_binomial", recommended_rule]
    training = read(report / "training" / "training.csv")
    accuracy = (training.groupby(["population", "network", "split"]).test_acc
                .agg(models="count", test_acc_mean="mean", test_acc_min="min", test_acc_max="max").round(4).reset_index())
    extraction = read(report / "extraction" / "extraction.csv")
    lines = [
        "# Results of the sweep", "",
        (f"Generated by `make readme` from `{results}/`; {machine_line(results, jobs)}. Its records were made "
         f"by fsw at commit {', '.join(commits(tables / 'verification.csv'))}. Grid: networks "
         f"{config['networks']}, seeds {config['seeds']}, ε {config['eps']}, key sizes {config['key_sizes']}, "
         f"strategies {config['strategies']}."), "",
        "## Paper vs fsw", "",
        table(read(report / "paper" / "paper_vs_fsw.csv").fillna(""), ["claim", "paper", "fsw", "verdict", "explanation"]),
        "", "## Trained models", "", "Test accuracy per population, network option and training split:", "",
        table(accuracy), "",
        "## Keys", "",
        ("`reference_matches_mean`: how many of the key's items the calibration models answer with its "
         "labels, on average; `threshold`: the decision's θ (marked iff errors < θ; 0 = the key proves nothing)."), "",
        table(read(report / "keys" / "keygen.csv")), "",
        "## Embedding", "", table(read(report / "embedding" / "embedding.csv")), "",
        "## Detection", "",
        (f"The paper's rule and the recommended one ({recommended_rule}) per key setting and population "
         "(`tables/detection.csv` has every rule)."), "",
        table(detection[detection.rule.isin(shown_rules)]), "",
        "Every rule pooled over the grid:", "", table(read(tables / "detection_pooled.csv")), "",
        "## ROC against the held-out models", "", table(read(tables / "roc.csv")), "",
        "## False positives per held-out family", "",
        table(read(tables / "fpr_by_family.csv").query("rule in @shown_rules")), "",
        "## Held-out models against the paper's fair coin", "", table(read(tables / "null_accuracy.csv")), "",
        "## Removal attacks", "",
        table(read(report / "attacks" / "mark_lost.csv", dtype=str)), "",
        "## Extraction", "", extraction_verdict(extraction), "", table(extraction), "",
        "## Runtime per rule", "", table(read(report / "sweep" / "runtime.csv")),
        *key_size_section(results / "keysizes"),
        *speed_benchmarks(benchmarks),
        "", "## Figures", "", "\n\n".join(figure_links(figures(results), figure_dir, link_base)), "",
    ]
    return "\n".join(lines)


def key_size_plots(results: Path) -> list[Path]:
    """The key-size sweep's detection figure, when it has been run."""
    return [path for path in (results / "plots" / "detection.png",) if path.is_file()]


def key_size_section(results: Path) -> list[str]:
    """The key-size sweep (config/keysizes.yaml), when it has been run: the paper's rule and the
    recommended one against the key size."""
    path = results / "tables" / "detection.csv"
    if not path.is_file():
        return []
    detection = pd.read_csv(path)
    recommended = detection[detection.recommended].rule.iloc[0] if detection.recommended.any() else None
    shown = detection[detection.rule.isin(["paper_binomial", recommended])]
    return ["", "## Key size", "",
            (f"From `{results}/` (`snakemake --configfile config/keysizes.yaml`): every key size against the "
             "same populations."), "",
            table(shown.sort_values(["network", "eps", "strategy", "rule", "population", "key_size"]))]


def cpu_results(folder: Path) -> list[dict]:
    """Every CPU's benchmark file (benchmarks/record.py) in folder, by CPU model."""
    return [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]


def speed_summary(folder: Path) -> pd.DataFrame:
    """One row per CPU measured: the sweep's wall time, the CNN epoch against its FLOP bound, the
    share of the jobs' time spent starting them, the HTTP API's latency; each with its date."""
    rows = []
    for measured in cpu_results(folder):
        sweep, http = measured.get("sweep", {}), measured.get("http", {})
        epoch, run = sweep.get("cnn_epoch", {}), sweep.get("sweep", {})
        rows.append({"cpu": measured["cpu_model"], "flags": measured["cpu_flags"],
                     "measured": sweep.get("date", ""), "sweep_wall_min": run.get("wall_min"),
                     "cnn_epoch_s": epoch.get("measured_s"), "flop_bound_s": epoch.get("flop_bound_s"),
                     "epoch_over_bound": epoch.get("ratio"), "job_start_share": run.get("fixed_cost_share"),
                     "http_p50_ms": http.get("predict_one_image", {}).get("p50_ms"), "note": run.get("note", "")})
    return pd.DataFrame(rows)


def speed_benchmarks(folder: Path) -> list[str]:
    """The on-demand speed benchmarks (benchmarks/*.py), one section per CPU file in folder."""
    lines = []
    for measured in cpu_results(folder):
        lines += ["", f"### {measured['cpu_model']} ({measured['cpu_flags']}, {measured['cpus']} CPUs)",
                  *cpu_benchmarks(measured)]
    return ["", "## Speed benchmarks", *lines] if lines else []


def cpu_benchmarks(measured: dict) -> list[str]:
    lines = []
    dated = {name: f" (measured {part['date']}, commit {part.get('commit')})" for name, part in measured.items()
             if isinstance(part, dict) and "date" in part}
    if "sweep" in measured:
        sweep = measured["sweep"]
        epoch = sweep["cnn_epoch"]
        lines += ["", (f"`benchmarks/bench_sweep.py`{dated['sweep']}: one thread computes "
                       f"{sweep['float32_gflops']['best']} GFLOP/s in float32; a 60,000-image CNN epoch in "
                       f"{epoch['precision']} takes {epoch['measured_s']} s against a FLOP bound of "
                       f"{epoch['flop_bound_s']} s ({epoch['ratio']}x; target {epoch['target_ratio']}x); a "
                       f"training job in a process of its own starts in {sweep['process_start_s']} s "
                       "(imports, config, MNIST; config `worker: false`).")]
        if "sweep" in sweep:
            run = sweep["sweep"]
            lines += ["", (f"The sweep of `{run['results']}`: {run['wall_min']} minutes of wall time, {run['jobs']} "
                           f"benchmarked jobs, {run['job_min']} job-minutes. A training job's overhead (its run "
                           "time less its stage's own: process start, the warm worker's round trip, config, "
                           f"saving) was {run['job_overhead_s']['median']} s (median of "
                           f"{run['job_overhead_s']['training_jobs']}, at most {run['job_overhead_s']['max']} s); "
                           f"counted for every job, {run['fixed_cost_share']:.1%} of the job time."
                           + (f" {run['note']}" if run.get("note") else "")), "",
                      pd.DataFrame({"rule": list(run["jobs_by_rule"]), "jobs": list(run["jobs_by_rule"].values()),
                                    "job_minutes": [run["job_min_by_rule"][r] for r in run["jobs_by_rule"]]})
                      .to_markdown(index=False)]
    if "lightning" in measured:
        part = measured["lightning"]
        rows = pd.DataFrame(part["rows"])
        lines += ["", (f"`benchmarks/bench_lightning.py`{dated['lightning']} ({part['threads']} threads): one training "
                       "epoch through Lightning and through a plain torch loop on the same data, alternating runs; "
                       "target ratio <= 1.10. `ratio` compares each loop's fastest epoch, `ratio_median` their medians."
                       + (f" Lightning's own cost per step (one linear layer in both loops): "
                          f"{part['lightning_step_cost_ms']} ms." if "lightning_step_cost_ms" in part else "")),
                  "", rows[["network", *rows.columns.drop("network")]].to_markdown(index=False)]
    if "verify" in measured:
        part = measured["verify"]
        latency = pd.DataFrame([{"where": where, **part[where]} for where in ("local", "http")])
        lines += ["", (f"`benchmarks/bench_verify.py`{dated['verify']}: verification of l = {part['key_size']} "
                       f"({part['model']}), latency in ms, and the server's throughput."),
                  "", latency.to_markdown(index=False), "", pd.DataFrame(part["throughput"]).to_markdown(index=False)]
    if "http" in measured:
        part = measured["http"]
        one = part["predict_one_image"]
        lines += ["", (f"`benchmarks/bench_http.py`{dated['http']}: one small request on a kept-alive connection, "
                       f"p50 {one['p50_ms']} ms, p95 {one['p95_ms']} ms (target p50 <= {one['target_p50_ms']} ms).")]
    if "cnn" in measured:
        part = measured["cnn"]
        rows = pd.DataFrame([{"variant": name, **medians} for name, medians in part["median"].items()])
        ratio = part["ratio"]
        lines += ["", (f"`benchmarks/bench_cnn.py`{dated['cnn']} ({part['threads']} thread): the CNN's training step "
                       "(batch 128) and inference in fsw's layout (channels-last convolutions, max-pool before the "
                       "second ReLU) against the Keras order in PyTorch's default layout, and fsw's step in bfloat16 "
                       f"autocast; fsw's layout takes {ratio['train_step_ms']:.2f}x the time per step and "
                       f"{ratio['inference_us_per_image']:.2f}x per image, bfloat16 "
                       f"{part['bf16_train_step_ratio']:.2f}x the float32 step"
                       + (" (emulated: this CPU has no native bfloat16, so fsw trains the CNN in float32 on it)."
                          if part.get("bf16_native") is False else ".")),
                  "", rows.round(1).to_markdown(index=False)]
    return lines


def speed_section(folder: Path, document: str = "docs/results.md") -> str:
    """The README's speed section: one row per CPU measured (docs/benchmarks/), each figure dated."""
    summary = speed_summary(folder)
    if summary.empty:
        body = "No benchmark has been run yet (`python benchmarks/bench_sweep.py --results results`)."
    else:
        body = "\n".join([
            ("Measured by `benchmarks/bench_sweep.py` on each CPU below, 2 cores, no GPU: the default sweep's wall "
             "time, a 60,000-image CNN training epoch against its FLOP bound (4.32 TFLOP over one thread's "
             "float32 rate), the share of the jobs' time that is per-job overhead (a training job's run time "
             "less its stage's own, counted for every job: process start, the warm worker's round trip, config), and "
             f"the HTTP API's median latency. Details per CPU: [{document}]({document}#speed-benchmarks)."), "",
            table(summary)])
    return f"{SPEED_START}\n{body}\n{SPEED_END}"


def update_readme(readme: Path, section: str, start: str = START, end: str = END) -> None:
    """Replace what lies between the markers start and end (included) by section."""
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme} lacks the {start} ... {end} markers")
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    atomic_write(readme, lambda tmp: Path(tmp).write_text(head + section + tail))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--document", type=Path, help="every table (default: docs/results.md beside the README)")
    parser.add_argument("--figures", type=Path, help="where the figures are copied (default: docs/results/ beside the README)")
    args = parser.parse_args()
    base = args.readme.parent
    figure_dir = args.figures or base / "docs" / "results"
    document = args.document or base / "docs" / "results.md"
    copies = publish_figures(args.results, figure_dir)
    link = Path(os.path.relpath(document, base)).as_posix()
    update_readme(args.readme, results_section(args.results, link_base=base, figure_dir=figure_dir, document=link))
    update_readme(args.readme, speed_section(base / "docs" / "benchmarks", link), SPEED_START, SPEED_END)
    text = results_document(args.results, document.parent, figure_dir, base / "docs" / "benchmarks")
    atomic_write(document, lambda tmp: Path(tmp).write_text(text))
    print(f"updated {args.readme} and {document} from {args.results}; {len(copies)} figures copied to {figure_dir}")


if __name__ == "__main__":
    main()
