"""One end-to-end Snakemake run of the smoke sweep in a temporary directory."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(REPO / "config" / "smoke.yaml"), "--cores", "2", *args]
    return subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), timeout=900)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("smoke")
    done = snakemake(workdir)
    assert done.returncode == 0, done.stderr[-4000:]
    return workdir / "results" / "smoke"


def test_smoke_sweep_detects_marked_not_unmarked(smoke_run):
    table = pd.read_csv(smoke_run / "tables" / "verification.csv")
    assert set(table.network) == {"mlp", "irnn"} and set(table.strategy) == {"paper", "transfer"}
    marked = table[table.population == "marked"]
    source = table[table.population == "source"]
    assert len(marked) == 4 and marked.paper_marked.all()  # 2 networks x 2 strategies
    assert len(source) == 4 and not source.paper_marked.any()
    transfer = marked[marked.strategy == "transfer"]
    assert transfer.decision_marked.all() and transfer.decision_calibration_hash.notna().all()
    assert (smoke_run / "tables" / "verification.md").read_text().count("|") > 20


def test_every_attack_and_null_model_is_verified(smoke_run):
    table = pd.read_csv(smoke_run / "tables" / "verification.csv")
    attacked = table[table.population.isin(["attacked", "extracted"])]
    # 9 removal attacks and 1 extraction, one level each, per key (2 networks x 2 strategies)
    assert len(attacked) == 4 * 10 and attacked.groupby(["network", "strategy"]).attack.nunique().eq(10).all()
    counts = table.population.value_counts()
    # per key: 2 selection, 4 calibration and 3 held-out models (config/smoke.yaml)
    assert (counts["selection"], counts["calibration"], counts["heldout"]) == (4 * 2, 4 * 4, 4 * 3)
    detection = pd.read_csv(smoke_run / "tables" / "detection.csv")
    assert {"marked", "attacked", "extracted", "calibration_null", "heldout_null"} == set(detection.population)
    assert detection.recommended.any() and (smoke_run / "tables" / "roc.csv").exists()
    assert any((smoke_run / "plots").glob("*.png"))


def test_every_rule_logged_and_expensive_ones_benchmarked(smoke_run):
    for rule in ("train", "keygen", "embed", "attack", "verify", "report"):
        assert any((smoke_run / "logs" / rule).rglob("*.log")) or (smoke_run / "logs" / f"{rule}.log").exists()
    for rule in ("train", "keygen", "embed", "attack"):
        assert any((smoke_run / "benchmarks" / rule).rglob("*.tsv"))
        # the jobs ran in forks of the warm worker, which wrote each one's CPU time and memory
        assert all(log.with_suffix(".usage.json").is_file() for log in (smoke_run / "logs" / rule).rglob("*.log"))
    assert "ready" in (smoke_run / "logs" / "worker.log").read_text()


def test_rerun_one_stage(smoke_run):
    workdir = smoke_run.parents[1]
    record = smoke_run / "verify/mlp/s0/eps0.1/l20/transfer/marked/none/0.json"
    model = smoke_run / "train/owner/mlp/s0/model.pt"
    before, model_time = json.loads(record.read_text()), model.stat().st_mtime_ns
    done = snakemake(workdir, "--force", str(record.relative_to(workdir)))
    assert done.returncode == 0, done.stderr[-4000:]
    assert model.stat().st_mtime_ns == model_time  # nothing upstream was redone
    after = json.loads(record.read_text())
    assert after["key_errors"] == before["key_errors"] and after["wall_time_s"] != before["wall_time_s"]


def test_readme_results_section_is_generated_deterministically(smoke_run, tmp_path):
    from tools.readme import END, START, results_section, update_readme

    section = results_section(smoke_run)
    assert section == results_section(smoke_run)
    assert "recommended: transfer keys" in section and "paper_binomial" in section
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\noutro\n")
    update_readme(readme, section)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "\nold\n" not in text


# The categories of the HTML report (workflow/rules/report.smk).
CATEGORIES = ("Training", "Keys", "Embedding", "Attacks", "Extraction", "Ownership", "Remote verification",
              "Paper vs fsw", "Sweep", "Verification")


@pytest.fixture(scope="module")
def smoke_report(smoke_run, tmp_path_factory):
    """`snakemake --report` after the run: one self-contained HTML file."""
    html = tmp_path_factory.mktemp("report") / "report.html"
    done = snakemake(smoke_run.parents[1], "--report", str(html))
    assert done.returncode == 0, done.stderr[-4000:]
    return html


def test_snakemake_report_shows_every_category_and_output(smoke_run, smoke_report):
    """The HTML report holds every category, each entry under a subcategory (none under "Other"),
    and exactly the HTML page of every table (the report shows a CSV only as a download), every
    figure (PNG) and the config page; Snakemake's runtime statistics included."""
    text = smoke_report.read_text()
    categories = json.loads(re.search(r"^\s*var categories = (\{.*\});$", text, re.MULTILINE).group(1))
    assert set(categories) == set(CATEGORIES)
    assert all("Other" not in subcategories for subcategories in categories.values())
    shown = {path for subcategories in categories.values() for paths in subcategories.values() for path in paths}
    pages = ([smoke_run / "tables" / f"{name}.html" for name in ("verification", "remote", "detection", "roc", "schemes")]
             + [path.with_suffix(".html") for path in (smoke_run / "report").rglob("*.csv")] + [smoke_run / "config.html"])
    figures = [path for folder in ("report", "plots", "figure1") for path in (smoke_run / folder).rglob("*.png")]
    assert len(pages) > 10 and len(figures) > 10
    assert shown == {str(path.relative_to(smoke_run.parents[1])) for path in pages + figures}
    for attack in ("prune_global", "quantize", "overwrite"):
        assert f"results/smoke/report/attacks/robustness_{attack}.png" in shown
    assert "results/smoke/figure1/figure1_frontier.png" in categories["Keys"]["figures"]
    assert categories["Sweep"]["configuration"] == ["results/smoke/config.html"]
    for rule in ("train", "keygen", "embed", "attack", "verify", "report"):  # Snakemake's runtime panel
        assert f'{{"rule": "{rule}", "runtime": ' in text, rule


