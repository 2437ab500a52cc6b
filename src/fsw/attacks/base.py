"""What every removal attack is: a name, the levels it accepts, and one function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig
from torch import nn

from fsw.data import Split

AttackFunction = Callable[[nn.Module, float, DictConfig, Split], tuple[nn.Module, dict]]


@dataclass(frozen=True)
class Attack:
    """A removal attack: `apply(net, level, cfg, data) -> (attacked net, measurements)`.

    `net` is a private copy the attack may modify; `level` has passed `accepts`; `cfg` is the attack
    stage's config (the attack's settings under `cfg.attack`, plus `cfg.trainer` and `cfg.seed`);
    `data` is the attacker's split, disjoint from the owner's. No attack is given the key.
    """

    name: str
    level_meaning: str  # what the level is and which values are allowed, shown in errors
    accepts: Callable[[float], bool]
    apply: AttackFunction


def is_whole(level: float) -> bool:
    return float(level).is_integer()


def weight_parameters(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weight matrices and conv kernels of `net` (biases excluded): what the attacks alter.

    Every tensor with two or more dimensions is one: dense and conv weights and the RNN's input
    and recurrent matrices.
    """
    return [(name, param) for name, param in net.named_parameters() if param.dim() > 1]
