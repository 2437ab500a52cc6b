"""The LightningModule that trains any fsw network, and plain-torch inference helpers."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from torch import nn

# Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1 when imported, so that asking whether CUDA is
# available cannot initialise CUDA in a process that forks later. Every Adam step asks, and with the
# variable set each answer loads libnvidia-ml anew: ~1 ms per step on this CPU, 10% of an MLP step
# (measured). fsw never forks after touching CUDA (its loaders have no worker processes), so it
# restores torch's default check, which is answered once and cached.
os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)

# Adam's fused kernel updates all parameters in one call: ~12% of an MLP epoch less on the CPU than
# its default loop over parameters (measured), the same update up to rounding.
OPTIMIZERS = {
    "adam": functools.partial(torch.optim.Adam, fused=True),
    "adadelta": torch.optim.Adadelta,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
}


@dataclass(frozen=True)
class Augment:
    """How a training batch is changed before the step: `fgsm` adds the FGSM adversarial example of
    every image at step `eps` (Goodfellow et al. 2015's adversarial training, clean and adversarial
    halves); `noise` adds Gaussian noise of std `sigma`, clipped to [0, 1]. Both make models more
    robust near their training images: null models of the kind that answer small-eps key items as a
    marked model does."""

    kind: str = "none"
    eps: float = 0.1
    sigma: float = 0.3

    def __post_init__(self):
        if self.kind not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {self.kind!r}; known: {', '.join(AUGMENTATIONS)}")

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "fgsm":
            probe = x.detach().clone().requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(net(probe), y), probe)
            adversarial = (x + self.eps * grad.sign()).clamp_(0.0, 1.0)
            return torch.cat([x, adversarial]), torch.cat([y, y])
        if self.kind == "noise":
            return (x + self.sigma * torch.randn_like(x)).clamp_(0.0, 1.0), y
        return x, y


AUGMENTATIONS = ("none", "fgsm", "noise")


class Classifier(pl.LightningModule):
    """Cross-entropy training of `net`; logs the epoch's mean train/loss, val/acc and test/acc.

    `gradient_clip_val` caps the gradients' total 2-norm before each step (none when None)."""

    def __init__(self, net: nn.Module, optimizer: str = "adam", lr: float = 1e-3, one_cycle: bool = False,
                 gradient_clip_val: float | None = None, augment: Augment | None = None):
        super().__init__()
        # Lightning's automatic optimization runs each step as a closure that the optimizer calls,
        # with a dozen hooks around it: 0.04-0.15 ms per step more than training_step's own three
        # calls (measured on the MLP and IRNN; an MLP step is ~3.4 ms on a fast CPU). Lightning
        # still runs the loop, precision, logging and stopping.
        self.automatic_optimization = False
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        # Lightning keeps the train/eval mode it is handed, and loaded models arrive in eval mode.
        self.net = net.train()
        self.optimizer_name = optimizer
        self.lr = lr
        self.one_cycle = one_cycle
        self.gradient_clip_val = gradient_clip_val
        self.augment = augment or Augment()

    @classmethod
    def for_network(cls, net: nn.Module, group: DictConfig) -> Classifier:
        """The module that trains `net` with a `network` config group's optimizer, rate, schedule and clipping."""
        augment = group.get("augment")
        return cls(net, group.optimizer, group.lr, group.one_cycle, group.gradient_clip_val,
                   Augment(**augment) if augment else None)

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets _current_fx_name (a string) before and after each of the ~20 hooks of a
        # step; nn.Module's __setattr__ first checks whether a value is a parameter, module or
        # buffer: ~0.4 ms per step (measured), half of Lightning's overhead on a CPU MLP step.
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)

    def training_step(self, batch, batch_idx):
        x, y = self.augment(self.net, *batch)
        optimizer = self.optimizers()
        loss = F.cross_entropy(self.net(x), y)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        if self.one_cycle:
            self.lr_schedulers().step()
        # The epoch's mean loss, logged once at its last batch (before the epoch-end callbacks read
        # it): self.log in every step costs ~0.75 ms (measured), a tenth of an MLP step on the CPU.
        # As an epoch metric, it reaches the loggers once per epoch, beside val/acc.
        self._loss_sum += loss.detach()
        if batch_idx + 1 == self.trainer.num_training_batches:
            self.log("train/loss", self._loss_sum / (batch_idx + 1), prog_bar=True,
                     on_step=False, on_epoch=True)

    def on_before_optimizer_step(self, optimizer) -> None:
        # Lightning calls this hook after a float16 loss scaler has unscaled the gradients, so the
        # norm clipped is that of the true gradients.
        if self.gradient_clip_val is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.gradient_clip_val, gradient_clip_algorithm="norm")

    def _accuracy(self, batch, name: str) -> None:
        x, y = batch
        acc = (self.net(x).argmax(1) == y).float().mean()
        self.log(name, acc, prog_bar=True, batch_size=len(y))

    def validation_step(self, batch, batch_idx):
        self._accuracy(batch, "val/acc")

    def test_step(self, batch, batch_idx):
        self._accuracy(batch, "test/acc")

    def configure_optimizers(self):
        optimizer = OPTIMIZERS[self.optimizer_name](self.net.parameters(), lr=self.lr)
        if self.one_cycle:
            # lr is the peak: warm up over the first 30% of all steps, then anneal to ~0 (Smith's
            # one-cycle policy, PyTorch's defaults); momentum cycles only where the optimizer has one.
            # training_step steps it.
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.lr, total_steps=int(self.trainer.estimated_stepping_batches),
                cycle_momentum=self.optimizer_name != "adadelta",
            )
            return [optimizer], [scheduler]
        return optimizer
