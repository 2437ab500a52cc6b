"""Attack `none`: the attack-free baseline, run through the same stage as every attack."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from fsw.attacks.base import Attack
from fsw.data import Split


def identity(net: nn.Module, level: float, cfg: DictConfig, data: Split) -> tuple[nn.Module, dict]:
    return net, {}


ATTACKS = (Attack("none", "0 (the model is left unchanged)", lambda level: level == 0, identity),)
