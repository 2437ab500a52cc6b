"""Glue between a Snakemake job and a stage: paths from Snakemake, parameters from Hydra."""

from __future__ import annotations

import os
import sys

from fsw import worker


def run_stage(snakemake, stage: str, **paths) -> None:
    """Run `stage` once for a Snakemake job (see run_stage_many)."""
    run_stage_many(snakemake, stage, [([], paths)])


def run_stage_many(snakemake, stage: str, runs: list[tuple[list[str], dict]]) -> None:
    """Run `stage` for a Snakemake job once per (extra overrides, paths) in `runs`: log to the job's
    log file, compose each Hydra config from the rule's `params.overrides`, the run's own overrides
    and paths, and the job's threads, and call the stage's run(), in a fork of the sweep's warm
    worker when there is one (fsw.worker). One job for many small runs pays its start once
    (verification of one key against two dozen models)."""
    usage_out = None
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)
        sys.stdout.flush()
        sys.stderr.flush()
        # Redirect at the descriptor level so that output of C extensions and subprocesses lands too.
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        usage_out = str(worker.usage_file(snakemake.log[0]))
    overrides = []
    for extra, paths in runs:
        overrides.append(list(snakemake.params.overrides) + list(extra)
                         + [f"{name}={_hydra_value(v)}" for name, v in paths.items()]
                         + ([f"threads={snakemake.threads}"] if stage != "report" else []))
    worker.run(stage, overrides, usage_out)


def _hydra_value(value) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Namedlist":
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)
