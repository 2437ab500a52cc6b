"""What the sweep cost: run time per rule from Snakemake's benchmark files, and the machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pandas as pd


def benchmark_jobs(benchmarks_dir: str | Path) -> pd.DataFrame:
    """One row per benchmarked job: its rule (the first folder, or the file's name, under
    benchmarks_dir), its run time and CPU time (columns s and cpu_time of Snakemake's benchmark
    file), and when its benchmark file was written."""
    root = Path(benchmarks_dir)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        measured = pd.read_csv(path, sep="\t").iloc[0]
        rows.append({"rule": Path(path.relative_to(root).parts[0]).stem, "s": float(measured["s"]),
                     "cpu_s": float(measured["cpu_time"]), "finished": path.stat().st_mtime})
    return pd.DataFrame(rows, columns=["rule", "s", "cpu_s", "finished"])


def runtime_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: benchmarked jobs, their run time (total, mean, longest) and CPU time, in seconds."""
    table = jobs.groupby("rule").agg(jobs=("s", "count"), total_s=("s", "sum"), mean_s=("s", "mean"),
                                     max_s=("s", "max"), cpu_s=("cpu_s", "sum"))
    return table.round(2).reset_index()


def machine_table() -> pd.DataFrame:
    """The machine the report ran on (the sweep's, when both ran in one `snakemake` call)."""
    return pd.DataFrame([{"cpus": os.cpu_count(), "platform": platform.platform(), "machine": platform.machine(),
                          "python": platform.python_version()}])


# --------------------------------------------------------------------------------------------------
