"""Weight quantization, simulated: every weight is rounded to the grid it would be stored on and
kept as float32 (quantize-dequantize), so the model keeps its architecture and file format.

Level 16 rounds to IEEE float16. Levels 2..8 round each output channel (row) to a symmetric
uniform grid of 2^(bits-1) - 1 steps either side of zero, scaled by the channel's largest |w|
(per-channel post-training quantization). Biases stay float32, as integer inference keeps them
at higher precision.
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig
from torch import nn

from fsw.attack import FLOAT16_BITS
from fsw.data import Split
from fsw.networks import weight_parameters


def uniform_per_channel(weight: torch.Tensor, bits: int) -> torch.Tensor:
    steps = 2 ** (bits - 1) - 1
    # An all-zero row keeps a tiny scale instead of dividing by zero.
    largest = weight.abs().flatten(1).amax(1).clamp_min(torch.finfo(weight.dtype).tiny)
    scale = (largest / steps).view(-1, *[1] * (weight.dim() - 1))
    return (weight / scale).round().clamp(-steps, steps) * scale


def levels_per_channel(weight: torch.Tensor) -> int:
    """The most distinct values in one output channel of `weight`."""
    return max(len(row.unique()) for row in weight.flatten(1))


def quantize(net: nn.Module, level: float, cfg: DictConfig, data: Split) -> tuple[nn.Module, dict]:
    bits = int(level)
    weights = [weight for _, weight in weight_parameters(net)]
    with torch.no_grad():
        for weight in weights:
            if bits == FLOAT16_BITS:
                weight.copy_(weight.half().float())
            else:
                weight.copy_(uniform_per_channel(weight, bits))
    if bits == FLOAT16_BITS:
        return net, {"bits": bits, "format": "float16"}
    most = max(levels_per_channel(weight) for weight in weights)
    return net, {
        "bits": bits,
        "format": "int",
        "max_levels_per_channel": most,
        "bits_used": math.ceil(math.log2(most)),
    }
