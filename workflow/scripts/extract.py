from fsw.oracle.launch import serve_in_subprocess
from fsw.workflow import run_stage

with serve_in_subprocess(snakemake.input.model, "threads=1", "access_log=false", log_path=snakemake.log.server) as url:
    run_stage(snakemake, "extract", model_out=snakemake.output.model, metrics_out=snakemake.output.metrics,
              **{"remote.url": url})
