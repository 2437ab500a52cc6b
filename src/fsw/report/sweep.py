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
