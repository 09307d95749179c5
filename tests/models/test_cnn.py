"""The MNIST CNN, measured through NamedLayers at its three hidden blocks: shapes of every
measured layer, where the noise and the dropout act."""

import pytest
import torch
from torch import nn

from infoflow.models.cnn import HIDDEN_BLOCKS, mnist_cnn
from infoflow.models.named_layers import NamedLayers

# Flat width of each hidden block's output for the default channels [32, 64], fc_width 128.
WIDTHS = [32 * 14 * 14, 64 * 7 * 7, 128]


def noisy_cnn(beta: float = 0.0, **kwargs) -> NamedLayers:
    return NamedLayers(lambda: mnist_cnn(**kwargs), HIDDEN_BLOCKS, beta=beta)


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(1, 16, 1, 28, 28)


def test_shapes_of_every_measured_layer_and_the_logits(x):
    net = noisy_cnn(beta=0.1)
    outputs = net.layer_outputs(x, noise=True)
    assert [o.pre_noise.shape for o in outputs] == [(1, 16, w) for w in WIDTHS]
    assert all(o.noisy.shape == o.pre_noise.shape for o in outputs)
    assert net(x).shape == (1, 16, 10)


def test_four_weight_layers_two_conv_two_fc():
    module = mnist_cnn(channels=(8, 16), fc_width=20, kernel_size=5)
    weights = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert [type(m) for m in weights] == [nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear]
    assert weights[0].kernel_size == (5, 5) and weights[2].in_features == 16 * 7 * 7
    assert (weights[3].in_features, weights[3].out_features) == (20, 10)
    net = NamedLayers(lambda: mnist_cnn(channels=(8, 16), fc_width=20), HIDDEN_BLOCKS)
    assert [tuple(w.shape) for w in net.weights()] == [
        (1, 8, 1, 5, 5), (1, 16, 8, 5, 5), (1, 20, 784), (1, 10, 20)
    ]  # fmt: skip


@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu", "linear"])
def test_pooling_before_the_activation_is_the_usual_conv_act_pool(x, activation):
    module = mnist_cnn(activation=activation)
    t = x[0]
    for block in (module.block1, module.block2):
        conv, pool, act = block
        assert torch.allclose(block(t), pool(act(conv(t))), atol=1e-6)
        t = block(t)


def test_noise_std_is_beta_after_every_hidden_layer(x):
    torch.manual_seed(1)
    net = noisy_cnn(beta=0.05)
    for out in net.layer_outputs(x.repeat(1, 8, 1, 1, 1), noise=True):
        diff = out.noisy - out.pre_noise
        # ≥ 128·8·16 samples per layer: the std is within a few percent of β
        assert diff.std().item() == pytest.approx(0.05, rel=0.05)
        assert diff.mean().abs().item() < 0.005


def test_noise_on_in_train_off_in_eval(x):
    net = noisy_cnn(beta=0.05)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_dropout_sits_after_the_activation_before_the_noise():
    module = mnist_cnn(dropout=0.3)
    for name in HIDDEN_BLOCKS:
        block = getattr(module, name)
        assert isinstance(block[-1], nn.Dropout) and block[-1].p == 0.3
    assert not any(isinstance(m, nn.Dropout) for m in mnist_cnn().modules())  # 0: off


def test_dropout_on_in_train_only(x):
    # Linear activation and β = 0: any exact zero in a block's output comes from dropout.
    net = noisy_cnn(activation="linear", dropout=0.5)
    net.train()
    for out in net.layer_outputs(x, noise=False):
        assert (out.pre_noise == 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    net.eval()
    assert all((o.pre_noise == 0).float().mean() < 0.01 for o in net.layer_outputs(x, noise=False))
    assert torch.equal(net(x), net(x))


def test_orthonormality_touches_conv_and_fc_weights_not_the_head():
    torch.manual_seed(0)
    net = NamedLayers(
        lambda: mnist_cnn(channels=(4, 8), fc_width=16), HIDDEN_BLOCKS, orth_alpha=0.01
    )
    before = [w.detach().clone() for w in net.weights()]
    net.after_optimizer_step()
    changed = [not torch.equal(b, w) for b, w in zip(before, net.weights(), strict=True)]
    assert changed == [True, True, True, False]


@pytest.mark.parametrize(
    "kwargs", [{"channels": (32,)}, {"channels": (0, 8)}, {"dropout": 1.0}, {"kernel_size": 4}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        mnist_cnn(**kwargs)
