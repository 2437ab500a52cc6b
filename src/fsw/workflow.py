"""Glue between a Snakemake job and a stage: paths from Snakemake, parameters from Hydra."""

from __future__ import annotations

import os
import sys

from fsw.cli import stage_run
from fsw.stages import compose


def run_stage(snakemake, stage: str, **paths) -> dict:
    """Run `stage` once for a Snakemake job (see run_stage_many)."""
    return run_stage_many(snakemake, stage, [([], paths)])[0]


def run_stage_many(snakemake, stage: str, runs: list[tuple[list[str], dict]]) -> list[dict]:
    """Run `stage` for a Snakemake job once per (extra overrides, paths) in `runs`, in this process:
    log to the job's log file, compose each Hydra config from the rule's `params.overrides`, the
    run's own overrides and paths, and the job's threads, and call the stage's run(). One job for
    many small runs pays the imports once (verification of one key against two dozen models)."""
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)
        sys.stdout.flush()
        sys.stderr.flush()
        # Redirect at the descriptor level so that output of C extensions and subprocesses lands too.
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    run = stage_run(stage)
    results = []
    for extra, paths in runs:
        overrides = list(snakemake.params.overrides) + list(extra)
        overrides += [f"{name}={_hydra_value(v)}" for name, v in paths.items()]
        if stage != "report":
            overrides.append(f"threads={snakemake.threads}")
        results.append(run(compose(stage, overrides)))
    return results


def _hydra_value(value) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Namedlist":
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)
