"""The paper's three MNIST networks, as in the Keras examples it used, the other architectures of the
null-model populations (LeNet-5, a small CNN; the MLP also gives linear models and other widths and
depths), and a name -> class registry. Every network's last layer is `classifier`, which the
fine-tuning attacks retrain."""

from __future__ import annotations

import torch
from torch import nn

from fsw import grid
from fsw.errors import ModelFileError
from fsw.validate import ARCH_RULES, record_problems

NUM_CLASSES = 10
INPUT_SHAPE = (1, 28, 28)


class MLP(nn.Module):
    """Keras `mnist_mlp`: 784-512-512-10, ReLU, dropout 0.2; `depth` hidden layers of `hidden` units
    (depth 0: a linear model, multinomial logistic regression)."""

    def __init__(self, hidden: int = 512, dropout: float = 0.2, depth: int = 2):
        super().__init__()
        if depth < 0:
            raise ValueError(f"MLP depth must be >= 0, got {depth}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = 28 * 28
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class ChannelsLastConv2d(nn.Conv2d):
    """A Conv2d that computes in channels-last memory format (faster on CPUs) while its weight is
    stored in the default format, as code that flattens parameters with `.view` expects."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight.contiguous(memory_format=torch.channels_last), self.bias)


class CNN(nn.Module):
    """Keras `mnist_cnn`: conv32-conv64 3x3, maxpool 2, dropout .25, dense 128, dropout .5, dense 10.

    Laid out for speed without changing the function or its gradients: the convolutions compute
    in channels-last format, and the max-pool comes before the second ReLU (the two commute, and
    the ReLU then sees a quarter of the values). On one CPU thread that takes a training step to
    0.90-0.94x and inference to 0.60-0.76x of the Keras order's time (benchmarks/bench_cnn.py).
    """

    def __init__(self, dropout_conv: float = 0.25, dropout_dense: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            ChannelsLastConv2d(1, 32, 3),
            nn.ReLU(),
            ChannelsLastConv2d(32, 64, 3),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Dropout(dropout_conv),
            nn.Flatten(),
            nn.Linear(64 * 12 * 12, 128),
            nn.ReLU(),
            nn.Dropout(dropout_dense),
        )
        self.classifier = nn.Linear(128, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class IRNN(nn.Module):
    """Keras `mnist_irnn` (Le, Jaitly & Hinton 2015): a ReLU SimpleRNN with identity recurrent weights.

    `mode="rows"` reads the image as 28 steps of 28 pixels; `mode="pixels"` as 784 steps of 1 pixel,
    as in the Keras example (much slower).
    """

    def __init__(self, hidden: int = 100, mode: str = "rows"):
        super().__init__()
        if mode not in ("rows", "pixels"):
            raise ValueError(f"IRNN mode must be 'rows' or 'pixels', got {mode!r}")
        self.mode = mode
        self.rnn = nn.RNN(28 if mode == "rows" else 1, hidden, nonlinearity="relu", batch_first=True)
        nn.init.normal_(self.rnn.weight_ih_l0, std=0.001)
        nn.init.eye_(self.rnn.weight_hh_l0)
        nn.init.zeros_(self.rnn.bias_ih_l0)
        nn.init.zeros_(self.rnn.bias_hh_l0)
        self.classifier = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.reshape(len(x), 28, 28) if self.mode == "rows" else x.reshape(len(x), 28 * 28, 1)
        _, last = self.rnn(steps)
        return self.classifier(last[-1])


def weight_parameters(net: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The weight matrices and conv kernels of `net` (biases excluded): what the removal attacks alter.

    Every tensor with two or more dimensions is one: dense and conv weights and the RNN's input
    and recurrent matrices.
    """
    return [(name, param) for name, param in net.named_parameters() if param.dim() > 1]


class LeNet5(nn.Module):
    """LeCun et al. (1998) as usually written today: conv6 5x5 (padded) - pool - conv16 5x5 - pool -
    dense 120 - 84 - 10, ReLU and max-pooling."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            ChannelsLastConv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            ChannelsLastConv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        )
        self.classifier = nn.Linear(84, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SmallCNN(nn.Module):
    """A CNN of another shape than the paper's: conv16 3x3 - pool - conv32 3x3 - pool - dense 64 - 10."""

    def __init__(self, width: int = 16, dense: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            ChannelsLastConv2d(1, width, 3), nn.ReLU(), nn.MaxPool2d(2),
            ChannelsLastConv2d(width, 2 * width, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * width * 5 * 5, dense), nn.ReLU(),
        )
        self.classifier = nn.Linear(dense, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


NETWORKS: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN, "irnn": IRNN, "lenet5": LeNet5, "small_cnn": SmallCNN}
assert tuple(NETWORKS) == grid.ARCHITECTURES, "fsw.grid.ARCHITECTURES names the networks built here"


def build_network(arch: dict) -> nn.Module:
    """Build a network from its description, e.g. {"name": "irnn", "hidden": 100, "mode": "rows"}."""
    arch = dict(arch)
    name = arch.pop("name", None)
    if name not in NETWORKS:
        raise ModelFileError(f"unknown network {name!r}; known networks: {', '.join(NETWORKS)}")
    problems = record_problems(arch, ARCH_RULES, "arch", closed=True)
    if problems:
        raise ModelFileError(f"bad hyper-parameters for network {name!r}: {'; '.join(problems)}")
    try:
        return NETWORKS[name](**arch)
    except (TypeError, ValueError, RuntimeError) as exc:  # RuntimeError: e.g. a negative layer size
        raise ModelFileError(f"bad hyper-parameters for network {name!r}: {arch} ({exc})") from exc
