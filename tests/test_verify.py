"""Verification helpers that are not statistics (those are in test_stats.py)."""


def test_recorded_test_accuracy_is_used_only_for_a_test_set_of_its_size():
    import torch

    from fsw.inference import accuracy, test_accuracy, test_accuracy_meta

    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = torch.randn(50, 1, 2, 2), torch.randint(0, 3, (50,))
    recorded = test_accuracy_meta(0.123, y)
    assert recorded == {"test_acc": 0.123, "test_size": 50}
    assert test_accuracy(net, recorded, x, y) == 0.123
    assert test_accuracy(net, recorded, x[:40], y[:40]) == accuracy(net, x[:40], y[:40])
    assert test_accuracy(net, {}, x, y) == accuracy(net, x, y)
