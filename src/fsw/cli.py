"""`fsw STAGE [key=value ...]`: one stage of the workflow, with its Hydra config and overrides."""

from __future__ import annotations

import argparse
import importlib
import sys

import hydra
from omegaconf import DictConfig

from fsw import __version__
from fsw.errors import FswError
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


def main() -> None:
    args, hydra_args = parser().parse_known_args()
    run = stage_run(args.stage)
    sys.argv = [f"fsw {args.stage}", *hydra_args]  # where hydra.main reads its arguments

    @hydra.main(config_path=str(config_dir()), config_name=args.stage, version_base="1.3")
    def entry(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except FswError as exc:
            print(f"fsw {args.stage}: error: {exc}", file=sys.stderr)
            sys.exit(1)

    entry()
