"""The training module's optimizer settings."""

import pytest
from torch import nn

from fsw.classifier import Classifier


def test_without_one_cycle_the_learning_rate_is_constant():
    optimizer = Classifier(nn.Linear(4, 2), "sgd", 0.1).configure_optimizers()
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_the_logged_train_loss_is_the_epochs_mean_before_epoch_end_callbacks_read_it():
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    net = nn.Linear(4, 2)
    expected = sum(F.cross_entropy(net(x[i:i + 10]), y[i:i + 10]).item() for i in range(0, 40, 10)) / 4

    class Seen(pl.Callback):
        def on_train_epoch_end(self, trainer, module):
            self.loss = trainer.callback_metrics["train/loss"].item()

    seen = Seen()
    trainer = pl.Trainer(max_epochs=1, callbacks=[seen], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(Classifier(net, "sgd", 0.0), DataLoader(TensorDataset(x, y), batch_size=10))  # lr 0: fixed net
    assert seen.loss == pytest.approx(expected)


def test_one_cycle_rises_to_lr_then_anneals_to_almost_zero_over_all_steps():
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    class Rates(pl.Callback):
        def __init__(self):
            self.seen = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    rates = Rates()
    trainer = pl.Trainer(max_epochs=2, callbacks=[rates], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    data = DataLoader(TensorDataset(torch.randn(200, 4), torch.randint(0, 2, (200,))), batch_size=10)
    trainer.fit(Classifier(nn.Linear(4, 2), "adam", 3e-3, one_cycle=True), data)
    peak = max(range(len(rates.seen)), key=rates.seen.__getitem__)
    assert len(rates.seen) == 40 and rates.seen[peak] == pytest.approx(3e-3, rel=0.01)
    assert 0.25 * 40 <= peak <= 0.35 * 40  # warm-up over the first 30% of the steps
    assert rates.seen[0] < 3e-3 / 20 and rates.seen[-1] < 3e-3 / 100


@pytest.mark.parametrize("native", [True, False])
def test_bf16_mixed_is_kept_only_where_the_device_computes_bfloat16_natively(monkeypatch, caplog, native):
    import torch

    from fsw.config import training_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert training_precision("bf16-mixed", "auto") == ("bf16-mixed" if native else "32-true")
    assert ("no native bfloat16" in caplog.text) is not native
    assert training_precision("32-true", "auto") == "32-true"


def test_a_network_trains_in_its_groups_precision_and_is_saved_in_float32(monkeypatch, tmp_path):
    import torch

    from fsw import train
    from fsw.io import load_model, read_json
    from tests.conftest import tiny

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)  # bf16 runs anywhere, if slowly
    seen = set()
    original = nn.Linear.forward

    def recording(self, x):
        out = original(self, x)
        if self.training:
            seen.add(out.dtype)
        return out

    monkeypatch.setattr(nn.Linear, "forward", recording)
    train.run(tiny("train", "network=mlp", "network.epochs=1", "network.arch.hidden=16", "network.precision=bf16-mixed",
                   f"model_out={tmp_path}/m.pt", f"metrics_out={tmp_path}/m.json"))
    assert seen == {torch.bfloat16}
    assert read_json(tmp_path / "m.json")["precision"] == "bf16-mixed"
    net, _, _ = load_model(tmp_path / "m.pt")
    assert {p.dtype for p in net.parameters()} == {torch.float32}


def _fit_one_epoch(module, x, y, batch_size):
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=batch_size))


@pytest.mark.parametrize("clip", [None, 0.05])
def test_a_lightning_epoch_takes_the_same_steps_as_a_plain_torch_loop(clip):
    import copy

    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    x, y = 10 * torch.randn(40, 4), torch.randint(0, 3, (40,))
    net = nn.Linear(4, 3)
    plain = copy.deepcopy(net)
    optimizer = torch.optim.SGD(plain.parameters(), lr=0.5)
    for i in range(0, 40, 10):
        optimizer.zero_grad()
        F.cross_entropy(plain(x[i:i + 10]), y[i:i + 10]).backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(plain.parameters(), clip)
        optimizer.step()
    _fit_one_epoch(Classifier(net, "sgd", 0.5, gradient_clip_val=clip), x, y, 10)
    for trained, expected in zip(net.parameters(), plain.parameters()):
        assert torch.allclose(trained, expected, atol=1e-6)


def test_gradient_clipping_caps_the_norm_of_each_step():
    import copy

    import torch

    torch.manual_seed(0)
    x, y = 100 * torch.randn(10, 4), torch.randint(0, 3, (10,))
    for clip in (None, 0.01):
        net = nn.Linear(4, 3)
        start = copy.deepcopy(net)
        _fit_one_epoch(Classifier(net, "sgd", 1.0, gradient_clip_val=clip), x, y, 10)  # one step of lr 1
        moved = torch.cat([(a - b).flatten() for a, b in zip(net.parameters(), start.parameters())]).norm().item()
        assert moved == pytest.approx(0.01, rel=1e-3) if clip else moved > 1.0


def test_the_network_group_sets_the_modules_optimizer_schedule_and_clipping():
    from fsw.stages import compose

    module = Classifier.for_network(nn.Linear(4, 2), compose("train", ["network=irnn"]).network)
    assert (module.optimizer_name, module.lr, module.one_cycle, module.gradient_clip_val) == ("adam", 3e-3, True, 1.0)
