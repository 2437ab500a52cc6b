"""The training module's optimizer settings."""

import pytest
from torch import nn

from fsw.classifier import Classifier


def test_lr_decay_multiplies_the_learning_rate_after_every_epoch():
    config = Classifier(nn.Linear(4, 2), "adam", 1e-3, lr_decay=0.5).configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]
    lrs = []
    for _ in range(3):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()  # Lightning steps a scheduler once per epoch by default
    assert lrs == pytest.approx([1e-3, 5e-4, 2.5e-4])


def test_no_decay_is_a_constant_learning_rate():
    optimizer = Classifier(nn.Linear(4, 2), "sgd", 0.1).configure_optimizers()
    assert optimizer.param_groups[0]["lr"] == 0.1


@pytest.mark.parametrize("lr_decay", [0.0, 1.5, -0.1])
def test_bad_lr_decay_is_refused(lr_decay):
    with pytest.raises(ValueError, match="lr_decay"):
        Classifier(nn.Linear(4, 2), "adam", 1e-3, lr_decay=lr_decay)
