"""Magnitude pruning (torch.nn.utils.prune): zero the smallest weights, globally or per layer."""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn
from torch.nn.utils import prune

from fsw.data import Split
from fsw.networks import weight_parameters


def prune_weights(
    net: nn.Module, level: float, cfg: DictConfig, data: Split, *, global_threshold: bool
) -> tuple[nn.Module, dict]:
    """Zero the `level` fraction of smallest-magnitude weights (biases are kept).

    With `global_threshold` one magnitude threshold is shared by all layers (layers end up with
    different sparsities); otherwise each weight tensor loses the `level` fraction of its own.
    """
    weights = weight_parameters(net)
    targets = [
        (net.get_submodule(path), attr) for path, _, attr in (n.rpartition(".") for n, _ in weights)
    ]
    if global_threshold:
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=float(level))
    else:
        for module, attr in targets:
            prune.l1_unstructured(module, attr, amount=float(level))
    for module, attr in targets:
        prune.remove(module, attr)  # fold the mask in: plain weights under their original names
    zeros = {name: int((param == 0).sum()) for name, param in weight_parameters(net)}
    sizes = {name: param.numel() for name, param in weight_parameters(net)}
    return net, {
        "sparsity": sum(zeros.values()) / sum(sizes.values()),
        "layer_sparsity": {name: zeros[name] / sizes[name] for name in zeros},
    }

