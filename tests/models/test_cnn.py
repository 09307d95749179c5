"""The MNIST CNN: shapes of every hidden layer, where the noise and the dropout act."""

import pytest
import torch
from torch import nn

from infoflow.models.cnn import noisy_cnn

# (block output before flattening, flat width) for the default channels [32, 64], fc_width 128.
SHAPES = [((32, 14, 14), 32 * 14 * 14), ((64, 7, 7), 64 * 7 * 7), ((128,), 128)]


@pytest.fixture
def x() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(16, 1, 28, 28)


def test_shapes_of_every_hidden_output_and_the_logits(x):
    net = noisy_cnn(beta=0.1)
    outputs, logits = net.hidden_outputs(x, noise=True)
    assert net.n_hidden == 3 and len(outputs) == 3
    t = x
    for block, out, (shape, width) in zip(net.blocks, outputs, SHAPES, strict=True):
        t = block(t)
        assert t.shape == (16, *shape)
        assert out.pre_noise.shape == out.noisy.shape == (16, width)
    assert logits.shape == (16, 10)


def test_four_weight_layers_two_conv_two_fc():
    net = noisy_cnn(channels=(8, 16), fc_width=20, kernel_size=5)
    hidden = net.linear_layers()
    assert [type(m) for m in hidden] == [nn.Conv2d, nn.Conv2d, nn.Linear]
    assert hidden[0].kernel_size == (5, 5) and hidden[2].in_features == 16 * 7 * 7
    assert isinstance(net.head, nn.Linear)
    assert (net.head.in_features, net.head.out_features) == (20, 10)


@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu", "linear"])
def test_pooling_before_the_activation_is_the_usual_conv_act_pool(x, activation):
    net = noisy_cnn(activation=activation)
    for block in net.blocks[:2]:
        conv, pool, act = block
        assert torch.allclose(block(x), pool(act(conv(x))), atol=1e-6)
        x = block(x)


def test_noise_std_is_beta_after_every_hidden_layer(x):
    torch.manual_seed(1)
    net = noisy_cnn(beta=0.05)
    outputs, _ = net.hidden_outputs(x.repeat(8, 1, 1, 1), noise=True)
    for out in outputs:
        diff = out.noisy - out.pre_noise
        # ≥ 128·8·16 samples per layer: the std is within a few percent of β
        assert diff.std().item() == pytest.approx(0.05, rel=0.05)
        assert diff.mean().abs().item() < 0.005


def test_no_noise_on_the_logits(x):
    net = noisy_cnn(beta=0.5)
    outputs, logits = net.hidden_outputs(x, noise=True)
    assert torch.equal(logits, net.head(outputs[-1].noisy))


def test_noise_on_in_train_off_in_eval(x):
    net = noisy_cnn(beta=0.05)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    _, clean = net.hidden_outputs(x, noise=False)
    assert torch.equal(net(x), net(x)) and torch.allclose(net(x), clean)


def test_dropout_sits_after_the_activation_before_the_noise():
    net = noisy_cnn(dropout=0.3)
    for block in net.blocks:
        assert isinstance(block[-1], nn.Dropout) and block[-1].p == 0.3
    assert not any(isinstance(m, nn.Dropout) for m in noisy_cnn().modules())  # 0: off


def test_dropout_on_in_train_only(x):
    # Linear activation and β = 0: any exact zero in a block's output comes from dropout.
    net = noisy_cnn(activation="linear", dropout=0.5, beta=0.0)
    net.train()
    outputs, _ = net.hidden_outputs(x, noise=False)
    for out in outputs:
        assert (out.pre_noise == 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    net.eval()
    outputs, _ = net.hidden_outputs(x, noise=False)
    assert all((out.pre_noise == 0).float().mean().item() < 0.01 for out in outputs)
    assert torch.equal(net(x), net(x))


def test_orthonormalize_touches_conv_and_fc_weights_not_the_head():
    torch.manual_seed(0)
    net = noisy_cnn(channels=(4, 8), fc_width=16)
    before = [m.weight.clone() for m in net.linear_layers()]
    head = net.head.weight.clone()
    net.orthonormalize_(0.01)
    assert all(
        not torch.equal(b, m.weight) for b, m in zip(before, net.linear_layers(), strict=True)
    )
    assert torch.equal(head, net.head.weight)


@pytest.mark.parametrize(
    "kwargs", [{"channels": (32,)}, {"channels": (0, 8)}, {"dropout": 1.0}, {"kernel_size": 4}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        noisy_cnn(**kwargs)
