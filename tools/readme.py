"""Write the README's results section from a finished sweep's tables, figures, config and benchmark files.

    python tools/readme.py [--results results] [--readme README.md]

The section sits between the `results:start` and `results:end` markers; nothing in it is typed by
hand: it is a function of the files under --results (the report stage's tables and figures, the
sweep's config.yaml and the benchmark files), so the same results give the same section. Its figures
are copied beside the README (docs/results/ by default) because results/ is not committed: a clone
shows the figures of the run its tables come from.
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


def sweep_wall_time(jobs: pd.DataFrame) -> float:
    """From the first benchmarked job's start to the last one's end (unbenchmarked jobs are short)."""
    return float(jobs.finished.max() - (jobs.finished - jobs.s).min())


def rule_summary(rules: pd.DataFrame) -> pd.DataFrame:
    columns = ["rule", "calibrated", "n_null", "fpr", "fpr_low", "fpr_high", "worst_network",
               "fpr_worst_network", "tpr", "tpr_attacked", "queries_needed", "valid"]
    return rules[[c for c in columns if c in rules.columns]].round(3)


def training_summary(training: pd.DataFrame) -> pd.DataFrame:
    """Per network: how many models were trained and their test accuracy (mean, min, max)."""
    return (training.groupby("network").test_acc.agg(models="count", test_acc_mean="mean", test_acc_min="min",
                                                     test_acc_max="max")
            .round(4).reset_index())


def table(frame: pd.DataFrame, columns: list[str]) -> str:
    return frame[columns].to_markdown(index=False, floatfmt=".4g")


def figures(results: Path) -> list[Path]:
    """The PNGs the section shows, in its order, where they exist: Figure 1, the report's, the key-size sweep's."""
    report = results / "report"
    candidates = [results / "figure1" / "figure1_frontier.png",
                  report / "embedding" / "accuracy_drop.png",
                  report / "false_positives" / "key_errors.png",
                  *sorted((report / "attacks").glob("robustness_*.png")),
                  report / "extraction" / "extraction_curves.png",
                  *key_size_plots(results / "keysizes")]
    return [path for path in candidates if path.is_file()]


def default_figure_dir(link_base: Path) -> Path:
    return link_base / "docs" / "results"


def published(source: Path, figure_dir: Path) -> Path:
    """Where publish_figures puts a figure: its file name is unique among figures()."""
    return figure_dir / source.name


def publish_figures(results: Path, figure_dir: Path) -> list[Path]:
    """Copy the section's figures into figure_dir, replacing the figures of an earlier run there."""
    sources = figures(results)
    names = [source.name for source in sources]
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
    """Markdown images of the published copies, paths relative to the README's folder."""
    links = [Path(os.path.relpath(published(source, figure_dir), link_base)).as_posix() for source in sources]
    return [f"![{source.stem}]({link})" for source, link in zip(sources, links)]


