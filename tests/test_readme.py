"""tools/readme.py on the results folder of a report run on synthetic records: the README section and
docs/results.md are functions of the files (the same files give the same text, a changed table
changes it), the section lands between the markers and its figure links resolve."""

import re

import pandas as pd
import pytest
import yaml

from tests.test_report import run_report
from tools import readme


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    results = run_report(tmp_path_factory.mktemp("readme"))
    config = {"networks": ["mlp", "irnn"], "seeds": [0], "eps": [0.1, 0.25], "key_sizes": [100],
              "strategies": ["transfer"],
              "attacks": {"prune_global": [0.25, 0.5, 0.75, 0.9], "quantize": [16, 8, 4, 2], "ftll": [1, 2], "rtal": []},
              "extraction": {"eps": [0.25], "surrogates": ["mlp"], "budgets": [1000, 5000], "fgsm": [False, True]}}
    (results / "config.yaml").write_text(yaml.safe_dump(config))
    return results


def test_section_is_deterministic_and_short(results):
    section = readme.results_section(results, link_base=results.parent)
    assert section == readme.results_section(results, link_base=results.parent)
    assert section.startswith(readme.START) and section.endswith(readme.END)
    assert "recommended: transfer keys, family_binomial" in section
    assert "| heldout_null " in section or "heldout_null |" in section
    assert "cores of an" in section and "CPU-minutes" in section
    assert "[docs/results.md](docs/results.md)" in section
    assert re.findall(r"!\[[^]]*\]\(([^)]+)\)", section) == ["docs/results/detection.png", "docs/results/roc_curves.png"]
    assert len(section.encode()) < 6000


def test_document_holds_every_table(results, tmp_path):
    text = readme.results_document(results, tmp_path, tmp_path / "results", tmp_path / "benchmarks")
    for heading in ("## Paper vs fsw", "## Trained models", "## Keys", "## Embedding", "## Detection",
                    "## ROC against the held-out models", "## False positives per held-out family",
                    "## Removal attacks", "## Extraction", "## Runtime per rule", "## Figures"):
        assert heading in text, heading
    assert "The mark does not survive extraction in this sweep" in text
    assert "| 16, 8, 4, 2 " in text  # mark_lost rows, levels weakest first
    assert "![robustness_quantize](results/robustness_quantize.png)" in text


def test_section_follows_the_tables(results):
    pooled_csv = results / "tables" / "detection_pooled.csv"
    original = pooled_csv.read_text()
    try:
        pooled = pd.read_csv(pooled_csv)
        pooled.loc[pooled.recommended & (pooled.population == "marked"), ["detected", "n"]] = (123, 456)
        pooled.to_csv(pooled_csv, index=False)
        assert "123/456" in readme.results_section(results)
    finally:
        pooled_csv.write_text(original)


def test_update_readme_replaces_only_the_section(results, tmp_path):
    section = readme.results_section(results)
    path = tmp_path / "README.md"
    path.write_text(f"intro\n{readme.START}\nold\n{readme.END}\noutro\n")
    readme.update_readme(path, section)
    text = path.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "\nold\n" not in text
    path.write_text("no markers\n")
    with pytest.raises(ValueError, match="markers"):
        readme.update_readme(path, section)


def test_figures_are_published_beside_the_readme(results, tmp_path):
    """make readme copies every figure into docs/results/ (results/ is not committed), replaces an
    earlier run's copies and drops figures no longer shown."""
    figure_dir = tmp_path / "docs" / "results"
    figure_dir.mkdir(parents=True)
    (figure_dir / "robustness_gone.png").write_bytes(b"an earlier run's attack")
    (figure_dir / "key_errors.png").write_bytes(b"an earlier run's figure")
    copies = readme.publish_figures(results, figure_dir)
    assert sorted(figure_dir.iterdir()) == sorted(copies)
    for source, copy in zip(readme.figures(results), copies, strict=True):
        assert copy.name == source.name and copy.read_bytes() == source.read_bytes()


def test_make_readme_links_resolve_to_the_copies(results, tmp_path, monkeypatch):
    """`python tools/readme.py` (make readme): every image the README and the document link exists."""
    page = tmp_path / "README.md"
    page.write_text(f"intro\n{readme.START}\nold\n{readme.END}\n{readme.SPEED_START}\n{readme.SPEED_END}\nrest\n")
    monkeypatch.setattr("sys.argv", ["readme.py", "--results", str(results), "--readme", str(page)])
    readme.main()
    for document in (page, tmp_path / "docs" / "results.md"):
        linked = re.findall(r"!\[[^]]*\]\(([^)]+)\)", document.read_text())
        assert linked and all((document.parent / link).is_file() for link in linked), document
    assert page.read_text().startswith("intro\n") and page.read_text().endswith("rest\n")


def test_figures_with_one_file_name_are_refused(results, tmp_path, monkeypatch):
    """Copies are named by file name: two figures of one name would overwrite each other."""
    twins = [results / "a" / "curves.png", results / "b" / "curves.png"]
    monkeypatch.setattr(readme, "figures", lambda _: twins)
    with pytest.raises(ValueError, match="share a file name"):
        readme.publish_figures(results, tmp_path / "docs" / "results")
    assert not (tmp_path / "docs" / "results").exists()


