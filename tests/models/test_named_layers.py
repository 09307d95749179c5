"""Any nn.Module as a noisy network measured at named layers: outputs captured where named, noise
added only there, members that are the network of their seed, and bad names refused by name."""

import pytest
import torch
from torch import nn

from infoflow.models.named_layers import NamedLayers


def body() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, 2))


def test_layer_outputs_are_the_named_submodules_outputs():
    net = NamedLayers(body, ["1", "3"], seeds=[0])
    x = torch.randn(1, 6, 4)
    module = body()
    module.load_state_dict({k.replace("__", "."): v[0] for k, v in net.params.items()})
    h1 = module[1](module[0](x[0]))
    h3 = module[3](module[2](h1))
    outs = net.layer_outputs(x, noise=False)
    torch.testing.assert_close(outs[0].pre_noise[0], h1)
    torch.testing.assert_close(outs[1].pre_noise[0], h3)
    torch.testing.assert_close(net(x)[0], module(x[0]))


def test_noise_of_std_beta_after_each_named_layer_and_nowhere_else():
    net = NamedLayers(body, ["1"], seeds=[0], beta=0.2)
    x = torch.randn(1, 20000, 4)
    out = net.layer_outputs(x, noise=True)[0]
    diff = out.noisy - out.pre_noise
    assert diff.std().item() == pytest.approx(0.2, rel=0.02)
    # the logits see T_1 = S_1 + βZ: noisy in training, deterministic in eval
    net.train()
    assert not torch.equal(net(x[:, :8]), net(x[:, :8]))
    net.eval()
    assert torch.equal(net(x[:, :8]), net(x[:, :8]))
    # noise only where named: the logits are the rest of the network applied to the noisy T_1
    module = body()
    module.load_state_dict({k.replace("__", "."): v[0] for k, v in net.params.items()})
    captured = []
    net._base[1].register_forward_hook(lambda m, a, o: captured.append(o))  # after the noise hook
    net.train()
    logits = net(x[:, :8])[0]
    torch.testing.assert_close(logits, module[4](module[3](module[2](captured[-1]))))


def test_members_are_the_networks_of_their_seeds():
    ensemble = NamedLayers(body, ["1", "3"], seeds=[4, 9, 2])
    x = torch.randn(3, 7, 4)
    outs = ensemble.layer_outputs(x, noise=False)
    for k, seed in enumerate((4, 9, 2)):
        alone = NamedLayers(body, ["1", "3"], seeds=[seed])
        single = alone.layer_outputs(x[k : k + 1], noise=False)
        for a, b in zip(outs, single, strict=True):
            torch.testing.assert_close(a.pre_noise[k], b.pre_noise[0])
    assert not torch.equal(outs[0].pre_noise[0], outs[0].pre_noise[1])


def test_a_member_gradient_is_its_own_loss_gradient():
    net = NamedLayers(body, ["1"], seeds=[0, 1])
    x, y = torch.randn(2, 16, 4), torch.randint(0, 2, (2, 16))
    losses = nn.functional.cross_entropy(net(x).transpose(1, 2), y, reduction="none").mean(1)
    losses.sum().backward()
    g = net.weights()[0].grad[1].clone()
    alone = NamedLayers(body, ["1"], seeds=[1])
    nn.functional.cross_entropy(alone(x[1:2])[0], y[1]).backward()
    torch.testing.assert_close(alone.weights()[0].grad[0], g)


def test_weights_are_member_first_and_convolutions_flatten_as_layers():
    def conv():
        return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))

    net = NamedLayers(conv, ["1"], seeds=[0, 1])
    assert [tuple(w.shape) for w in net.weights()] == [(2, 3, 1, 3, 3), (2, 2, 48)]
    out = net.layer_outputs(torch.randn(2, 5, 1, 6, 6), noise=False)[0]
    assert out.pre_noise.shape == (2, 5, 48)  # (K, B, C·H·W)


def test_a_module_given_as_is_is_one_member():
    module = body()
    net = NamedLayers(module, ["1"])
    x = torch.randn(1, 3, 4)
    torch.testing.assert_close(net(x)[0], module(x[0]))
    with pytest.raises(ValueError, match="function that builds the module"):
        NamedLayers(module, ["1"], seeds=[0, 1])


def test_a_missing_layer_is_one_line_listing_the_names_there_are():
    with pytest.raises(ValueError, match=r"no submodule 'body.9'; it has: 0, 1, 2, 3, 4"):
        NamedLayers(body, ["body.9"])
    with pytest.raises(ValueError, match="layers="):
        NamedLayers(body, [])


def test_batch_norm_keeps_running_statistics_per_member():
    bn = lambda: nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))  # noqa: E731
    net = NamedLayers(bn, ["1"], seeds=[0, 1]).train()
    x = torch.randn(2, 64, 4)
    x[1] += 5.0
    net(x)
    means = net._buffers_dict()["1.running_mean"]
    assert means.shape == (2, 3) and not torch.allclose(means[0], means[1])