def results_section(results: Path, link_base: Path = Path("."), figure_dir: Path | None = None) -> str:
    """The README's results section; link_base: the README's folder (figure links are relative to it);
    figure_dir: where publish_figures copies the figures it shows (default: docs/results/ in link_base)."""
    figure_dir = figure_dir or default_figure_dir(link_base)
    config = yaml.safe_load((results / "config.yaml").read_text())
    report = results / "report"
    verification = (results / "tables" / "verification.md").read_text().strip()
    jobs = benchmark_jobs(results / "benchmarks")
    rules = pd.read_csv(results / "tables" / "false_positives" / "rules.csv")
    machine = pd.read_csv(report / "sweep" / "machine.csv").iloc[0]
    runtime = pd.read_csv(report / "sweep" / "runtime.csv")
    comparison = pd.read_csv(report / "paper" / "paper_vs_fsw.csv").fillna("")
    mark_lost = pd.read_csv(report / "attacks" / "mark_lost.csv", dtype=str)
    extraction = pd.read_csv(report / "extraction" / "extraction.csv")
    training = pd.read_csv(report / "training" / "training.csv")
    sweep_figures = [path for path in figures(results) if (results / "keysizes") not in path.parents]
    grid = ", ".join(f"{name} {config[name]}" for name in ("networks", "seeds", "null_seeds", "eps", "key_sizes"))
    attacks = "; ".join(f"{name} {levels}" for name, levels in config["attacks"].items() if levels)
    lines = [
        START,
        "## Results",
        "",
        (f"Generated by `make readme` from `{results}/`: the sweep's config as it ran is "
         f"`{results}/config.yaml` (grid: {grid}; attacks: {attacks}; extraction: {config['extraction']}). "
         f"From the first job's start to the last job's end the sweep took {sweep_wall_time(jobs) / 60:.1f} "
         f"minutes of wall time on {machine.cpus} CPU cores ({machine.platform}, no GPU); its jobs used "
         f"{jobs.cpu_s.sum() / 60:.1f} CPU-minutes in all. "
         f"`snakemake --report {results}/report.html` gathers every table and figure below (see [The report](#the-report))."),
        "",
        "### Paper vs fsw",
        "",
        ("Each claim of the paper against this run; verdicts and explanations are computed from the "
         "measurements (`fsw.report.paper.paper_vs_fsw`)."),
        "",
        table(comparison, ["claim", "paper", "fsw", "verdict", "explanation"]),
        "",
        "### Training, embedding, detection",
        "",
        "Test accuracy of the trained models (the key sources and the null models):",
        "",
        table(training_summary(training), ["network", "models", "test_acc_mean", "test_acc_min", "test_acc_max"]),
        "",
        ("Each row: the marked model (`*_marked`) beside the unmarked model its key was made from "
         "(`*_unmarked`); `acc_drop` is test accuracy lost by embedding (negative = gained); "
         "`detected_*` is the paper's binomial decision `key_errors < theta` at z = 0.05."),
        "",
        verification,
        "",
        "### Removal attacks",
        "",
        ("Per key and attack, levels from the weakest to the strongest: the weakest level at which the "
         "paper's rule (`lost_paper`) and the recommended rule (`lost_default`) no longer detect the mark, "
         "the weakest levels at which test accuracy has fallen 1, 5 and 10 points, and whether the mark is "
         "lost before the model is ruined (`report/attacks/mark_lost.md` says what ruined means)."),
        "",
        table(mark_lost, ["network", "eps", "key_size", "attack", "levels", "lost_paper", "lost_default", "drop_1pt",
                          "drop_5pt", "drop_10pt", "lost_before_ruin_paper", "lost_before_ruin_default"]),
        "",
        "### Extraction",
        "",
        extraction_verdict(extraction) + (" Surrogates trained on the labels of the served marked model; "
                                          "`null_key_acc`: the mean key accuracy of the null models verified "
                                          "with the same key."),
        "",
        table(extraction, ["network", "eps", "surrogate", "augmentation", "queries", "test_acc", "victim_acc",
                           "key_errors", "key_acc", "null_key_acc", "detected_paper", "detected_default"]),
        "",
        "### False positives: the paper's rule against independently trained models",
        "",
        ("Every key was verified against every unmarked model of the sweep (each network at the "
         "sweep's seed and at the null seeds). `fpr` is the share of independent unmarked models called "
         "marked, with its 95% Clopper-Pearson interval; `tpr` the share of marked models detected, "
         "`tpr_attacked` of attacked copies. Calibrated rules judge a model against the null models "
         "of the same key, leaving that model out."),
        "",
        rule_summary(rules).to_markdown(index=False),
        "",
        "### Figures",
        "",
        (f"Copies, made by `make readme`, of the sweep's PNGs in "
         f"`{Path(os.path.relpath(figure_dir, link_base)).as_posix()}/` (results/ is not committed)."),
        "",
        "\n\n".join(figure_links(sweep_figures, figure_dir, link_base)),
        "",
        "Runtime per rule (benchmarked jobs, from the `benchmark:` files):",
        "",
        runtime.to_markdown(index=False),
        *key_size_section(results / "keysizes", figure_dir, link_base),
        *speed_benchmarks(link_base / "benchmarks" / "results"),
        END,
    ]
    return "\n".join(lines)


def shown_rates(rates: pd.DataFrame) -> pd.DataFrame:
    """The key-size rows the README shows: the paper's rule and the recommended one."""
    return rates[(rates.rule == "paper_binomial") | rates.default.astype(bool)]


def key_size_rates(results: Path) -> pd.DataFrame | None:
    rates_csv = results / "tables" / "false_positives" / "rates.csv"
    return pd.read_csv(rates_csv) if rates_csv.is_file() else None


def key_size_plots(results: Path) -> list[Path]:
    """The key-size sweep's plots of the rules the README shows (none when it has not run)."""
    rates = key_size_rates(results)
    rules = [] if rates is None else sorted(set(shown_rates(rates).rule))
    return [path for path in (results / "plots" / f"rates_{rule}.png" for rule in rules) if path.is_file()]