def test_speed_benchmarks_are_shown_per_cpu_when_measured(results, tmp_path):
    import json

    assert readme.speed_benchmarks(tmp_path) == []  # none run yet: nothing claimed
    assert readme.speed_summary(tmp_path).empty
    dated = {"date": "2026-12-04", "commit": "abc1234"}
    cpu = {"cpu_model": "Some CPU", "cpu_flags": "avx2 avx512f", "cpus": 2}
    (tmp_path / "some-cpu.json").write_text(json.dumps({**cpu,
        "lightning": {**dated, "threads": 2, "lightning_step_cost_ms": 0.417, "rows": [
            {"network": "mlp", "plain_s": 2.5, "lightning_s": 2.625, "ratio": 1.05, "within_target": True}]},
        "verify": {**dated, "key_size": 100, "model": "mlp", "local": {"p50_ms": 1.9, "target_ms": 50.0, "met": True},
                   "http": {"p50_ms": 39.3, "target_ms": 300.0, "met": True},
                   "throughput": [{"clients": 1, "images_per_s": 1918}]},
        "cnn": {**dated, "threads": 1, "ratio": {"train_step_ms": 0.9123, "inference_us_per_image": 0.7},
                "bf16_train_step_ratio": 7.8, "bf16_native": False,
                "median": {"fsw": {"train_step_ms": 312.5, "inference_us_per_image": 530.0},
                           "fsw_bf16": {"train_step_ms": 152.2, "inference_us_per_image": None},
                           "keras_order": {"train_step_ms": 342.5, "inference_us_per_image": 757.0}}},
        "sweep": {**dated, "float32_gflops": {"best": 91.9}, "process_start_s": 6.5,
                  "cnn_epoch": {"precision": "32-true", "measured_s": 70.5, "flop_bound_s": 47.0, "ratio": 1.5,
                                "target_ratio": 1.5},
                  "sweep": {"results": "results", "wall_min": 41.5, "jobs": 160, "job_min": 80.0,
                            "job_overhead_s": {"median": 0.4, "max": 7.1, "training_jobs": 57},
                            "fixed_cost_share": 0.21, "jobs_by_rule": {"train": 57}, "job_min_by_rule": {"train": 40.0}}}}))
    (tmp_path / "other-cpu.json").write_text(json.dumps({"cpu_model": "Other CPU", "cpu_flags": "avx2", "cpus": 2,
                                                         "http": {**dated, "predict_one_image": {
                                                             "p50_ms": 1.3, "p95_ms": 2.7, "target_p50_ms": 5.0}}}))
    text = "\n".join(readme.speed_benchmarks(tmp_path))
    assert text.count("## Speed benchmarks") == 1
    assert "### Some CPU (avx2 avx512f, 2 CPUs)" in text and "### Other CPU (avx2, 2 CPUs)" in text
    assert "| mlp " in text and "1.05" in text and "0.417 ms" in text and "39.3" in text and "1918" in text
    assert "0.91x the time per step" in text and "| keras_order " in text and "342.5" in text
    assert "bfloat16 7.80x the float32 step (emulated: this CPU has no native bfloat16" in text
    assert "70.5 s against a FLOP bound of 47.0 s (1.5x" in text and "41.5 minutes" in text and "21.0%" in text
    assert "0.4 s (median of 57, at most 7.1 s)" in text and "starts in 6.5 s" in text
    assert "p50 1.3 ms" in text and "measured 2026-12-04, commit abc1234" in text
    summary = readme.speed_summary(tmp_path).set_index("cpu")
    assert summary.loc["Some CPU", "sweep_wall_min"] == 41.5 and summary.loc["Some CPU", "epoch_over_bound"] == 1.5
    assert summary.loc["Other CPU", "http_p50_ms"] == 1.3 and pd.isna(summary.loc["Other CPU", "sweep_wall_min"])
    section = readme.speed_section(tmp_path)
    assert section.startswith(readme.SPEED_START) and section.endswith(readme.SPEED_END)
    assert "| Some CPU " in section and "| Other CPU " in section and "41.5" in section
    assert "No benchmark" in readme.speed_section(tmp_path / "none")


def test_the_committed_speed_benchmarks_render():
    """`make run` ends by rendering docs/benchmarks/*.json into the README and docs/results.md: a
    committed file the generator cannot read would fail every fresh clone's run at its last step."""
    from tests.conftest import REPO

    folder = REPO / "docs" / "benchmarks"
    assert readme.speed_benchmarks(folder) and not readme.speed_summary(folder).empty
    assert "| AMD EPYC " in readme.speed_section(folder)


def test_key_size_section_when_the_key_size_sweep_ran(results, tmp_path):
    import shutil

    assert readme.key_size_section(tmp_path / "keysizes") == []  # not run: nothing claimed
    shutil.copytree(results / "tables", tmp_path / "keysizes" / "tables")
    text = "\n".join(readme.key_size_section(tmp_path / "keysizes"))
    detection = pd.read_csv(results / "tables" / "detection.csv")
    shown = detection.rule.isin(["paper_binomial", "family_binomial"])
    assert "## Key size" in text and text.count("| paper_binomial ") == (detection.rule == "paper_binomial").sum()
    assert text.count("| family_binomial ") == (shown & (detection.rule == "family_binomial")).sum()
    assert "| item_rasch " not in text


def test_readme_rerun_commands_name_outputs_of_the_default_sweep(tmp_path):
    """Every `snakemake` command of the README's "Rerun one stage" block, dry-run against the
    default sweep in an empty folder: a target path the sweep no longer writes, or a rule that no
    longer exists, fails here instead of in a user's shell."""
    import os
    import shlex
    import subprocess
    import sys

    from tests.conftest import REPO

    text = (REPO / "README.md").read_text()
    block = text.split("## Rerun one stage", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("snakemake ")]
    assert len(commands) >= 5 and any(re.match(r"results/\S+", arg) for cmd in commands for arg in cmd)
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
             *command[1:], "-n", "--quiet", "rules"],
            capture_output=True, text=True, env=os.environ.copy(), timeout=300, check=False)
        assert done.returncode == 0, (command, done.stderr[-2000:])
