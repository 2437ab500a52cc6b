"""The schemes comparison: config/compare.yaml plans every scheme on both datasets, and
tools/compare.py stacks the sweeps' schemes tables into one table and figure."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from fsw.grid import KEY_STRATEGIES
from fsw.stats import tables
from fsw.stats.rules import annotate
from fsw.stats.simulate import simulate_records
from tools import compare

REPO = Path(__file__).resolve().parents[1]


def planned(tmp_path, *extra) -> str:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path),
               "-n", "--configfile", str(REPO / "config" / "compare.yaml"), *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return done.stdout


@pytest.mark.parametrize("dataset", ["mnist", "fashion"])
def test_the_comparison_plans_every_scheme(tmp_path, dataset):
    extra = [] if dataset == "mnist" else [str(REPO / "config" / "fashion.yaml"), "--config",
                                           "results=results/compare/fashion", "models=results/compare/fashion/train"]
    out = planned(tmp_path, *extra)
    for strategy in KEY_STRATEGIES:
        for network in ("mlp", "irnn"):
            assert f"results/compare/{dataset}/keygen/{network}/s0/eps0.1/l100/{strategy}/key.pt" in out
    assert f"results/compare/{dataset}/tables/schemes.csv" in out
    models = "results/train/" if dataset == "mnist" else "results/compare/fashion/train/"
    assert f"{models}owner/mlp/s0/model.pt" in out


def schemes_table(dataset: str, seed: int) -> pd.DataFrame:
    records = simulate_records(networks=("mlp",), eps=(0.1,), key_sizes=(50,), seed=seed)
    records["dataset"] = dataset
    return tables.schemes(annotate(records, "family_binomial", 0.05), "family_binomial")


def test_the_schemes_tables_of_two_sweeps_become_one(tmp_path, monkeypatch):
    folders = []
    for seed, dataset in enumerate(["mnist", "fashion"]):
        folder = tmp_path / dataset
        (folder / "tables").mkdir(parents=True)
        schemes = schemes_table(dataset, seed)
        schemes.to_csv(folder / "tables" / "schemes.csv", index=False)
        claims = schemes[["dataset", "network", "eps", "key_size", "strategy"]].assign(forged_rate=0.25 + seed / 2)
        claims.to_csv(folder / "tables" / "false_claims.csv", index=False)
        folders.append(folder)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{compare.START}\nold\n{compare.END}\nafter\n")
    monkeypatch.setattr(sys, "argv", ["compare.py", *map(str, folders), "--out", str(tmp_path / "out"),
                                      "--readme", str(readme)])
    compare.main()
    table = pd.read_csv(tmp_path / "out" / "schemes.csv")
    assert sorted(set(table.dataset)) == ["fashion", "mnist"]
    for dataset, seed in (("mnist", 0), ("fashion", 1)):
        expected = schemes_table(dataset, seed)
        got = table[table.dataset == dataset].reset_index(drop=True)[expected.columns]
        pd.testing.assert_frame_equal(got, expected.sort_values(["network", "strategy", "eps"]).reset_index(drop=True),
                                      check_dtype=False)
    for name in ("schemes.html", "schemes.png", "schemes.svg", "false_claims.csv", "false_claims.html"):
        assert (tmp_path / "out" / name).stat().st_size > 100, name
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith("after\n") and "old" not in text
    section = text.split(compare.START)[1].split(compare.END)[0]
    assert "![schemes compared](docs/compare/schemes.png)" in section
    assert (tmp_path / "docs" / "compare" / "schemes.png").stat().st_size > 1000
    assert "[docs/compare.md](docs/compare.md)" in section
    document = (tmp_path / "docs" / "compare.md").read_text()
    per_scheme, per_key = document.split("## Per key")
    for text, count in ((per_scheme, table.groupby(["dataset", "strategy"]).ngroups), (per_key, len(table))):
        rows = [line for line in text.splitlines() if line.startswith(("| fashion", "| mnist"))]
        assert len(rows) == count
        assert all(line.rstrip(" |").endswith("0.75") for line in rows if line.startswith("| fashion"))
        assert all(line.rstrip(" |").endswith("0.25") for line in rows if line.startswith("| mnist"))


def test_a_missing_sweep_is_named(tmp_path):
    with pytest.raises(SystemExit, match="schemes.csv is missing"):
        compare.combined([tmp_path / "nowhere"])


def test_the_makefile_runs_the_comparison_as_a_module():
    makefile = (REPO / "Makefile").read_text()
    command = next(line.strip() for line in makefile.splitlines() if "tools.compare" in line)
    assert command.startswith("$(BIN)/python -m tools.compare ")
    done = subprocess.run([sys.executable, "-m", "tools.compare", "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0 and "--readme" in done.stdout, done.stderr[-2000:]