def test_report_in_a_browser(smoke_run, smoke_report, tmp_path):
    """tools/check_report.py clicks through the report in headless Chromium: every category has
    entries, each shown inline (every table as an HTML table with rows), each with a caption that
    says how to read it; a screenshot of the index and of every category."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install -e '.[test]')")
    from tools import check_report

    try:
        check_report.chromium_paths()
    except check_report.NoChromium as missing:
        pytest.skip(str(missing))
    shots = tmp_path / "screenshots"
    done = subprocess.run([sys.executable, str(REPO / "tools" / "check_report.py"), str(smoke_report), str(shots),
                           *(f"--category={category}" for category in CATEGORIES)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    seen = json.loads((shots / "summary.json").read_text())
    assert set(seen) == set(CATEGORIES)
    entries = [entry for subcategories in seen.values() for listed in subcategories.values() for entry in listed]
    assert len(entries) > 30 and all("How to read it" in entry["caption"] for entry in entries)
    tables = [entry for category in seen.values() for entry in category.get("tables", [])] + [
        seen[category][""][0] for category in ("Training", "Paper vs fsw", "Remote verification", "Verification")]
    assert len(tables) > 10 and all(entry["shown_as"] == "html" and entry["rows"] > 0 for entry in tables)
    assert seen["Verification"][""][0]["rows"] == len(pd.read_csv(smoke_run / "tables" / "verification.csv"))
    assert {"index.png", "verification.png", "keys--figures.png", "sweep--configuration.png"} <= {
        path.name for path in shots.glob("*.png")}


def scheduled(done: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of a dry run (empty: nothing to be done)."""
    counts = {}
    if "Job stats:" not in done.stdout:
        return counts
    table = done.stdout.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    for line in table.splitlines()[3:]:
        rule, count = line.split()
        if rule != "total":
            counts[rule] = int(count)
    return counts


