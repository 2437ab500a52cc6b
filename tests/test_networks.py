import pytest
import torch

from fsw.errors import ModelFileError
from fsw.io import load_model, save_model
from fsw.networks import NETWORKS, build_network

ARCHS = [
    {"name": "mlp", "hidden": 512, "dropout": 0.2},
    {"name": "cnn"},
    {"name": "irnn", "hidden": 100, "mode": "rows"},
    {"name": "irnn", "hidden": 8, "mode": "pixels"},
]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a['name']}-{a.get('mode', '')}")
def test_output_shape(arch):
    net = build_network(arch).eval()
    assert net(torch.rand(5, 1, 28, 28)).shape == (5, 10)


def test_paper_sizes():
    count = lambda net: sum(p.numel() for p in net.parameters())
    # Parameter counts of the Keras examples the paper used.
    assert count(build_network({"name": "mlp"})) == 669_706
    assert count(build_network({"name": "cnn"})) == 1_199_882
    irnn = build_network({"name": "irnn"})
    assert torch.equal(irnn.rnn.weight_hh_l0, torch.eye(100))  # identity recurrent initialisation


def test_the_cnns_fast_layout_computes_the_keras_networks_function_and_gradients():
    # The reference: the Keras layer order (ReLU, then max-pool) with plain, default-layout layers.
    torch.manual_seed(0)
    fast = build_network({"name": "cnn"}).eval()
    conv1, relu1, conv2, pool, relu2, *rest = fast.features
    keras = build_network({"name": "cnn"}).eval()
    keras.features = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3), relu1, torch.nn.Conv2d(32, 64, 3), relu2, pool, *rest)
    keras.load_state_dict(fast.state_dict())
    x = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    grads = []
    for net in (fast, keras):
        net.zero_grad()
        inputs = x.clone().requires_grad_()
        logits = net(inputs)
        torch.nn.functional.cross_entropy(logits, y).backward()
        grads.append((logits.detach(), inputs.grad, [p.grad for p in net.parameters()]))
    (fast_logits, fast_input_grad, fast_grads), (keras_logits, keras_input_grad, keras_grads) = grads
    torch.testing.assert_close(fast_logits, keras_logits)
    torch.testing.assert_close(fast_input_grad, keras_input_grad)  # what FGSM reads
    for fast_grad, keras_grad in zip(fast_grads, keras_grads):
        torch.testing.assert_close(fast_grad, keras_grad)
    assert all(p.is_contiguous() for p in fast.parameters())  # torch.nn.utils.prune flattens with .view


def test_registry_has_the_papers_networks_and_the_null_architectures():
    assert set(NETWORKS) == {"mlp", "cnn", "irnn", "lenet5", "small_cnn"}


@pytest.mark.parametrize("arch,parameters", [
    ({"name": "mlp", "depth": 0}, 784 * 10 + 10),  # a linear model
    ({"name": "mlp", "hidden": 128, "depth": 1}, 784 * 128 + 128 + 128 * 10 + 10),
    ({"name": "lenet5"}, (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)),
    ({"name": "small_cnn"}, (16 * 9 + 16) + (32 * 16 * 9 + 32) + (800 * 64 + 64) + (64 * 10 + 10)),
])
def test_null_architectures(arch, parameters):
    net = build_network(arch)
    assert sum(p.numel() for p in net.parameters()) == parameters
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 10) and hasattr(net, "classifier")


@pytest.mark.parametrize("arch", [{"name": "resnet"}, {"name": "mlp", "width": 3}, {"name": "irnn", "mode": "cols"}, {"name": "mlp", "depth": -1}])
def test_bad_arch_is_a_clear_error(arch):
    with pytest.raises(ModelFileError, match="network"):
        build_network(arch)


def test_model_file_round_trip(tmp_path):
    arch = {"name": "mlp", "hidden": 32, "dropout": 0.0}
    net = build_network(arch)
    save_model(tmp_path / "m.pt", net, arch, {"seed": 3})
    loaded, loaded_arch, meta = load_model(tmp_path / "m.pt")
    assert loaded_arch == arch and meta["seed"] == 3 and "git_commit" in meta
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(net.eval()(x), loaded(x))
    assert not loaded.training