def key_size_section(results: Path, figure_dir: Path, link_base: Path) -> list[str]:
    """The key-size sweep (config/keysizes.yaml), when it has been run: false- and true-positive
    rates of the paper's rule and the recommended one against the key size."""
    rates = key_size_rates(results)
    if rates is None:
        return []
    shown = shown_rates(rates).copy()
    recommended = shown.default.astype(bool)
    shown["rule"] = shown.rule.where(~recommended, shown.rule + " (recommended)")
    columns = ["network", "eps", "key_size", "rule", "theta_paper", "n_null", "fpr", "fpr_low", "fpr_high", "tpr"]
    table = shown.sort_values(["network", "eps", "rule", "key_size"])[columns].round(3)
    links = figure_links(key_size_plots(results), figure_dir, link_base)
    return ["", "### Key size", "",
            (f"From `{results}/` (`snakemake --configfile config/keysizes.yaml`): every key size against "
             "the null models of the sweep; `fpr` with its 95% Clopper-Pearson interval, `tpr` on the "
             "marked model of each key."),
            "", table.to_markdown(index=False), *(["", "\n\n".join(links)] if links else [])]


def speed_benchmarks(results: Path) -> list[str]:
    """The on-demand speed benchmarks (benchmarks/*.py) whose result files exist, as Markdown."""
    lines = []
    lightning, verify, cnn = results / "lightning.json", results / "verify.json", results / "cnn.json"
    if lightning.is_file():
        measured = json.loads(lightning.read_text())
        rows = pd.DataFrame(measured["rows"])
        lines += ["", (f"`benchmarks/bench_lightning.py` ({measured['threads']} threads): one training epoch "
                   "through Lightning and through a plain torch loop on the same data, alternating "
                   "runs; target ratio <= 1.10. `ratio` compares each loop's fastest epoch (noise only "
                   "adds time), `ratio_median` their medians; `ratio_fit` counts Lightning's whole "
                   "`fit` call, the trainer's one-off start included."
                   + (f" Lightning's own cost per step, measured with one linear layer in both loops: "
                      f"{measured['lightning_step_cost_ms']} ms; `ratio_from_step_cost` adds it to each "
                      "network's plain epoch." if "lightning_step_cost_ms" in measured else "")),
                  "", rows[["network", *rows.columns.drop("network")]].to_markdown(index=False)]
    if verify.is_file():
        measured = json.loads(verify.read_text())
        latency = pd.DataFrame([{"where": where, **{k: v for k, v in measured[where].items()}}
                                for where in ("local", "http")])
        lines += ["", (f"`benchmarks/bench_verify.py`: verification of l = {measured['key_size']} "
                       f"({measured['model']}), latency in ms, and the server's throughput."),
                  "", latency.to_markdown(index=False), "",
                  pd.DataFrame(measured["throughput"]).to_markdown(index=False)]
    if cnn.is_file():
        measured = json.loads(cnn.read_text())
        rows = pd.DataFrame([{"variant": name, **medians} for name, medians in measured["median"].items()])
        ratio = measured["ratio"]
        lines += ["", (f"`benchmarks/bench_cnn.py` ({measured['threads']} thread): the CNN's "
                       "training step (batch 128) and inference in fsw's layout (channels-last "
                       "convolutions, max-pool before the second ReLU) and in the Keras order with "
                       "PyTorch's default layout, and fsw's step in bfloat16 autocast (`fsw_bf16`, "
                       "its default precision; inference stays float32), medians of alternating "
                       f"runs; fsw's layout takes {ratio['train_step_ms']:.2f}x the time per step and "
                       f"{ratio['inference_us_per_image']:.2f}x per image, bfloat16 "
                       f"{measured['bf16_train_step_ratio']:.2f}x the float32 step"
                       + (" (emulated: this CPU has no native bfloat16, so fsw trains the CNN in "
                          "float32 on it)." if measured.get("bf16_native") is False else ".")),
                  "", rows.round(1).to_markdown(index=False)]
    return ["", "### Speed benchmarks", *lines] if lines else []


def update_readme(readme: Path, section: str) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} lacks the {START} ... {END} markers")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    atomic_write(readme, lambda tmp: Path(tmp).write_text(head + section + tail))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--figures", type=Path, help="where the figures are copied (default: docs/results/ beside the README)")
    args = parser.parse_args()
    figure_dir = args.figures or default_figure_dir(args.readme.parent)
    copies = publish_figures(args.results, figure_dir)
    update_readme(args.readme, results_section(args.results, link_base=args.readme.parent, figure_dir=figure_dir))
    print(f"updated {args.readme} from {args.results}; {len(copies)} figures copied to {figure_dir}")


if __name__ == "__main__":
    main()