def test_readme_rerun_commands_do_what_they_say(smoke_run):
    """The README's "Rerun one stage" commands, on the finished smoke sweep (its paths: results/smoke,
    keys of 20 items), dry-run: --force FILE schedules that file's job alone, naming a finished file
    schedules nothing, --forcerun RULE schedules that rule and what follows it, never what precedes."""
    import shlex

    workdir = smoke_run.parents[1]
    text = (REPO / "README.md").read_text()
    block = text.split("## Rerun one stage", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("snakemake ")]
    assert len(commands) >= 4
    for command in commands:
        args = [arg.replace("results/", "results/smoke/", 1).replace("/l100/", "/l20/") for arg in command[1:]
                if arg not in ("--cores", "2")]
        args = [arg for arg in args if arg not in ("--configfile", "config/smoke.yaml", "-n")]
        done = snakemake(workdir, *args, "-n")
        assert done.returncode == 0, (command, done.stderr[-2000:])
        jobs = scheduled(done)
        targets = [arg for arg in args if arg.startswith("results/")]
        if "--force" in args:
            assert jobs == {targets[0].split("/")[2]: 1}, (command, jobs)
        elif "--forcerun" in args:
            rule = args[args.index("--forcerun") + 1]
            assert jobs.get(rule, 0) > 0 and "train" not in jobs and "keygen" not in jobs, (command, jobs)
        elif targets:
            assert jobs == {}, (command, jobs)  # a finished file: nothing to redo
        else:  # the whole sweep: at most the report, after the rerun above rewrote a record
            assert set(jobs) <= {"report", "all"}, (command, jobs)


def readme_commands(section: str) -> list[list[str]]:
    """Each shell command of a README section's bash blocks, continuation lines joined, split into words."""
    import shlex

    text = (REPO / "README.md").read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    blocks = [block.split("```", 1)[0] for block in text.split("```bash")[1:]]
    return [shlex.split(command, comments=True) for block in blocks for command in block.replace("\\\n", " ").splitlines()
            if command.strip()]


def test_readme_verify_commands_give_the_calibrated_verdict(smoke_run, tmp_path):
    """The README's "Verify a suspect model" commands, run on the smoke sweep's files (its paths,
    keys of 20 items; the marked model as the suspect, a free port): the local and the remote record
    both call the marked model marked by the key's calibrated rule."""
    import socket
    import time

    import httpx

    workdir = smoke_run.parents[1]
    marked = "results/smoke/embed/mlp/s0/eps0.1/l20/transfer/model.pt"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    fsw = str(Path(sys.executable).with_name("fsw"))

    def adapted(command: list[str], record: Path) -> list[str]:
        words = [word.replace("results/", "results/smoke/", 1).replace("/l100/", "/l20/").replace("8000", port)
                 .replace("suspect.pt", marked).replace("record.json", str(record)) for word in command if word != "&"]
        return [fsw, *words[1:]]

    commands = readme_commands("Verify a suspect model")
    assert [command[:2] for command in commands] == [["fsw", "verify"], ["fsw", "serve"], ["fsw", "verify"]]
    assert commands[1][-1] == "&"  # the server runs in the background while the client verifies
    local = tmp_path / "local.json"
    subprocess.run(adapted(commands[0], local), cwd=workdir, check=True, capture_output=True, timeout=300)
    server = subprocess.Popen(adapted(commands[1], tmp_path / "unused.json"), cwd=workdir,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "fsw serve did not come up"
            time.sleep(0.5)
        remote = tmp_path / "remote.json"
        subprocess.run(adapted(commands[2], remote), cwd=workdir, check=True, capture_output=True, timeout=300)
    finally:
        server.terminate()
        server.wait(timeout=30)
    for path, oracle in ((local, "local"), (remote, "remote")):
        record = json.loads(path.read_text())
        assert record["oracle"] == oracle and record["decision"]["marked"] is True, record["decision"]
        assert record["decision"]["rule"] == "family_binomial" and "paper_binomial" in record
