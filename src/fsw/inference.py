"""Plain-torch inference: top-1 labels and accuracy of a network, without Lightning.

Kept apart from fsw.classifier so that label-only stages (verify, keygen, serve) do not pay
Lightning's import time in every job.
"""

from __future__ import annotations

import torch
from torch import nn

# Images per forward pass when only labels are wanted. Small enough for a CNN's activations to stay
# in the CPU's cache: the paper's CNN labels 10k images in 5 s at 100 per batch and in 16.5 s at
# 1000 on one thread here (measured); the MLP and IRNN take the same time either way.
INFERENCE_BATCH = 100


def device_of(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


@torch.no_grad()
def predict(net: nn.Module, x: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> torch.Tensor:
    """Top-1 labels of `net` in eval mode (dropout off), on the CPU."""
    was_training = net.training
    net.eval()
    device = device_of(net)
    labels = [net(chunk.to(device)).argmax(1).cpu() for chunk in x.split(batch_size)]
    net.train(was_training)
    return torch.cat(labels) if labels else torch.empty(0, dtype=torch.long)


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = INFERENCE_BATCH) -> float:
    if len(y) == 0:
        return float("nan")
    return (predict(net, x, batch_size) == y).float().mean().item()


def test_accuracy(net: nn.Module, meta: dict, x: torch.Tensor, y: torch.Tensor) -> float:
    """`net`'s accuracy on the test set (x, y): the value its model file records in `meta` (see
    `test_accuracy_meta`) when measured on as many images, else measured now. Every model is read by
    several jobs (attack, embed, verify) and a CNN takes seconds per 10k images, so the stage that
    writes a model measures it once. The recorded value is descriptive only: no decision uses it."""
    if "test_acc" in meta and meta.get("test_size") == len(y):
        return float(meta["test_acc"])
    return accuracy(net, x, y)


def test_accuracy_meta(acc: float, y: torch.Tensor) -> dict:
    """What a stage adds to a model file's metadata after measuring its test accuracy."""
    return {"test_acc": acc, "test_size": len(y)}
