"""Where the benchmarks write: one committed file per CPU model, docs/benchmarks/<cpu-model>.json,
each benchmark's result under its own name, with the CPU's model and speed flags and the date."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
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
