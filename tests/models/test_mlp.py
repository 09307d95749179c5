"""The MLP ensemble's one pass: Goldfeld et al.'s noise after every hidden activation (std β, none
on the logits), on or off by mode, and measuring that never touches the training noise."""

import pytest
import torch

from infoflow.models.mlp import MLPEnsemble


@pytest.fixture
def net() -> MLPEnsemble:
    return MLPEnsemble([0], beta=0.05)


def test_noise_std_equals_beta_in_every_hidden_layer(net):
    outputs = net.layer_outputs(torch.rand(1, 20000, 12), noise=True)
    assert len(outputs) == 5
    for out in outputs:
        diff = out.noisy - out.pre_noise
        assert diff.std().item() == pytest.approx(0.05, rel=0.02)
        assert diff.mean().abs().item() < 0.002


def test_no_noise_on_the_logits(net):
    x = torch.rand(1, 64, 12)
    noise = net._measurement_noise(64, x.device)
    logits, outputs = net._run(x, noise, keep=True)
    # The logits are exactly the read-out of the last noisy layer: nothing added after it.
    read_out = net.layers[-1](outputs[-1].noisy.transpose(1, 2)).transpose(1, 2)
    assert torch.equal(logits, read_out)


def test_noise_off_gives_identical_representations(net):
    outputs = net.layer_outputs(torch.rand(1, 64, 12), noise=False)
    assert all(torch.equal(o.noisy, o.pre_noise) for o in outputs)


def test_noise_on_in_train_off_in_eval_by_default(net):
    x = torch.rand(1, 64, 12)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    assert torch.equal(net(x), net(x))


def test_noise_at_eval_switch():
    net = MLPEnsemble([0], beta=0.05, noise_at_eval=True).eval()
    x = torch.rand(1, 64, 12)
    assert not torch.equal(net(x), net(x))


def test_beta_zero_is_deterministic_even_in_training():
    net = MLPEnsemble([0], beta=0.0).train()
    x = torch.rand(1, 64, 12)
    assert torch.equal(net(x), net(x))


def test_first_layer_is_deterministic_given_x_later_layers_carry_earlier_noise(net):
    x = torch.rand(1, 7, 12).repeat_interleave(5, dim=1)  # 5 replicas of 7 inputs
    outputs = net.layer_outputs(x, noise=True)
    s1 = outputs[0].pre_noise.view(7, 5, -1)
    torch.testing.assert_close(s1, s1[:, :1].expand_as(s1), rtol=0, atol=1e-6)
    assert outputs[1].pre_noise.view(7, 5, -1).std(dim=1).min() > 0


def test_measuring_never_advances_the_training_noise():
    """Member k is the single run of its seed whatever is measured in between: measuring draws
    from torch's global generator, training from the members' own."""
    x = torch.rand(2, 32, 12)
    a, b = MLPEnsemble([3, 4], beta=0.1).train(), MLPEnsemble([3, 4], beta=0.1).train()
    first = a(x)
    assert torch.equal(first, b(x))
    a.layer_outputs(x, noise=True)  # measuring on a only
    assert torch.equal(a(x), b(x))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="beta"):
        MLPEnsemble([0], beta=-0.1)
    with pytest.raises(ValueError, match="seeds"):
        MLPEnsemble([])
    with pytest.raises(ValueError, match="hidden=.*non-empty list of positive integers"):
        MLPEnsemble([0], hidden=[])


@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu", "linear"])
def test_activations_and_hidden_widths(activation):
    net = MLPEnsemble([0, 1], hidden=[6, 4], activation=activation)
    outputs = net.layer_outputs(torch.randn(2, 3, 12), noise=False)
    assert [o.pre_noise.shape for o in outputs] == [(2, 3, 6), (2, 3, 4)]
    assert net(torch.randn(2, 3, 12)).shape == (2, 3, 2)
    if activation == "relu":
        assert all((o.pre_noise >= 0).all() for o in outputs)


def test_orthonormality_rule_drives_w_wt_to_identity_on_hidden_layers_only():
    net = MLPEnsemble([1], orth_alpha=0.1)

    def gap(w: torch.Tensor) -> float:
        return (w[0] @ w[0].T - torch.eye(w.shape[1])).abs().max().item()

    before = [gap(w) for w in net.weights()[:-1]]
    for _ in range(300):
        net.after_optimizer_step()
    assert max(gap(w) for w in net.weights()[:-1]) < 1e-3 < min(before)
    assert gap(net.weights()[-1]) > 1e-2  # the read-out is left alone
