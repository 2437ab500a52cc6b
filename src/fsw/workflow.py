"""Glue between a Snakemake job and a stage: paths from Snakemake, parameters from Hydra."""

from __future__ import annotations

import os
import sys

from fsw.cli import stage_run
from fsw.config import compose


def run_stage(snakemake, stage: str, **paths) -> dict:
    """Run `stage` for a Snakemake job: log to the job's log file, compose its Hydra config from the
    rule's `params.overrides` plus the given paths and the job's threads, and call the stage's run()."""
    if snakemake.log:
        log = open(snakemake.log[0], "w", buffering=1)
        sys.stdout.flush()
        sys.stderr.flush()
        # Redirect at the descriptor level so that output of C extensions and subprocesses lands too.
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    overrides = list(snakemake.params.overrides) + [f"{name}={_hydra_value(v)}" for name, v in paths.items()]
    if stage != "report":
        overrides.append(f"threads={snakemake.threads}")
    cfg = compose(stage, overrides)
    return stage_run(stage)(cfg)


def _hydra_value(value) -> str:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "Namedlist":
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)
