"""What the sweep cost: run time per rule from Snakemake's benchmark files, and the machine."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pandas as pd

from fsw.worker import usage_file


def job_costs(benchmark: str | Path, usage: str | Path | None = None) -> dict[str, float]:
    """A job's run time, CPU time and peak memory (s, cpu_s, max_rss_mb): the means over the rows of
    its Snakemake benchmark file, but CPU time and memory from the usage file of a job the warm worker
    ran (fsw.worker), whose work Snakemake's benchmark of the job's own process does not see."""
    measured = pd.read_csv(benchmark, sep="\t").mean(numeric_only=True)
    costs = {"s": float(measured["s"]), "cpu_s": float(measured["cpu_time"]), "max_rss_mb": float(measured["max_rss"])}
    if usage is not None and Path(usage).is_file():
        costs.update(json.loads(Path(usage).read_text()))
    return costs


def benchmark_jobs(benchmarks_dir: str | Path, logs_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per benchmarked job: its rule (the first folder, or the file's name, under
    benchmarks_dir), its costs (job_costs; a job's usage file is under logs_dir where its benchmark
    file is under benchmarks_dir, as its log), and when its benchmark file was written."""
    root = Path(benchmarks_dir)
    rows = []
    for path in sorted(root.rglob("*.tsv")):
        relative = path.relative_to(root)
        usage = usage_file(Path(logs_dir) / relative) if logs_dir else None
        rows.append({"rule": Path(relative.parts[0]).stem, **job_costs(path, usage), "finished": path.stat().st_mtime})
    return pd.DataFrame(rows, columns=["rule", "s", "cpu_s", "max_rss_mb", "finished"])


def runtime_table(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: benchmarked jobs, their run time (total, mean, longest) and CPU time, in seconds."""
    table = jobs.groupby("rule").agg(jobs=("s", "count"), total_s=("s", "sum"), mean_s=("s", "mean"),
                                     max_s=("s", "max"), cpu_s=("cpu_s", "sum"))
    return table.round(2).reset_index()


# The CPU features that decide how fast fsw's jobs run: AVX2 and AVX-512 for float32, native bfloat16
# (AVX512-BF16, AMX) for the CNN's bf16-mixed training.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_info(cpuinfo: str | Path = "/proc/cpuinfo") -> dict[str, str]:
    """The CPU's model name and which of SPEED_FLAGS it has (empty where /proc/cpuinfo is absent)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return {"cpu_model": platform.processor() or "unknown", "cpu_flags": ""}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name", "unknown"),
            "cpu_flags": " ".join(flag for flag in SPEED_FLAGS if flag in flags)}


def machine_table() -> pd.DataFrame:
    """The machine the report ran on (the sweep's, when both ran in one `snakemake` call)."""
    return pd.DataFrame([{"cpus": os.cpu_count(), **cpu_info(), "platform": platform.platform(),
                          "machine": platform.machine(), "python": platform.python_version()}])
