"""`fsw STAGE [hydra overrides...]`: the Hydra entry point of each stage."""

from __future__ import annotations

import importlib
import sys

import hydra
from omegaconf import DictConfig

from fsw.config import STAGES, config_dir
from fsw.errors import FswError

def stage_run(stage: str):
    return importlib.import_module(STAGES[stage]).run


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in STAGES:
        print(f"usage: fsw {{{','.join(STAGES)}}} [key=value ...]  (Hydra overrides; --help per stage)",
              file=sys.stderr)
        sys.exit(2)
    stage = sys.argv.pop(1)
    run = stage_run(stage)

    @hydra.main(config_path=str(config_dir()), config_name=stage, version_base="1.3")
    def entry(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except FswError as exc:
            print(f"fsw {stage}: error: {exc}", file=sys.stderr)
            sys.exit(1)

    entry()
