import pytest
from scipy.stats import binom

from fsw.errors import ConfigError
from fsw.verify import p_value, theta

# The thresholds at z = 0.05 stated in the paper (l=100 -> 42) and the table.
PAPER_TABLE = {10: 2, 20: 6, 50: 19, 100: 42, 200: 88, 500: 232, 1000: 474}


@pytest.mark.parametrize("key_size,expected", PAPER_TABLE.items())
def test_theta_table(key_size, expected):
    assert theta(key_size, 0.05) == expected


@pytest.mark.parametrize("key_size", [2, 10, 37, 100, 500])
@pytest.mark.parametrize("z", [0.01, 0.05, 0.2])
def test_theta_is_the_largest_with_tail_below_z(key_size, z):
    t = theta(key_size, z)
    assert t == 0 or binom.cdf(t - 1, key_size, 0.5) < z
    assert binom.cdf(t, key_size, 0.5) >= z


def test_p_value_exact():
    assert p_value(0, 10) == pytest.approx(1 / 1024)
    assert p_value(50, 100) == pytest.approx(0.5397946186935894)
    assert p_value(10, 10) == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [{"key_size": 0, "z": 0.05}, {"key_size": 10, "z": 0.0}, {"key_size": 10, "z": 1.5}])
def test_theta_rejects_bad_input(bad):
    with pytest.raises(ConfigError):
        theta(**bad)


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
