"""The stages and their Hydra configs, importable without torch: the command line lists the stages,
and the workflow composes their configs to check a sweep's overrides before any job runs."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from fsw.errors import ConfigError


class Stage(NamedTuple):
    module: str  # whose run(cfg) does the stage's work; the Hydra primary config has the stage's name
    summary: str  # one line for `fsw --help`


STAGES = {
    "train": Stage("fsw.train", "train a network option on a split of MNIST"),
    "keygen": Stage("fsw.keygen", "make a key from a model: adversaries near its decision frontier"),
    "embed": Stage("fsw.embed", "stitch a key into a model by fine-tuning: the marked model"),
    "attack": Stage("fsw.attack", "run removal attacks on a marked model"),
    "verify": Stage("fsw.verify", "query a suspect model with a key and decide whether it is marked"),
    "report": Stage("fsw.report", "tables, figures and the report from verification records"),
    "serve": Stage("fsw.oracle.server", "serve a model behind a label-only HTTP API"),
    "extract": Stage("fsw.extract", "train a surrogate model through a label-only API"),
    "figure1": Stage("fsw.figure1", "the paper's Figure 1: a 2-D frontier before and after stitching"),
}


def config_dir() -> Path:
    """The Hydra config tree: `FSW_CONFIG_DIR` when set, else the package's own `conf/` folder."""
    override = os.environ.get("FSW_CONFIG_DIR")
    path = Path(override) if override else resources.files("fsw") / "conf"
    # Hydra reads configs from a folder: a zipped fsw (never what pip installs) has none
    if not isinstance(path, Path) or not path.is_dir():
        raise ConfigError(f"Hydra config folder not found: {path} (set FSW_CONFIG_DIR)")
    return path


def compose(stage: str, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The composed config of `stage` with command-line style `overrides`, as `fsw STAGE` would see it."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return hydra_compose(config_name=stage, overrides=list(overrides))
