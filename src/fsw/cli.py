"""`fsw STAGE [key=value ...]`: one stage of the workflow, with its Hydra config and overrides;
`fsw STAGE -m ...` runs a multirun, one job per combination of the swept values."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fsw import __version__
from fsw.errors import ConfigError, FswError
from fsw.stages import STAGES, config_dir


def stage_run(stage: str):
    return importlib.import_module(STAGES[stage].module).run


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fsw",
        description="Frontier-stitching watermarking of MNIST classifiers: run one stage.",
        epilog="A stage takes Hydra overrides (key=value ...); `fsw STAGE --help` shows its config.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    stages = parser.add_subparsers(dest="stage", metavar="STAGE", required=True)
    for name, stage in STAGES.items():
        # no options of its own: everything after the stage's name goes to Hydra, --help included
        stages.add_parser(name, help=stage.summary, add_help=False)
    return parser


def output_paths(cfg: DictConfig) -> list[str]:
    """Where a stage's config says it writes: its *_out keys, verify's `out`, and the training
    stages' `log_dir`, whose metrics.csv the next job's logger would delete. (A shared
    checkpoint_dir is safe: each job's checkpoint has a folder of its own there.)"""
    return [os.path.abspath(cfg[name]) for name in cfg
            if (name.endswith("_out") or name in ("out", "log_dir"))
            and not OmegaConf.is_missing(cfg, name) and cfg[name]]


def claim_outputs(cfg: DictConfig, claimed: dict[str, str]) -> None:
    """Refuse a job of a multirun whose outputs an earlier job of it wrote: with the same paths,
    `-m network=mlp,linear` would leave only the last job's model. `claimed` maps each path written
    so far to its job (Hydra's basic launcher runs the jobs one after the other in this process)."""
    hydra_cfg = HydraConfig.get()
    this = f"job #{hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task)})"
    for path in output_paths(cfg):
        if path in claimed:
            raise ConfigError(f"{this} would overwrite {path}, written by {claimed[path]}: give each job of a "
                              "multirun its own paths, e.g. model_out=out/${network.name}/model.pt")
        claimed[path] = this


def main() -> None:
    args, hydra_args = parser().parse_known_args()
    run = stage_run(args.stage)
    sys.argv = [f"fsw {args.stage}", *hydra_args]  # where hydra.main reads its arguments
    claimed: dict[str, str] = {}

    @hydra.main(config_path=str(config_dir()), config_name=args.stage, version_base="1.3")
    def entry(cfg: DictConfig) -> None:
        try:
            if HydraConfig.get().mode == RunMode.MULTIRUN:
                claim_outputs(cfg, claimed)
            run(cfg)
        except FswError as exc:
            print(f"fsw {args.stage}: error: {exc}", file=sys.stderr)
            sys.exit(1)

    entry()
