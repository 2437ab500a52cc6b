"""Adversarial examples against one model or several: FGSM (the paper's key items, the attacker's
augmentation) and a margin PGD that fools some models while keeping others right (the `transfer`
key strategy)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fsw.inference import device_of


def fgsm(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """x' = clip(x + eps * sign(grad_x CE(net(x), y)), 0, 1), with the network in eval mode."""
    net.eval()
    device = device_of(net)
    x = x.to(device).clone().requires_grad_(True)
    loss = F.cross_entropy(net(x), y.to(device))
    (grad,) = torch.autograd.grad(loss, x)
    return (x + eps * grad.sign()).clamp_(0.0, 1.0).detach().cpu()


def margins(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """logit of the label minus the largest other logit: positive iff `net` answers y."""
    logits = net(x)
    own = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return own - others.max(1).values


def margin_pgd(
    fool: Sequence[nn.Module], keep: Sequence[nn.Module], x: torch.Tensor, y: torch.Tensor, eps: float,
    *, steps: int, kappa: float, generator: torch.Generator,
) -> torch.Tensor:
    """Projected gradient steps within the L-inf ball of radius eps (random start) that push every
    model of `fool` to answer another label than y by a margin kappa, and every model of `keep` to
    answer y by kappa. Each model's margin is clipped at kappa, so models already fooled (or kept)
    stop pulling and the step goes to the others (a C&W-style loss over an ensemble)."""
    for net in (*fool, *keep):
        net.eval().requires_grad_(False)
    step = 2.5 * eps / steps
    delta = (torch.rand(x.shape, generator=generator) * 2.0 - 1.0) * eps
    for _ in range(steps):
        probe = (x + delta).clamp(0.0, 1.0).requires_grad_(True)
        loss = sum(margins(net, probe, y).clamp(min=-kappa).sum() for net in fool) / max(len(fool), 1)
        for net in keep:
            loss = loss + (kappa - margins(net, probe, y)).clamp(min=0.0).sum()
        (grad,) = torch.autograd.grad(loss, probe)
        delta = (delta - step * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0.0, 1.0).detach()
