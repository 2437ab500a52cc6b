# fsw: frontier-stitching watermarking, train -> keygen -> embed -> verify -> report.
# The sweep grid is config/config.yaml (validated by workflow/schemas/config.schema.yaml); every
# stage's parameters are Hydra configs under src/fsw/conf/. Run: snakemake --cores N
from pathlib import Path

from snakemake.utils import min_version, validate

import fsw.worker
from fsw.sweep_config import check_sweep_keys

min_version("9.0")


configfile: Path(workflow.basedir) / "config" / "config.yaml"


SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
# A misspelled key, at any depth, named with the nearest valid one; the schema's own message would not.
check_sweep_keys(config, SCHEMA)
validate(config, SCHEMA)

report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/keygen.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/attack.smk"
include: "workflow/rules/verify.smk"
include: "workflow/rules/extract.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/figure1.smk"


# The warm worker (fsw.worker), for jobs that run here as plain processes on CPUs: a worker that
# imported CUDA could not hand it to its forks, and conda jobs have a Python of their own.
WORKER_HERE = workflow.local_exec and workflow.is_main_process and not workflow.deployment_settings.deployment_method
if config["worker"] and WORKER_HERE and not config["gpu"]:

    onstart:
        fsw.worker.start(Path(LOGS) / "worker.log")


rule all:
    input:
        rules.report.output,
        rules.sweep_config.output,
        rules.figure1.output,
    default_target: True
