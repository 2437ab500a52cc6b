from fsw.oracle.launch import serve_in_subprocess
from fsw.workflow import run_stage

with serve_in_subprocess(snakemake.input.model, "threads=1", "access_log=false", log_path=snakemake.log.server) as url:
    run_stage(snakemake, "verify", model_in=snakemake.input.model, key_in=snakemake.input.key,
              out=snakemake.output.record, **{"remote.url": url})
