"""Where the benchmarks write: one committed file per CPU model, docs/benchmarks/<cpu-model>.json,
each benchmark's result under its own name, with the CPU's model and speed flags and the date."""

from __future__ import annotations

import datetime
import json
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

import torch

from fsw.io import write_json
from fsw.report.sweep import cpu_info

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "docs" / "benchmarks"


def cpu_file(folder: Path = FOLDER) -> Path:
    """This machine's file: its CPU model and speed flags as a file name (two CPUs of one model
    name but different flags get two files)."""
    cpu = cpu_info()
    name = f"{cpu['cpu_model']} {cpu['cpu_flags']}".strip()
    return folder / (re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() + ".json")


def commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def record(name: str, result: dict, folder: Path = FOLDER) -> Path:
    """Put `result` under `name` in this CPU's file, keeping the other benchmarks' results there."""
    path = cpu_file(folder)
    measured = json.loads(path.read_text()) if path.is_file() else {}
    measured.update({"cpu_model": cpu_info()["cpu_model"], "cpu_flags": cpu_info()["cpu_flags"],
                     "cpus": os.cpu_count()})
    measured[name] = {"date": datetime.date.today().isoformat(), "commit": commit(), "torch": torch.__version__,
                      "load_average_1min": round(os.getloadavg()[0], 2), **result}
    write_json(path, measured)
    return path


def latency_ms(action, repeats: int) -> dict:
    """Median, 95th percentile and fastest of `repeats` timed calls of action, after one untimed
    call (first-call allocations; an HTTP client opens its connection there)."""
    action()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2),
            "min_ms": round(times[0], 2), "repeats": repeats}
